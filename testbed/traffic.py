"""Closed-loop HTTP clients that record every answer, and the counts a fault table reports.

Each client sends its next request when the last one answered (or failed), so a stall shows
as fewer requests, never as a pile-up. Every request is recorded: status 0 means no answer
at all (refused connection, reset, or no response within ``timeout``). ``Traffic`` sends any
request and keeps whole answers (the fault suite); ``Load`` sends /classify and keeps status,
version and latency (load tests and benchmarks).
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Generic, Self, TypeVar

from testbed.clinc import clinc_texts

__all__ = [
    "Answer",
    "ClientFleet",
    "Counts",
    "Load",
    "Request",
    "Traffic",
    "count",
    "varied_classify",
]

# (path, body, headers) for the i-th request of client c
Request = Callable[[int, int], tuple[str, bytes, dict[str, str]]]
Asked = TypeVar("Asked")  # what a fleet's client sends: a request before it is sent


def varied_classify(
    texts: Sequence[str] | None = None,
    headers: dict[str, str] | None = None,
    per_request: int = 1,
) -> Request:
    """/classify with different CLINC150 test texts each time (clients start far apart);
    ``per_request`` > 1 sends them as a ``texts`` list."""
    pool = list(texts or clinc_texts())

    def make(client: int, index: int) -> tuple[str, bytes, dict[str, str]]:
        start = client * 997 + index * per_request
        chosen = [pool[(start + i) % len(pool)] for i in range(per_request)]
        data = {"text": chosen[0]} if per_request == 1 else {"texts": chosen}
        return "/classify", json.dumps(data).encode(), dict(headers or {})

    return make


@dataclass(frozen=True)
class Answer:
    client: int
    sent_at: float  # time.monotonic()
    seconds: float
    status: int  # 0: no answer
    retry_after: bool
    version: str | None
    role: str | None
    body: bytes
    retried: bool = False  # the connection was reset, and the one retry got this answer


@dataclass(frozen=True)
class Counts:
    """One fault table row: everything sent, and how it was answered."""

    sent: int
    ok: int  # 2xx
    client_errors: int  # 4xx: the request was at fault and was told so
    unavailable: int  # 503 with Retry-After
    lost: int  # no answer, or a 5xx other than 503-with-Retry-After

    def as_dict(self) -> dict[str, int]:
        return {
            "sent": self.sent,
            "ok": self.ok,
            "client_errors": self.client_errors,
            "unavailable": self.unavailable,
            "lost": self.lost,
        }


def count(answers: Sequence[Answer]) -> Counts:
    ok = sum(1 for a in answers if 200 <= a.status < 300)
    client = sum(1 for a in answers if 400 <= a.status < 500)
    unavailable = sum(1 for a in answers if a.status == 503 and a.retry_after)
    return Counts(len(answers), ok, client, unavailable, len(answers) - ok - client - unavailable)


@dataclass
class ClientFleet(Generic[Asked]):
    """``clients`` closed-loop clients of 127.0.0.1:``port``, each in its own thread; every
    answer is kept (``dropped``: the streams a client left on purpose). A subclass says what
    the i-th request of client c is (:meth:`_ask`) and how it is sent (:meth:`_send`)."""

    port: int
    clients: int = 8
    _: KW_ONLY
    timeout: float = 10.0
    max_seconds: float = 180.0
    # Retry once when the connection drops without an answer, as HTTP clients do for an
    # idempotent request (a keep-alive connection the server closed as the request went out).
    retry_resets: bool = True
    answers: list[Answer] = field(default_factory=list)
    dropped: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _ask(self, client: int, index: int) -> Asked:
        raise NotImplementedError

    def _send(
        self, conn: http.client.HTTPConnection, client: int, asked: Asked
    ) -> tuple[Answer, bool]:
        """One request's answer, and whether the client left its stream on purpose."""
        raise NotImplementedError

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)

    def _client(self, client: int) -> None:
        conn = self._connect()
        deadline = time.monotonic() + self.max_seconds
        index = 0
        while not self._stop.is_set() and time.monotonic() < deadline:
            asked = self._ask(client, index)
            answer, left = self._send(conn, client, asked)
            if answer.status == 0 and self.retry_resets and answer.seconds < self.timeout:
                conn = self._connect()
                again, left = self._send(conn, client, asked)
                answer = dataclasses.replace(
                    again, sent_at=answer.sent_at, seconds=answer.seconds + again.seconds,
                    retried=True,
                )  # fmt: skip
            index += 1
            with self._lock:
                (self.dropped if left else self.answers).append(answer)
            if answer.status == 0 or left:
                conn = self._connect()
                if answer.status == 0:
                    time.sleep(0.05)  # a refused connection answers at once: do not spin

    def __enter__(self) -> Self:
        for client in range(self.clients):
            thread = threading.Thread(target=self._client, args=(client,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:  # a retried request may take two timeouts
            thread.join(timeout=2 * self.timeout + 5)

    def between(self, start: float, end: float | None = None) -> list[Answer]:
        """Answers to requests sent in [start, end) (monotonic clock)."""
        with self._lock:
            return [
                a for a in self.answers if a.sent_at >= start and (end is None or a.sent_at < end)
            ]


@dataclass
class Traffic(ClientFleet[tuple[str, bytes, dict[str, str]]]):
    """Closed-loop clients sending ``request(client, i)`` and keeping whole answers."""

    request: Request = field(default_factory=varied_classify)

    def _ask(self, client: int, index: int) -> tuple[str, bytes, dict[str, str]]:
        return self.request(client, index)

    def _send(
        self,
        conn: http.client.HTTPConnection,
        client: int,
        asked: tuple[str, bytes, dict[str, str]],
    ) -> tuple[Answer, bool]:
        path, body, headers = asked
        start, sent_at = time.perf_counter(), time.monotonic()
        try:
            headers = {"content-type": "application/json", **headers}
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            return Answer(
                client, sent_at, time.perf_counter() - start, 0, False, None, None, b""
            ), False
        answer = Answer(
            client,
            sent_at,
            time.perf_counter() - start,
            response.status,
            response.getheader("retry-after") is not None,
            response.getheader("x-model-version"),
            response.getheader("x-model-role"),
            payload,
        )
        return answer, False


@dataclass
class Load:
    """Closed-loop clients: each sends the next request when the last one answered.

    By default each client walks the CLINC150 test texts from its own offset, so batches mix
    lengths and most requests reach the model; ``text`` sends that one text instead."""

    port: int
    clients: int = 4
    text: str | None = None
    max_seconds: float = 120.0
    texts: Sequence[str] = ()
    results: list[tuple[float, str, int, str | None, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _client(self, key: str, offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        texts = [self.text] if self.text else list(self.texts or clinc_texts())
        headers = {"content-type": "application/json", "x-canary-key": key}
        deadline = time.monotonic() + self.max_seconds
        sent = offset
        while not self._stop.is_set() and time.monotonic() < deadline:
            body = json.dumps({"text": texts[sent % len(texts)]})
            sent += 1
            start = time.perf_counter()
            try:
                conn.request("POST", "/classify", body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                status, version = response.status, response.getheader("x-model-version")
            except (OSError, http.client.HTTPException):
                status, version = 0, None
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            self.results.append(
                (time.monotonic(), key, status, version, time.perf_counter() - start)
            )

    def __enter__(self) -> Load:
        stride = 997  # clients start far apart in the texts
        for index in range(self.clients):
            thread = threading.Thread(
                target=self._client, args=(f"client-{index}", index * stride), daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def failures(self) -> list[tuple[float, str, int, str | None, float]]:
        return [r for r in self.results if r[2] != 200]
