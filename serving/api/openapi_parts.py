"""What every part of the OpenAPI document shares: the header references and an operation."""

from __future__ import annotations

from typing import Any

__all__ = ["RETRY_HEADERS", "VERSION_HEADER", "examples", "operation"]

VERSION_HEADER = {"X-Model-Version": {"$ref": "#/components/headers/X-Model-Version"}}
RETRY_HEADERS = {**VERSION_HEADER, "Retry-After": {"$ref": "#/components/headers/Retry-After"}}


def examples(english: dict[str, Any], chinese: dict[str, Any]) -> dict[str, Any]:
    """A request's examples, English first, then Chinese (the services conveyor is built
    for are Chinese applications): Swagger offers both, each answers 200."""
    return {
        "english": {"summary": "English", "value": english},
        "chinese": {"summary": "中文 (Chinese)", "value": chinese},
    }


def operation(
    name: str,
    summary: str,
    request: dict[str, Any],
    named_examples: dict[str, Any],
    responses: dict[str, Any],
) -> dict[str, Any]:
    """A ``POST`` model call: its JSON body (``request``, with ``named_examples`` that answer
    200, from :func:`examples`), the canary key header, and its ``responses``."""
    return {
        "post": {
            "operationId": name,
            "summary": summary,
            "tags": ["model"],
            "parameters": [{"$ref": "#/components/parameters/X-Canary-Key"}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": request, "examples": named_examples}},
            },
            "responses": responses,
        }
    }
