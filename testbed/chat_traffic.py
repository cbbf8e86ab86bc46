"""Closed-loop clients of the OpenAI routes over raw HTTP, counted like ``testbed.traffic``.

Each request is a different E2E NLG test prompt (``e2e_prompts``: the distinct user turns,
about 1,800), so neither the greedy-answer cache nor one batch shape answers them. A stream
counts as 2xx only when it ends with ``data: [DONE]``; a stream whose connection is cut
before that is "no answer" (status 0, retried once like any dropped connection), and one
that carries an error event is a 500. Streams the client itself drops after two chunks (a
client that leaves) are kept apart in ``dropped``: never lost, never 2xx.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from testbed.paths import E2E_DIR
from testbed.traffic import Answer, ClientFleet
from testbed.versions import DEPLOYMENT

__all__ = ["ChatRequest", "ChatTraffic", "e2e_prompts", "tokens_used", "varied_openai"]


@dataclass(frozen=True)
class ChatRequest:
    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    drop_after: int | None = None  # the client leaves after this many stream events


# the i-th request of client c
ChatMaker = Callable[[int, int], ChatRequest]


@cache
def e2e_prompts() -> tuple[str, ...]:
    """The distinct user prompts of the E2E NLG chat test split, in file order."""
    seen: dict[str, None] = {}
    with (E2E_DIR / "test.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            seen.setdefault(json.loads(line)["messages"][0]["content"], None)
    return tuple(seen)


def varied_openai(
    headers: dict[str, str] | None = None,
    *,
    model: str = DEPLOYMENT,
    stream_every: int = 3,
    drop_every: int = 0,
    prompts: Sequence[str] | None = None,
) -> ChatMaker:
    """Chat and completion requests, a different E2E prompt each (clients start far apart):
    every ``stream_every``-th streamed (with usage), every ``drop_every``-th stream dropped by
    the client after two events (0: none), every fifth plain one on /v1/completions; 8 to 16
    tokens, greedy or sampled with a seed."""
    pool = list(prompts or e2e_prompts())

    def make(client: int, index: int) -> ChatRequest:
        n = client * 389 + index
        text = pool[n % len(pool)]
        streamed = stream_every > 0 and index % stream_every == stream_every - 1
        body: dict[str, Any] = {"model": model, "max_tokens": 8 + n % 9}
        body |= {"temperature": 0} if n % 2 else {"temperature": 0.8, "seed": n}
        if streamed:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        path = "/v1/chat/completions"
        if not streamed and index % 5 == 4:
            path, body["prompt"] = "/v1/completions", text
        else:
            body["messages"] = [{"role": "user", "content": text}]
        dropped = streamed and drop_every > 0 and (index // stream_every) % drop_every == 0
        extra = {"x-canary-key": f"c{client}-{index}", **(headers or {})}
        return ChatRequest(path, json.dumps(body).encode(), extra, 2 if dropped else None)

    return make


def tokens_used(answer: Answer) -> int:
    """Prompt and completion tokens a 2xx answer says it used (its ``usage``; a stream's
    last usage chunk), 0 for any other answer."""
    if not 200 <= answer.status < 300:
        return 0
    text = answer.body.decode("utf-8", errors="replace")
    if not text.startswith("data:"):
        return int(json.loads(text)["usage"]["total_tokens"])
    for event in reversed(text.split("\n\n")):
        data = event.removeprefix("data: ").strip()
        if data.startswith("{") and (usage := json.loads(data).get("usage")):
            return int(usage["total_tokens"])
    return 0


def _stream_status(status: int, body: bytes) -> int:
    """A 200 stream's status as counted: 200 with ``[DONE]``, 500 with an error event, 0
    (no answer) when it was cut before either."""
    if b'data: {"error"' in body:
        return 500
    return status if b"data: [DONE]" in body else 0


@dataclass
class ChatTraffic(ClientFleet[ChatRequest]):
    """Closed-loop clients of the OpenAI routes sending ``request(client, i)``; a dropped
    connection is retried once, a stream the client leaves on purpose kept in ``dropped``."""

    request: ChatMaker = field(default_factory=varied_openai)
    timeout: float = field(default=30.0, kw_only=True)

    def _ask(self, client: int, index: int) -> ChatRequest:
        return self.request(client, index)

    def _read(
        self, response: http.client.HTTPResponse, drop_after: int | None
    ) -> tuple[bytes, bool]:
        """The body, and whether the client left it early (after ``drop_after`` events)."""
        if not response.getheader("content-type", "").startswith("text/event-stream"):
            return response.read(), False
        body, events = b"", 0
        while line := response.readline():
            body += line
            if line.startswith(b"data:"):
                events += 1
                if drop_after is not None and events >= drop_after:
                    return body, True
        return body, False

    def _send(
        self, conn: http.client.HTTPConnection, client: int, asked: ChatRequest
    ) -> tuple[Answer, bool]:
        start, sent_at = time.perf_counter(), time.monotonic()
        response: http.client.HTTPResponse | None = None
        body, left, broken = b"", False, False
        try:
            headers = {"content-type": "application/json", **asked.headers}
            conn.request("POST", asked.path, body=asked.body, headers=headers)
            response = conn.getresponse()
            body, left = self._read(response, asked.drop_after)
        except (OSError, http.client.HTTPException):  # no whole answer: cut, reset, refused
            conn.close()
            broken = True
        status = 0 if response is None or broken else response.status
        if status == 200 and not left and response is not None:
            streamed = response.getheader("content-type", "").startswith("text/event-stream")
            status = _stream_status(status, body) if streamed else status
        if left:
            conn.close()
        header = response.getheader if response is not None else (lambda _name: None)
        answer = Answer(
            client, sent_at, time.perf_counter() - start, status,
            header("retry-after") is not None, header("x-model-version"),
            header("x-model-role"), body,
        )  # fmt: skip
        return answer, left
