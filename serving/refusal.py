"""Why a request is refused, said by whichever room refused it, with no HTTP in it.

The engine refuses a request it cannot run (:class:`InvalidRequest`), the worker refuses a
caller (an unknown key, a limit, an outage); each says what kind of refusal it is. Only the
HTTP layer turns a kind into a status code (``serving.api.validation.status_of``), so the
rooms below it never speak HTTP.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["InvalidRequest", "Refusal", "RefusalKind", "Unavailable"]


class RefusalKind(StrEnum):
    INVALID = "invalid"  # the request itself is wrong (a field out of range, too long)
    UNPROCESSABLE = "unprocessable"  # well-formed, but a field's value cannot be used
    UNAUTHENTICATED = "unauthenticated"  # no key, or one we do not know
    FORBIDDEN = "forbidden"  # a known key that may not do this
    NOT_FOUND = "not_found"  # a model or route that is not here
    LIMITED = "limited"  # over a rate, a quota or a token limit: retry later
    UNAVAILABLE = "unavailable"  # we cannot answer now (overloaded, a store down): retry later


class Refusal(Exception):
    """A request refused: the ``kind``, a ``reason`` a client can act on, the ``field`` at
    fault if one, OpenAI's ``code`` if one, and for retryable kinds how many seconds to wait."""

    def __init__(
        self,
        kind: RefusalKind,
        reason: str,
        *,
        field: str | None = None,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.field = field
        self.retry_after = retry_after
        self.code = code


class InvalidRequest(Refusal):
    """The request cannot run as asked (a sampling value out of range, a prompt too long)."""

    def __init__(self, reason: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(RefusalKind.INVALID, reason, field=field, code=code)


class Unavailable(Refusal):
    """Nothing can answer this request right now; retry after ``retry_after`` seconds."""

    def __init__(self, reason: str, *, retry_after: float = 1.0) -> None:
        super().__init__(RefusalKind.UNAVAILABLE, reason, retry_after=retry_after)
