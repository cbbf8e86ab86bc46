"""The team topology, run for real on one machine (issue 13, item 11).

A Prefect server on PostgreSQL, a `process` work pool and two `prefect worker start`
processes; the registry on PostgreSQL; two `conveyor serve` replicas (real `bentoml serve`)
following one deployment and sharing one Redis. `conveyor deploy --pool` registers the retrain
deployment with its `conveyor.data.landed` trigger; the test emits that event as `conveyor
watch` does, and a worker (never this process) runs the retrain; the promotion converges on
both replicas. Then a second retrain: mid-canary one replica is killed (kill -9 of its process
groups) and so is the worker running the flow (it and its flow-run process). Afterwards the
rollout is closed (completed or rolled back), production names the version the surviving
replica answers with, the dead run is Crashed by the heartbeat automation, and a new run of
the deployment succeeds. Every request to the surviving replica meanwhile is counted: none lost.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import yaml

from conveyor.ports import free_port
from conveyor.registry import Registry, RolloutState, open_registry
from conveyor.settings import Settings
from flows.pool import (
    DEFAULT_HEARTBEAT_SECONDS,
    crash_automation_name,
    heartbeat_tag,
    silent_after,
)
from serving.canary.bake import live_workers
from testbed.clinc import write_slice
from testbed.paths import REPO_ROOT
from testbed.traffic import Traffic, count
from tests.e2e.topology import (
    Proc,
    emit_landed,
    http_ok,
    own_database,
    own_redis_db,
    start,
    version_answering,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

DEPLOYMENT = "tiny-topology"
POOL = "conveyor-topology"
CLI = "from cli.app import main; main()"
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@dataclass
class Topology:
    env: dict[str, str]
    registry: Registry
    replicas: list[tuple[Proc, int]]
    workers: list[Proc]
    recipe: Path
    procs: list[Proc]


def _recipe(folder: Path, base: Path) -> Path:
    write_slice("train", 60, folder / "train-a.jsonl")
    write_slice("train", 50, folder / "train-b.jsonl")
    write_slice("validation", 15, folder / "validation.jsonl")
    write_slice("test", 20, folder / "test.jsonl")
    recipe = {
        "name": DEPLOYMENT,
        "task": "classification",
        "data": {"train": "train-a.jsonl", "validation": "validation.jsonl", "test": "test.jsonl"},
        "model": {"base": str(base), "max_length": 32},
        "training": {"epochs": 3, "batch_size": 16, "lr": 3.0e-3, "seed": 5},
        "gates": {"min_accuracy": 0.3, "max_macro_f1_drop": 1.0, "max_class_f1_drop": 1.0},
        "serving": {
            "backend": "torch",
            "canary_percent": 50,
            "bake_seconds": 20,
            "rollback": {"min_requests": 10, "max_error_rate": 0.05, "max_p99_latency_ms": 60000},
        },
    }
    path = folder / f"{DEPLOYMENT}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _deployments_file(folder: Path, recipe: Path) -> Path:
    spec = {
        "name": DEPLOYMENT,
        "entrypoint": "flows/retrain.py:retrain",
        "tags": ["conveyor", DEPLOYMENT],
        "parameters": {"recipe": str(recipe), "auto_promote": True},
        "concurrency_limit": {"limit": 1, "collision_strategy": "ENQUEUE"},
        "work_pool": {"name": POOL, "work_queue_name": "default"},
        "triggers": [
            {
                "type": "event",
                "enabled": True,
                "match": {"prefect.resource.id": f"conveyor.deployment.{DEPLOYMENT}"},
                "expect": ["conveyor.data.landed"],
                "parameters": {"recipe": str(recipe), "data_train": "{{ event.payload.path }}"},
            }
        ],
    }
    path = folder / "prefect.yaml"
    path.write_text(yaml.safe_dump({"name": "topology", "deployments": [spec]}))
    return path


PREFECT = [sys.executable, "-m", "prefect"]


def _prefect_server(port: int, database: str, env: dict[str, str], logs: Path) -> Proc:
    server_env = {
        **env,
        "PREFECT_API_DATABASE_CONNECTION_URL": (
            f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}"
        ),
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # a run queued behind the deployment's limit asks again after 5 s (default 30)
        "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": "5",
    }
    command = [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    return start("prefect-server", command, server_env, logs)


def _pool_and_workers(env: dict[str, str], logs: Path) -> list[Proc]:
    subprocess.run([*PREFECT, "work-pool", "create", POOL, "--type", "process"],
                   cwd=REPO_ROOT, env=env, check=True, timeout=120)  # fmt: skip
    command = [*PREFECT, "worker", "start", "--pool", POOL, "--type", "process", "--name"]
    return [start(name, [*command, name], env, logs) for name in ("worker-a", "worker-b")]


@pytest.fixture
def topology(tmp_path: Path, conveyor_home: Path, tiny_bert: Path) -> Iterator[Topology]:
    procs: list[Proc] = []
    logs = tmp_path / "logs"
    with (
        own_database("conveyor_prefect") as prefect_db,
        own_database("conveyor_registry") as registry_db,
        own_redis_db() as redis_url,
    ):
        registry_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{registry_db}"
        registry = open_registry(Settings(db_url=registry_url, redis_url=redis_url))  # migrates
        port = free_port()
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "CONVEYOR_DB_URL": registry_url,
            "CONVEYOR_REDIS_URL": redis_url,
            "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
            "PREFECT_WORKER_QUERY_SECONDS": "2",
        }
        try:
            procs.append(_prefect_server(port, prefect_db, env, logs))
            replicas = []
            for name in ("replica-1", "replica-2"):  # they start while the rest is set up
                serve_port = free_port()
                command = [sys.executable, "-c", CLI, "serve", DEPLOYMENT]
                replica = start(name, [*command, "--port", str(serve_port)], env, logs)
                procs.append(replica)
                replicas.append((replica, serve_port))
            wait_for("Prefect server", lambda: http_ok(f"{env['PREFECT_API_URL']}/health"), 180)
            workers = _pool_and_workers(env, logs)
            procs.extend(workers)
            recipe = _recipe(tmp_path, tiny_bert)
            deploy = [sys.executable, "-c", CLI, "deploy", DEPLOYMENT, "--pool", POOL]
            deploy += ["--file", str(_deployments_file(tmp_path, recipe)), "--no-schedules"]
            subprocess.run([*deploy, "--prefect-port", str(port)],
                           cwd=REPO_ROOT, env=env, check=True, timeout=180)  # fmt: skip
            for _replica, serve_port in replicas:
                livez = f"http://127.0.0.1:{serve_port}/livez"
                wait_for("replica up", lambda url=livez: http_ok(url), 180)
            yield Topology(env, registry, replicas, workers, recipe, procs)
        except BaseException:
            for proc in procs:
                sys.stderr.write(proc.tail() + "\n")
            raise
        finally:
            for proc in reversed(procs):
                proc.kill9()
            registry.close()


def _runs(api_env: dict[str, str]) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_env["PREFECT_API_URL"]}):
        with get_client(sync_client=True) as client:
            return list(client.read_flow_runs())


def _run_for(env: dict[str, str], data: Path, exclude: Collection[UUID] = ()) -> Any:
    runs = [
        run
        for run in _runs(env)
        if run.parameters.get("data_train") == str(data.resolve()) and run.id not in exclude
    ]
    return runs[0] if runs else None


def _registered(env: dict[str, str]) -> Any:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}):
        with get_client(sync_client=True) as client:
            names = {a.name for a in client.read_automations()}
            return client.read_deployment_by_name(f"retrain/{DEPLOYMENT}"), names


def _finished(env: dict[str, str], run_id: UUID) -> Any:
    run = next(r for r in _runs(env) if r.id == run_id)
    return run if run.state_type and run.state_type.value in TERMINAL else None


def _worker_running(top: Topology, run: Any) -> Proc | None:
    pid = int(str(run.infrastructure_pid).rsplit(":", 1)[-1]) if run.infrastructure_pid else None
    return next((w for w in top.workers if pid in w.tree()), None)


def _ran_on(workers: Collection[Proc], run_id: UUID) -> list[str]:
    """The workers that ran ``run_id``: both see a scheduled run and log that they submit it,
    and the one that loses the race to claim it logs that its submission was aborted."""
    aborted = f"Aborted submission of flow run '{run_id}'"
    ran = []
    for worker in workers:
        log = worker.log.read_text(errors="replace")
        if str(run_id) in log and aborted not in log:
            ran.append(worker.name)
    return ran


def test_team_topology_converges_and_survives_a_replica_and_a_worker_dying(
    topology: Topology,
) -> None:
    top, env, registry = topology, topology.env, topology.registry
    (replica_1, port_1), (replica_2, port_2) = top.replicas
    folder = top.recipe.parent
    started = time.monotonic()

    # 0. Registered to the pool, to run from this checkout, with the zombie automation beside.
    deployment, automations = _registered(env)
    assert deployment.work_pool_name == POOL
    step = {"prefect.deployments.steps.set_working_directory": {"directory": str(REPO_ROOT)}}
    assert deployment.pull_steps == [step]
    assert deployment.job_variables["working_dir"] == str(REPO_ROOT)
    assert heartbeat_tag(DEFAULT_HEARTBEAT_SECONDS) in deployment.tags
    crash = crash_automation_name(DEFAULT_HEARTBEAT_SECONDS)
    assert {f"{DEPLOYMENT}: conveyor.data.landed", crash} <= automations

    # 1. New data lands: the trigger schedules a retrain; a worker runs it; both replicas serve it.
    time.sleep(2)  # the automation service loads the new trigger
    emit_landed(DEPLOYMENT, folder / "train-a.jsonl", env)
    first = wait_for("run A scheduled", lambda: _run_for(env, folder / "train-a.jsonl"), 60)
    assert first.work_pool_name == POOL
    first = wait_for("run A finished", lambda: _finished(env, first.id), 300, every=2)
    assert first.state_type.value == "COMPLETED", first.state
    v1 = registry.alias(DEPLOYMENT, "production")
    assert v1 == f"{DEPLOYMENT}:v1"
    ran_on = _ran_on(top.workers, first.id)
    assert len(ran_on) == 1, ran_on
    for port in (port_1, port_2):
        wait_for(f"{v1} on :{port}", lambda p=port: version_answering(p) == v1, 60)
    converged_at = time.monotonic()

    # 2. More data: a second retrain; mid-canary a replica dies, then the worker running it.
    emit_landed(DEPLOYMENT, folder / "train-b.jsonl", env)
    second = wait_for(
        "run B scheduled", lambda: _run_for(env, folder / "train-b.jsonl", {first.id}), 60
    )

    def baking() -> bool:
        _production, rollout = registry.serving_target(DEPLOYMENT)
        return rollout is not None and rollout.state == RolloutState.BAKING

    def closed() -> bool:
        _production, rollout = registry.serving_target(DEPLOYMENT)
        return rollout is not None and not rollout.state.open

    wait_for("the canary of run B", baking, 300, every=0.3)
    with Traffic(port_1, clients=2, max_seconds=300) as traffic:  # the canary's evidence too
        fault_start = time.monotonic()
        replica_2.kill9()
        second = next(r for r in _runs(env) if r.id == second.id)
        worker = _worker_running(top, second)
        assert worker is not None, f"run B {second.infrastructure_pid} on no worker"
        worker.kill9()
        wait_for("the rollout closed", closed, 90)
        # A new run (the same data again) queues behind the dead one: the limit is 1 a time.
        emit_landed(DEPLOYMENT, folder / "train-b.jsonl", env)
        third = wait_for(
            "run C scheduled",
            lambda: _run_for(env, folder / "train-b.jsonl", {first.id, second.id}),
            60,
        )
        crashed = wait_for(
            "run B terminal",
            lambda: _finished(env, second.id),
            silent_after(DEFAULT_HEARTBEAT_SECONDS) + 90,
            every=2,
        )
        production = registry.alias(DEPLOYMENT, "production")
        wait_for(f"{production} on :{port_1}", lambda: version_answering(port_1) == production, 30)
        answers = traffic.between(fault_start, time.monotonic())

    _production, rollout = registry.serving_target(DEPLOYMENT)
    assert rollout is not None and rollout.state in (
        RolloutState.COMPLETED,
        RolloutState.ROLLED_BACK,
    ), rollout
    assert rollout.version == f"{DEPLOYMENT}:v2"
    assert production == (v1 if rollout.state == RolloutState.ROLLED_BACK else rollout.version)
    assert crashed.state_type.value in {"CRASHED", "FAILED", "COMPLETED"}, crashed.state
    live = live_workers(registry, DEPLOYMENT)  # the surviving replica's worker, nothing else
    assert [(w.active_version, w.canary_version) for w in live] == [(production, None)], live
    counts = count(answers)
    sys.stderr.write(
        f"faults: replica and worker killed; rollout {rollout.state}; run B {crashed.state_type}; "
        f"surviving replica: {counts.as_dict()}\n"
    )
    assert counts.sent > 0 and counts.lost == 0, counts

    # 3. The dead run's slot is freed: the queued run starts after it was crashed, and succeeds.
    third = wait_for("run C finished", lambda: _finished(env, third.id), 240, every=2)
    assert third.state_type.value == "COMPLETED", third.state
    assert third.start_time is not None and crashed.state.timestamp is not None
    assert third.start_time >= crashed.state.timestamp, (third.start_time, crashed.state)
    production = registry.alias(DEPLOYMENT, "production")
    assert version_answering(port_1) == production
    _production, rollout = registry.serving_target(DEPLOYMENT)
    assert rollout is not None and not rollout.state.open, rollout
    sys.stderr.write(
        f"topology: converged in {converged_at - started:.0f} s, "
        f"whole test body {time.monotonic() - started:.0f} s\n"
    )
