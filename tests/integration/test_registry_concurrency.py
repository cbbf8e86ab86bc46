"""Eight real processes write into one registry at once: nothing fails, nothing is lost.

Each worker, released together from a barrier, registers versions of a shared
deployment, moves its ``production`` alias with compare-and-set (retrying when
another worker won), appends audit entries and flushes API usage counts. Afterwards
the numbers must be exactly 1..N with no gaps, the alias history must form one
unbroken chain, every audit entry must be there and the usage must add up to the
last request (no flush lost to a read-modify-write). A second race has all eight
close the same open rollouts at once: each is closed exactly once, the losers are
told so, and a reverting winner leaves the alias where it said. Runs on SQLite (a
fresh file, so the schema migration itself races too) and on the machine's PostgreSQL.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from conveyor.errors import RegistryConflictError
from conveyor.registry import Registry, RolloutState

pytestmark = pytest.mark.integration

WORKERS = 8
ROUNDS = 12
DEPLOYMENT = "race"
DAY = "2026-12-03"
ROLLOUTS = 6
_ROLLOUT_DEPLOYMENTS = [f"{DEPLOYMENT}-{index}" for index in range(ROLLOUTS)]


def _worker(url: str, worker: int, barrier: Any, reports: Any) -> None:
    try:
        barrier.wait(timeout=60)
        registry = Registry.from_url(url, actor=f"worker-{worker}")
        for round_index in range(ROUNDS):
            version = registry.register_version(
                DEPLOYMENT, task="classification", base_model="minilm", recipe={"w": worker}
            ).version
            while True:
                current = registry.alias(DEPLOYMENT, "production")
                try:
                    registry.move_alias(
                        DEPLOYMENT,
                        "production",
                        version,
                        reason=f"w{worker}r{round_index}",
                        expected=current,
                    )
                    break
                except RegistryConflictError:
                    continue
            registry.audit(
                "worker.note", deployment=DEPLOYMENT, version=version, reason=f"w{worker}"
            )
            registry.add_usage(DAY, {"shared": (1, 0), f"app-{worker}": (2, 1), "other": (3, 2)})
        registry.close()
    except BaseException as exc:  # report every failure to the parent
        reports.put(f"worker {worker}: {type(exc).__name__}: {exc}")


def _closer(url: str, worker: int, barrier: Any, reports: Any) -> None:
    """Close every open rollout: even workers complete it, odd ones roll it back."""
    try:
        registry = Registry.from_url(url, actor=f"closer-{worker}")
        ids = [r.id for name in _ROLLOUT_DEPLOYMENTS for r in registry.rollouts(name)]
        barrier.wait(timeout=60)
        for rollout_id in ids:
            revert = worker % 2 == 1
            state = RolloutState.ROLLED_BACK if revert else RolloutState.COMPLETED
            try:
                registry.finish_rollout(rollout_id, state, reason=f"c{worker}", revert=revert)
                reports.put(f"won {rollout_id} {worker}")
            except RegistryConflictError:  # told, and nothing changed
                reports.put(f"lost {rollout_id} {worker}")
        registry.close()
    except BaseException as exc:
        reports.put(f"worker {worker}: {type(exc).__name__}: {exc}")


def _hammer(url: str, target: Callable[[str, int, Any, Any], None] = _worker) -> list[str]:
    """Run ``target`` in WORKERS processes: none may fail; the other lines they reported."""
    context = mp.get_context("spawn")
    barrier = context.Barrier(WORKERS)
    reports = context.Queue()
    processes = [
        context.Process(target=target, args=(url, i, barrier, reports)) for i in range(WORKERS)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=240)
    lines = []
    while not reports.empty():
        lines.append(reports.get())
    assert [line for line in lines if line.startswith("worker ")] == []
    assert [p.exitcode for p in processes] == [0] * WORKERS
    return [line for line in lines if not line.startswith("worker ")]


def _check(url: str) -> None:
    registry = Registry.from_url(url, actor="checker")
    total = WORKERS * ROUNDS
    versions = registry.list_versions(DEPLOYMENT, limit=10 * total)
    assert sorted(v.number for v in versions) == list(range(1, total + 1))
    history = registry.alias_history(DEPLOYMENT, "production")
    assert len(history) == total
    previous = None
    for move in history:  # one unbroken chain: no move was lost or overwritten
        assert move.from_version == previous
        previous = move.to_version
    assert registry.alias(DEPLOYMENT, "production") == previous
    log = registry.audit_log(DEPLOYMENT)
    counts: dict[str, int] = {}
    for entry in log:
        counts[entry.action] = counts.get(entry.action, 0) + 1
    assert counts == {"version.registered": total, "alias.moved": total, "worker.note": total}
    per_worker = {f"worker-{i}": 0 for i in range(WORKERS)}
    for entry in log:
        if entry.action == "worker.note":
            per_worker[entry.actor] += 1
    assert set(per_worker.values()) == {ROUNDS}
    expected_usage = {"shared": (total, 0), "other": (3 * total, 2 * total)}
    expected_usage |= {f"app-{i}": (2 * ROUNDS, ROUNDS) for i in range(WORKERS)}
    assert registry.usage(DAY) == expected_usage
    if registry.engine.dialect.name == "sqlite":
        with registry.engine.connect() as connection:
            assert connection.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    registry.close()


def _open_rollouts(url: str) -> None:
    """One open rollout per deployment, from its v1 to its v2."""
    registry = Registry.from_url(url, actor="setup")
    for deployment in _ROLLOUT_DEPLOYMENTS:
        v1, v2 = (
            registry.register_version(
                deployment, task="classification", base_model="minilm", recipe={}
            ).version
            for _ in range(2)
        )
        registry.move_alias(deployment, "production", v1, reason="first")
        registry.start_rollout(deployment, v2, kind="promotion", reason="race", expected=v1)
    registry.close()


def _race_closing(url: str) -> None:
    _open_rollouts(url)
    reports = [line.split() for line in _hammer(url, _closer)]
    wins = {int(rollout): int(worker) for outcome, rollout, worker in reports if outcome == "won"}
    losses = [rollout for outcome, rollout, _ in reports if outcome == "lost"]
    assert len(losses) == ROLLOUTS * (WORKERS - 1)
    registry = Registry.from_url(url, actor="checker")
    log = registry.audit_log()
    for deployment in _ROLLOUT_DEPLOYMENTS:
        (rollout,) = registry.rollouts(deployment)
        winner = wins.pop(rollout.id)  # exactly one closer won each rollout
        reverted = winner % 2 == 1
        assert rollout.state == (RolloutState.ROLLED_BACK if reverted else RolloutState.COMPLETED)
        assert rollout.details["outcome"] == f"c{winner}"
        closings = [
            (entry.action, entry.actor)
            for entry in log
            if entry.details.get("rollout") == rollout.id and entry.action != "promotion.started"
        ]
        assert closings == [(f"promotion.{rollout.state}", f"closer-{winner}")]
        expected_alias = rollout.previous if reverted else rollout.version
        assert registry.alias(deployment, "production") == expected_alias
        moves = len(registry.alias_history(deployment, "production"))
        assert moves == (3 if reverted else 2)
    assert wins == {}
    registry.close()


def test_eight_processes_on_one_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    _hammer(url)
    _check(url)


def test_eight_processes_close_each_rollout_once_on_sqlite(tmp_path: Path) -> None:
    _race_closing(f"sqlite:///{tmp_path / 'registry.db'}")


@pytest.mark.postgres
def test_eight_processes_on_postgres(postgres_url: str) -> None:
    _hammer(postgres_url)
    _check(postgres_url)


@pytest.mark.postgres
def test_eight_processes_close_each_rollout_once_on_postgres(postgres_url: str) -> None:
    _race_closing(postgres_url)
