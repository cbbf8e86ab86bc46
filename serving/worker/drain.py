"""How long a request may live in a worker, so a replica that stops can let it finish.

BentoML's traffic timeout ends a request whose response has not started within
:data:`FIRST_BYTE_TIMEOUT_S` (504); a streamed answer that started may then go on until it has
its ``max_new_tokens``. A Kubernetes replica that is scaled down first leaves the Service's
endpoints (the preStop pause), then gets SIGTERM and drains; its grace period must cover the
longest request it may still hold, or the kubelet kills streams mid-answer.
"""

from __future__ import annotations

import math

__all__ = [
    "FIRST_BYTE_TIMEOUT_S",
    "PRESTOP_SECONDS",
    "longest_request_seconds",
    "termination_grace_seconds",
]

FIRST_BYTE_TIMEOUT_S = 120  # the service's traffic timeout: no first byte by then -> 504
PRESTOP_SECONDS = 10  # for the endpoint controllers and proxies to stop sending new requests
MARGIN_SECONDS = 5  # the worker's own shutdown after its last request


def longest_request_seconds(max_new_tokens: int | None, min_tokens_per_second: float) -> float:
    """The longest a request may run: the first-byte timeout, plus, for a language model
    (``max_new_tokens`` given), its longest answer decoded at the slowest speed allowed."""
    if min_tokens_per_second <= 0:
        raise ValueError(f"min_tokens_per_second must be > 0, not {min_tokens_per_second}")
    decode = max_new_tokens / min_tokens_per_second if max_new_tokens else 0.0
    return FIRST_BYTE_TIMEOUT_S + decode


def termination_grace_seconds(max_new_tokens: int | None, min_tokens_per_second: float) -> int:
    """``terminationGracePeriodSeconds``: the preStop pause, the longest request, a margin."""
    longest = longest_request_seconds(max_new_tokens, min_tokens_per_second)
    return PRESTOP_SECONDS + math.ceil(longest) + MARGIN_SECONDS
