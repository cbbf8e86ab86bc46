"""A fleet of language-model replicas serving an arrival trace, in simulated time.

What each replica can do comes from measurements (:class:`Capacity`): it runs up to ``slots``
streams at once and, with ``n`` running, decodes ``throughput(n)`` output tokens/s in all
(linear between the measured figures at 1 and at ``slots`` streams), shared equally; a
request's first token comes after its prompt's prefill. Requests wait in one queue for a free
slot on a ready replica (the Service spreading them evenly: an optimistic balancer). A replica
asked for is ready ``cold_start_s`` later; a replica removed takes nothing new and is counted
until its streams end (the drain). Every ``sync_s`` the scaler sees what KEDA's queries return
(requests without a first token; output tokens of answers finished over the last minute, per
second) and sets the replica count.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from testbed.azure_trace import Arrival

__all__ = ["Capacity", "Fleet", "Replay", "Scaler", "View", "replay"]

RATE_WINDOW_S = 60.0  # the ScaledObject's rate(...[1m])


@dataclass(frozen=True)
class Capacity:
    tokens_per_s_one: float  # output tokens/s of one replica with one stream
    tokens_per_s_full: float  # ... with ``slots`` streams
    slots: int
    prefill_tokens_per_s: float
    cold_start_s: float

    def throughput(self, streams: int) -> float:
        if streams <= 1:
            return self.tokens_per_s_one * streams
        step = (self.tokens_per_s_full - self.tokens_per_s_one) / max(self.slots - 1, 1)
        return self.tokens_per_s_one + step * (min(streams, self.slots) - 1)


@dataclass(frozen=True)
class View:
    """What the scaler reads at a sync: the fleet's totals, as the Prometheus queries sum them."""

    now: float
    replicas: int  # asked for (starting, ready), not draining
    waiting: int  # requests without a first token (queued or in prefill)
    output_tokens_per_s: float  # answers finished over the last minute, per second


Scaler = Callable[[View], int]


@dataclass
class _Stream:
    index: int
    prefill_left: float  # seconds
    tokens_left: float
    tokens: int
    started: bool = False  # the prefill is done: the first token is out


@dataclass
class _Replica:
    ready_at: float
    draining: bool = False
    streams: list[_Stream] = field(default_factory=list)


@dataclass
class Replay:
    """Per request: arrival, time to first token and end to end (seconds; inf: never)."""

    arrivals: list[float]
    ttft: list[float]
    e2e: list[float]
    replica_seconds: float  # over [measure_from, horizon]
    horizon: float
    replicas: list[tuple[float, int]]  # (time, replicas asked for) at each sync

    @property
    def replica_minutes(self) -> float:
        return self.replica_seconds / 60


@dataclass
class Fleet:
    capacity: Capacity
    replicas: list[_Replica] = field(default_factory=list)

    def asked(self) -> int:
        return sum(not r.draining for r in self.replicas)

    def resize(self, now: float, wanted: int) -> None:
        asked = [r for r in self.replicas if not r.draining]
        for _ in range(wanted - len(asked)):
            self.replicas.append(_Replica(now + self.capacity.cold_start_s))
        # remove the ones not ready yet first, then the least busy
        surplus = sorted(asked, key=lambda r: (r.ready_at <= now, len(r.streams)))
        for replica in surplus[: max(0, len(asked) - wanted)]:
            replica.draining = True
        self.replicas = [r for r in self.replicas if not (r.draining and not r.streams)]


def replay(
    arrivals: Sequence[Arrival],
    capacity: Capacity,
    scaler: Scaler,
    initial_replicas: int,
    *,
    dt: float = 0.5,
    sync_s: float = 15.0,
    measure_from: float = 0.0,
) -> Replay:
    """Serve every arrival (the run goes on past the last until each has its answer);
    replica-seconds are counted from ``measure_from`` (after a warm-up) to the last arrival."""
    n = len(arrivals)
    ttft, e2e = [math.inf] * n, [math.inf] * n
    fleet = Fleet(capacity, [_Replica(0.0) for _ in range(initial_replicas)])
    queue: deque[int] = deque()
    finished: deque[tuple[float, int]] = deque()  # (time, output tokens) of ended answers
    horizon = arrivals[-1].at
    replica_seconds, next_arrival, done = 0.0, 0, 0
    history: list[tuple[float, int]] = []
    steps = 0
    while done < n:
        now = steps * dt
        steps += 1
        while next_arrival < n and arrivals[next_arrival].at <= now:
            queue.append(next_arrival)
            next_arrival += 1
        _admit(fleet, queue, arrivals, now)
        done += _decode(fleet, arrivals, now, dt, ttft, e2e, finished)
        fleet.replicas = [r for r in fleet.replicas if not (r.draining and not r.streams)]
        if measure_from <= now < horizon:
            replica_seconds += dt * len(fleet.replicas)
        if steps % round(sync_s / dt) == 0:
            while finished and finished[0][0] <= now - RATE_WINDOW_S:
                finished.popleft()
            waiting = len(queue) + sum(not s.started for r in fleet.replicas for s in r.streams)
            rate = sum(tokens for _, tokens in finished) / RATE_WINDOW_S
            fleet.resize(now, scaler(View(now, fleet.asked(), waiting, rate)))
            history.append((now, fleet.asked()))
    return Replay([a.at for a in arrivals], ttft, e2e, replica_seconds, horizon, history)


def _admit(fleet: Fleet, queue: deque[int], arrivals: Sequence[Arrival], now: float) -> None:
    open_ = [r for r in fleet.replicas if not r.draining and r.ready_at <= now]
    cap = fleet.capacity
    while queue and open_:
        replica = min(open_, key=lambda r: len(r.streams))
        if len(replica.streams) >= cap.slots:
            return
        index = queue.popleft()
        arrival = arrivals[index]
        prefill = arrival.prompt_tokens / cap.prefill_tokens_per_s
        replica.streams.append(
            _Stream(index, prefill, arrival.output_tokens, arrival.output_tokens)
        )


def _decode(
    fleet: Fleet,
    arrivals: Sequence[Arrival],
    now: float,
    dt: float,
    ttft: list[float],
    e2e: list[float],
    finished: deque[tuple[float, int]],
) -> int:
    """One step of every replica; the number of answers that ended."""
    ended = 0
    for replica in fleet.replicas:
        if not replica.streams:
            continue
        share = fleet.capacity.throughput(len(replica.streams)) / len(replica.streams)
        left = []
        for stream in replica.streams:
            budget = dt
            if not stream.started:
                used = min(stream.prefill_left, budget)
                stream.prefill_left -= used
                budget -= used
                if stream.prefill_left <= 0:  # the prefill's forward pass gives a token
                    stream.started = True
                    ttft[stream.index] = now + dt - budget - arrivals[stream.index].at
            stream.tokens_left -= budget * share
            if stream.started and stream.tokens_left <= 1e-9:
                e2e[stream.index] = now + dt - arrivals[stream.index].at
                finished.append((now + dt, stream.tokens))
                ended += 1
            else:
                left.append(stream)
        replica.streams = left
    return ended
