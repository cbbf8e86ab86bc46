"""A locked or slow SQLite registry never stalls a keyed request, and random keys cost little.

The locks are real: a second SQLite connection (another process's view of the same file)
holds the write lock, or takes the database in exclusive locking mode so no one else can
even read it, while the gate admits requests.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from conveyor.registry import ApiKeyRecord, Registry
from serving.api.validation import status_of
from serving.worker.access import Gate, Refused
from serving.worker.limits import LocalLimiter

LOCK_SECONDS = 20.0  # far longer than any answer below may take; released at the end


@contextmanager
def held_lock(database: Path, exclusive: bool) -> Iterator[threading.Event]:
    """Hold the file's write lock (or, ``exclusive``, every lock) from another connection
    until the block ends; yields an event set once the lock is released."""
    taken, release, released = threading.Event(), threading.Event(), threading.Event()

    def hold() -> None:
        outside = sqlite3.connect(
            database, timeout=10, isolation_level=None, check_same_thread=False
        )
        if exclusive:
            outside.execute("PRAGMA locking_mode = EXCLUSIVE")
        outside.execute("BEGIN EXCLUSIVE" if exclusive else "BEGIN IMMEDIATE")
        outside.execute("UPDATE api_keys SET app = app")  # a write: the lock is really taken
        taken.set()
        release.wait(LOCK_SECONDS)
        outside.execute("ROLLBACK")
        outside.close()
        released.set()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert taken.wait(10), "the outside connection did not take the lock"
    try:
        yield released
    finally:
        release.set()
        thread.join(LOCK_SECONDS + 5)


def _in_thread(call: object) -> tuple[threading.Thread, list[object]]:
    out: list[object] = []

    def run() -> None:
        try:
            out.append(call())  # type: ignore[operator]
        except Exception as exc:
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def _database(registry: Registry) -> Path:
    return Path(str(registry.engine.url.database))


def test_reads_do_not_wait_for_a_held_write_lock(registry: Registry) -> None:
    _, key = registry.create_api_key("shop", ["d"])
    with held_lock(_database(registry), exclusive=False) as released:
        thread, out = _in_thread(lambda: registry.verify_api_key(key))
        thread.join(5)
        assert out and not released.is_set(), "a read waited for the writer's lock"
    assert isinstance(out[0], ApiKeyRecord) and out[0].app == "shop"


def test_a_registry_that_cannot_be_read_gives_503_for_new_keys_and_old_keys_still_work(
    registry: Registry,
) -> None:
    _, known = registry.create_api_key("shop", ["d"])
    _, never_seen = registry.create_api_key("cafe", ["d"])
    gate = Gate(lambda: registry, "d", required=True, limiter=LocalLimiter(), key_ttl=0.0)
    assert gate.admit(f"Bearer {known}") == "shop"
    registry.engine.dispose()  # exclusive mode needs the file to itself: close our connections
    with held_lock(_database(registry), exclusive=True) as released:
        thread, out = _in_thread(lambda: gate.admit(f"Bearer {known}"))
        thread.join(5)
        assert out == ["shop"] and not released.is_set(), "a known key waited for the lock"
        thread, out = _in_thread(lambda: gate.admit(f"Bearer {never_seen}"))
        thread.join(5)
        assert out and not released.is_set(), "a new key waited for the lock"
        refused = out[0]
        assert isinstance(refused, Refused) and status_of(refused) == 503
        assert refused.retry_after


class CountingRegistry(Registry):
    """The real registry, counting the key lookups that reach it."""

    lookups = 0

    def verify_api_key(self, plaintext: str) -> ApiKeyRecord | None:
        type(self).lookups += 1
        return super().verify_api_key(plaintext)


def test_random_keys_from_one_address_are_refused_before_they_cost_a_lookup(
    registry: Registry,
) -> None:
    counting = CountingRegistry(registry.engine, "test")
    _, key = registry.create_api_key("shop", ["d"])
    gate = Gate(lambda: counting, "d", required=True, limiter=LocalLimiter())
    statuses = []
    for index in range(200):
        with pytest.raises(Refused) as refused:
            gate.admit(f"Bearer cvy_guess-{index}", client="10.9.9.9")
        statuses.append(status_of(refused.value))
    assert statuses[0] == 401 and statuses[-1] == 429
    assert CountingRegistry.lookups <= gate.failed_auth.limit + 1
    assert gate.admit(f"Bearer {key}", client="127.0.0.2") == "shop", "others are not blocked"
    assert gate.admit(f"Bearer {key}", client="10.9.9.9") == "shop", "a valid key still works"
