"""Request checks at the API edge: a 4xx with a reason, never a 500 for a malformed request.

Every refusal of every room is a :class:`~serving.refusal.Refusal`; :func:`status_of` is the
one place a refusal's kind becomes an HTTP status code.
"""

from __future__ import annotations

from serving.refusal import Refusal, RefusalKind

__all__ = ["MAX_TOP_K", "RequestError", "check_texts", "status_of"]

MAX_TOP_K = 100  # the most labels /classify returns per text

_STATUS = {
    RefusalKind.INVALID: 400,
    RefusalKind.UNAUTHENTICATED: 401,
    RefusalKind.FORBIDDEN: 403,
    RefusalKind.NOT_FOUND: 404,
    RefusalKind.UNPROCESSABLE: 422,
    RefusalKind.LIMITED: 429,
    RefusalKind.UNAVAILABLE: 503,
}
_KIND = {status: kind for kind, status in _STATUS.items()}


class RequestError(Refusal):
    """A refusal made at the HTTP edge, where the status code is the fact: ``status`` (4xx,
    or 503/500), the ``field`` at fault if one, and for 429/503 ``Retry-After`` seconds."""

    def __init__(
        self,
        status: int,
        reason: str,
        *,
        field: str | None = None,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        kind = _KIND.get(status, RefusalKind.INVALID)
        super().__init__(kind, reason, field=field, retry_after=retry_after, code=code)
        self.status = status


def status_of(refusal: Refusal) -> int:
    """The HTTP status code of any refusal."""
    if isinstance(refusal, RequestError):
        return refusal.status
    return _STATUS[refusal.kind]


def check_texts(
    text: str | None, texts: list[str] | None, top_k: int, *, max_texts: int, max_chars: int
) -> list[str]:
    """The texts to classify: exactly one of ``text`` / ``texts``, non-empty, within limits."""
    if (text is None) == (texts is None):
        raise RequestError(
            422, "give exactly one of 'text' (a string) or 'texts' (a list)", field="text"
        )
    items = [text] if text is not None else list(texts or [])

    def where(index: int) -> str:
        return "text" if text is not None else f"texts[{index}]"

    if not items:
        raise RequestError(422, "'texts' is empty: give at least one text", field="texts")
    if len(items) > max_texts:
        raise RequestError(
            422, f"{len(items)} texts; at most {max_texts} per request", field="texts"
        )
    for index, item in enumerate(items):
        if not item.strip():
            raise RequestError(422, f"text {index} is blank", field=where(index))
        if len(item) > max_chars:
            raise RequestError(
                422,
                f"text {index} has {len(item)} characters; at most {max_chars}",
                field=where(index),
            )
    if not 1 <= top_k <= MAX_TOP_K:
        raise RequestError(
            422, f"top_k must be between 1 and {MAX_TOP_K}, not {top_k}", field="top_k"
        )
    return items
