"""Deployments from infra/prefect.yaml on a real Prefect server: schedule, limit, triggers.

The data-landed trigger is exercised for real: a file lands in a watched folder, the
watch emits the event, and the server's automation schedules a retrain run of the right
deployment with the new file as its data override.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.testing.utilities import prefect_test_harness

from flows.deployments import DEPLOYMENTS_FILE, build_deployments, load_specs
from flows.watch import FolderWatch, emit_data_landed, watch_folder
from testbed.opt_in import opt_in_base
from testbed.paths import RECIPES_DIR, REPO_ROOT


@pytest.mark.unit
def test_every_shipped_recipe_has_a_deployment_with_a_limit_and_a_data_trigger() -> None:
    specs = {spec.name: spec for spec in load_specs()}
    for path in RECIPES_DIR.glob("*.yaml"):
        name = yaml.safe_load(path.read_text(encoding="utf-8"))["name"]  # loads where not installed
        spec = specs[name]
        assert (REPO_ROOT / spec.parameters["recipe"]).resolve() == path.resolve()
        if opt_in_base(path) is None:
            assert spec.crons, f"{name} has no schedule"
        else:  # a nightly run would fail wherever the opt-in base is not installed
            assert not spec.crons, f"{name}: an opt-in base's schedule must be inactive"
        assert spec.concurrency == {"limit": 1, "collision_strategy": "ENQUEUE"}
        assert any("conveyor.data.landed" in t["expect"] for t in spec.triggers)


@pytest.mark.unit
def test_folder_watch_announces_files_once_they_settle(tmp_path: Path) -> None:
    watch = FolderWatch(tmp_path)
    assert watch.poll() == []
    landing = tmp_path / "new.jsonl"
    landing.write_text('{"text": "a", "label": "b"}\n')
    (tmp_path / "notes.txt").write_text("ignored: not a data file")
    assert watch.poll() == []  # first sight: still settling
    assert watch.poll() == [landing]
    assert watch.poll() == []  # announced once
    with landing.open("a") as handle:
        handle.write('{"text": "c", "label": "d"}\n')
    assert watch.poll() == []
    assert watch.poll() == [landing]  # changed and settled again


@pytest.mark.unit
def test_watch_skips_files_present_at_start(tmp_path: Path) -> None:
    (tmp_path / "old.jsonl").write_text("{}\n")
    seen: list[Path] = []
    watch_folder(tmp_path, "d", interval=0, rounds=3, announce=lambda _d, p: seen.append(p))
    assert seen == []
    watch_folder(
        tmp_path, "d", interval=0, rounds=3, existing=True, announce=lambda _d, p: seen.append(p)
    )
    assert seen == [tmp_path / "old.jsonl"]


@pytest.fixture(scope="module")
def prefect_server() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.mark.integration
def test_deployment_is_registered_and_new_data_triggers_a_retrain(
    prefect_server: None, tmp_path: Path
) -> None:
    specs = load_specs(DEPLOYMENTS_FILE, ["clinc150-minilm"])
    (deployment,) = build_deployments(specs)
    deployment_id = deployment.apply()
    with get_client(sync_client=True) as client:
        stored = client.read_deployment(deployment_id)
        assert stored.parameters["recipe"] == "recipes/clinc150-minilm.yaml"
        assert [s.schedule.cron for s in stored.schedules] == ["0 3 * * *"]  # type: ignore[union-attr]
        assert stored.global_concurrency_limit is not None
        assert stored.global_concurrency_limit.limit == 1
        names = {a.name for a in client.read_automations()}
        assert "clinc150-minilm: conveyor.data.landed" in names

    landed = tmp_path / "more-train.jsonl"
    landed.write_text('{"text": "wake me at six", "label": "alarm"}\n')
    time.sleep(1)  # let the automation service load the new automation
    emit_data_landed("clinc150-minilm", landed)
    deadline = time.monotonic() + 90
    runs = []
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline and not runs:
            runs = [
                run
                for run in client.read_flow_runs()
                if run.deployment_id == deployment_id
                and run.parameters.get("data_train") == str(landed.resolve())
            ]
            time.sleep(1)
    assert runs, "the data-landed trigger did not schedule a retrain run"


@pytest.mark.unit
def test_a_pool_deployment_runs_from_its_checkout_and_beats(tmp_path: Path) -> None:
    from flows.pool import _job_variables, silent_after

    file = tmp_path / "prefect.yaml"
    file.write_text(
        "deployments:\n"
        "  - name: d\n"
        "    work_pool: {name: p, job_variables: {env: {A: '1'}, stream_output: false}}\n"
    )
    (spec,) = load_specs(file)
    assert spec.job_variables == {"env": {"A": "1"}, "stream_output": False}
    variables = _job_variables(spec, tmp_path, 30)
    assert variables == {
        "env": {"A": "1", "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30"},
        "stream_output": False,
        "working_dir": str(tmp_path),
    }
    assert silent_after(30) > 2 * 30  # two beats missed before a run counts as dead


def test_the_demo_ends_pointing_to_its_recipes_deployment() -> None:
    """The demo runs the flow itself, so the UI's Deployments page is empty: its closing
    lines name the `conveyor deploy` that gives the demo recipe a Run button."""
    from cli.demo_cmd import then_lines
    from conveyor.recipe import load_recipe
    from flows.deployments import load_specs
    from flows.retrain import DEFAULT_RECIPE

    name = load_recipe(DEFAULT_RECIPE).name
    [spec] = load_specs(names=[name])
    deploy = [line for line in then_lines(name) if "conveyor deploy" in line]
    assert deploy and deploy[0].split("#")[0].split() == ["conveyor", "deploy", spec.name]
    assert "Run button" in deploy[0]
