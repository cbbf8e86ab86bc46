"""Request checks at the API edge: a 4xx with a reason, never a 500 for a malformed request."""

from __future__ import annotations

__all__ = ["RequestError", "check_texts"]


class RequestError(Exception):
    """A request the service refuses: ``status`` (4xx, or 503), the ``field`` at fault if one,
    and for 429/503 how many seconds to wait (``Retry-After``)."""

    def __init__(
        self,
        status: int,
        reason: str,
        *,
        field: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.field = field
        self.retry_after = retry_after


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
    if not 1 <= top_k <= 100:
        raise RequestError(422, f"top_k must be between 1 and 100, not {top_k}", field="top_k")
    return items
