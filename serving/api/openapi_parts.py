"""What every part of the OpenAPI document shares: the header references and an operation."""

from __future__ import annotations

from typing import Any

__all__ = ["RETRY_HEADERS", "VERSION_HEADER", "operation"]

VERSION_HEADER = {"X-Model-Version": {"$ref": "#/components/headers/X-Model-Version"}}
RETRY_HEADERS = {**VERSION_HEADER, "Retry-After": {"$ref": "#/components/headers/Retry-After"}}


def operation(
    name: str,
    summary: str,
    request: dict[str, Any],
    example: dict[str, Any],
    responses: dict[str, Any],
) -> dict[str, Any]:
    """A ``POST`` model call: its JSON body (``request``, with an ``example`` that answers
    200), the canary key header, and its ``responses``."""
    return {
        "post": {
            "operationId": name,
            "summary": summary,
            "tags": ["model"],
            "parameters": [{"$ref": "#/components/parameters/X-Canary-Key"}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": request, "example": example}},
            },
            "responses": responses,
        }
    }
