"""The real `conveyor` command in a subprocess: exit codes, one-line errors, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from conveyor.errors import ExitCode
from conveyor.registry import Registry, RolloutState
from testbed.paths import RECIPES_DIR, REPO_ROOT

pytestmark = pytest.mark.unit

DEMO = str(RECIPES_DIR / "clinc150-minilm.yaml")


def conveyor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conveyor", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")
    for needle in needles:
        assert needle in result.stderr


def test_help_lists_the_verbs(conveyor_home: Path) -> None:
    result = conveyor("--help")
    assert result.returncode == 0
    for verb in ("recipe", "models"):
        assert verb in result.stdout


def test_recipe_check_passes_on_the_demo_recipe(conveyor_home: Path) -> None:
    result = conveyor("recipe", "check", DEMO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"ok: {DEMO} (clinc150-minilm, classification)")


def test_recipe_check_names_a_misspelt_key(conveyor_home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    text = Path(DEMO).read_text().replace("  batch_size: 32", "  batch_sise: 32")
    bad.write_text(text.replace("../data", str(REPO_ROOT / "data")))
    result = conveyor("recipe", "check", str(bad))
    assert_one_line_error(result, str(bad), "training.batch_sise", "did you mean 'batch_size'")
    assert result.returncode == ExitCode.BAD_INPUT


def test_recipe_check_names_a_missing_file_and_a_wrong_type(
    conveyor_home: Path, tmp_path: Path
) -> None:
    result = conveyor("recipe", "check", DEMO, "--set", "data.train=/nowhere/train.jsonl")
    assert_one_line_error(result, "data.train: file not found: /nowhere/train.jsonl")
    result = conveyor("recipe", "check", DEMO, "--set", "training.epochs=many")
    assert_one_line_error(result, "training.epochs", "'many'", "[set by --set]")


def test_set_overrides_reach_the_resolved_recipe(conveyor_home: Path) -> None:
    result = conveyor("recipe", "check", DEMO, "--set", "training.max_steps=50", "--show")
    assert result.returncode == 0, result.stderr
    assert "  max_steps: 50\n" in result.stdout


def test_models_commands_read_the_registry(conveyor_home: Path, settings: object) -> None:
    assert conveyor("models", "list").stdout.strip() == "no versions yet"
    registry = Registry.from_url(f"sqlite:///{conveyor_home / 'registry.db'}", actor="tester")
    v1 = registry.register_version(
        "intents", task="classification", base_model="minilm", recipe={}, metrics={"accuracy": 0.91}
    ).version
    v2 = registry.register_version(
        "intents", task="classification", base_model="minilm", recipe={}
    ).version
    registry.move_alias("intents", "production", v1, reason="first model")
    registry.move_alias("intents", "production", v2, reason="better macro-F1")
    run = "http://127.0.0.1:4200/flow-runs/flow-run/5e2"
    registry.update_version(v2, lineage={"flow_run_id": "5e2", "flow_run_url": run})
    registry.close()

    listing = conveyor("models", "list")
    assert listing.returncode == 0
    lines = listing.stdout.splitlines()
    assert lines[0].split() == ["version", "status", "aliases", "created", "by"]
    assert lines[2].split()[:3] == ["intents:v2", "registered", "production"]

    shown = conveyor("models", "show", "intents@production")
    assert shown.returncode == 0 and "version:          intents:v2" in shown.stdout
    assert f"made by:          flow run {run}\n" in shown.stdout
    assert f"  intents:v2 made by: flow run {run}\n" in conveyor("status", "intents").stdout
    assert (
        "made by:          - (not made by a Prefect flow run)"
        in conveyor("models", "show", v1).stdout
    )
    as_json = json.loads(conveyor("models", "show", v1, "--json").stdout)
    assert as_json["metrics"] == {"accuracy": 0.91}

    history = conveyor("models", "history", "intents", "--audit")
    assert history.returncode == 0
    assert "better macro-F1" in history.stdout and "alias.moved" in history.stdout

    missing = conveyor("models", "show", "intents:v9")
    assert_one_line_error(missing, "no version intents:v9")
    assert missing.returncode == ExitCode.NOT_FOUND
    assert_one_line_error(conveyor("models", "show", "not a ref"), "not a version reference")


def test_unreachable_registry_is_one_line(conveyor_home: Path) -> None:
    env = {"CONVEYOR_DB_URL": "postgresql://nobody@127.0.0.1:1/none"}
    result = conveyor("models", "list", env=env)
    assert_one_line_error(result, "cannot use the registry at postgresql://nobody@127.0.0.1:1/none")


def test_the_registry_password_is_never_printed(conveyor_home: Path) -> None:
    env = {"CONVEYOR_DB_URL": "postgresql://nobody:hunter2-s3cret@127.0.0.1:1/none"}
    result = conveyor("models", "list", env=env)
    assert_one_line_error(result, "cannot use the registry at postgresql://nobody:***@127.0.0.1:1")
    assert "hunter2" not in result.stderr + result.stdout


def test_the_cli_sets_the_offline_environment(conveyor_home: Path) -> None:
    code = (
        "import os, sys; from cli import _context; _context.setup_process(False);"
        "print(os.environ['HF_HUB_OFFLINE'], os.environ['BENTOML_DO_NOT_TRACK'],"
        " os.environ['GX_ANALYTICS_ENABLED'])"
    )
    env = {
        k: v for k, v in os.environ.items() if k not in {"HF_HUB_OFFLINE", "BENTOML_DO_NOT_TRACK"}
    }
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.stdout.split() == ["1", "True", "false"]


def _registry(conveyor_home: Path) -> Registry:
    return Registry.from_url(f"sqlite:///{conveyor_home / 'registry.db'}", actor="tester")


def test_status_json_is_plain_json_with_the_rollout_as_an_object(conveyor_home: Path) -> None:
    registry = _registry(conveyor_home)
    v1 = registry.register_version(
        "intents", task="classification", base_model="minilm", recipe={}
    ).version
    rollout = registry.start_rollout(
        "intents", v1, kind="promote", reason=f"promote {v1}", expected=None
    )
    registry.finish_rollout(rollout.id, RolloutState.COMPLETED, reason="by hand")
    registry.close()

    result = conveyor("status", "intents", "--json")
    assert result.returncode == ExitCode.OK, result.stderr
    [view] = json.loads(result.stdout)
    assert view["production"] == v1 and view["workers"] == []
    assert view["rollout"]["state"] == "completed" and view["rollout"]["kind"] == "promote"
    assert view["rollout"]["version"] == v1 and view["rollout"]["previous"] is None
    datetime.fromisoformat(view["rollout"]["started_at"])  # ISO 8601, not a repr

    text = conveyor("status", "intents")
    assert text.returncode == ExitCode.OK
    assert text.stdout.startswith(f"intents: production {v1}\n")
    assert (
        "now: no live worker: nothing serves intents:v1 (start one: conveyor serve)" in text.stdout
    )


def test_status_of_an_unknown_deployment_is_not_found(conveyor_home: Path) -> None:
    registry = _registry(conveyor_home)
    registry.register_version("intents", task="classification", base_model="minilm", recipe={})
    registry.close()
    result = conveyor("status", "nosuch")
    assert_one_line_error(result, "no deployment 'nosuch'", "deployments: intents")
    assert result.returncode == ExitCode.NOT_FOUND
    assert result.stdout == ""


def test_models_show_prints_metrics_and_the_verdict_as_tables(conveyor_home: Path) -> None:
    from gates.verdict import GateCheck, Verdict

    registry = _registry(conveyor_home)
    metrics = {"test_accuracy": 0.9413333333333334, "test_p99_ms_batch1": 12.345678, "steps": 400}
    version = registry.register_version(
        "intents", task="classification", base_model="minilm", recipe={}, metrics=metrics
    ).version
    check = GateCheck("min_accuracy", 0.9413333333333334, 0.85, ">=", "pass", "accuracy ok")
    verdict = Verdict(version, None, True, "first model passes its gates", [check], "accuracy")
    payload = {
        **verdict.as_dict(),
        "report": "## Gate verdict\n\n**pass**\n\n![per-class F1](per_class_f1.png)\n",
        "report_path": "/reports/evaluation.md",
    }
    registry.update_version(version, verdict=payload)
    registry.close()

    shown = conveyor("models", "show", version)
    assert shown.returncode == ExitCode.OK, shown.stderr
    out = shown.stdout
    assert "![" not in out and "**" not in out and "0.94133" not in out
    lines = out.splitlines()
    assert lines[lines.index("metrics:") + 1].split() == ["metric", "value"]
    assert "  test_accuracy       0.9413" in lines
    assert "  test_p99_ms_batch1  12.3" in lines
    assert "gate verdict:     PASS: first model passes its gates" in lines
    assert "  min_accuracy  0.9413  >= 0.8500  pass" in lines
    assert "report:           /reports/evaluation.md" in lines


def test_demo_stop_stops_every_demo_server_of_the_home_whatever_the_recipe(
    conveyor_home: Path,
) -> None:
    """`conveyor demo --stop` after `conveyor demo --recipe recipes/e2e-smollm2.yaml` left that
    server running: it looked only for the default recipe's deployment."""
    run = conveyor_home / "run"
    run.mkdir(parents=True, exist_ok=True)
    servers = {}
    for deployment in ("e2e-smollm2", "clinc150-minilm"):
        process = subprocess.Popen(["sleep", "300"], start_new_session=True)
        (run / f"serve-{deployment}.pid").write_text(str(process.pid))
        servers[deployment] = process
    result = conveyor("demo", "--stop")
    assert result.returncode == 0, result.stderr
    assert "stopped clinc150-minilm, e2e-smollm2" in result.stdout
    for process in servers.values():
        assert process.wait(timeout=20) is not None
    assert not list(run.glob("serve-*.pid"))


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("promote",), "Missing argument 'version'. (see conveyor promote --help)"),
        (("status", "--bogus"), "No such option: --bogus (see conveyor status --help)"),
    ],
)
def test_a_usage_mistake_is_one_error_line(
    conveyor_home: Path, args: tuple[str, ...], said: str
) -> None:
    result = conveyor(*args)
    assert result.returncode == ExitCode.BAD_INPUT
    assert result.stderr == f"error: {said}\n" and result.stdout == ""


def test_counts_in_metrics_print_as_ints() -> None:
    from cli._render import _metrics_table

    shown = "\n".join(_metrics_table({"train_steps": 400.0, "accuracy": 1.0, "train_samples": 80}))
    assert "train_steps    400\n" in shown + "\n" and "400.0" not in shown
    assert "accuracy       1.0000" in shown and "train_samples  80" in shown


def test_chinese_is_printed_as_itself_in_yaml_and_json(conveyor_home: Path) -> None:
    crosswoz = str(RECIPES_DIR / "crosswoz-smollm2.yaml")
    shown = conveyor("recipe", "check", crosswoz, "--show")
    assert shown.returncode == 0, shown.stderr
    assert "中文客服回复" in shown.stdout
    assert "\\u" not in shown.stdout and "\\x" not in shown.stdout
    registry = _registry(conveyor_home)
    version = registry.register_version(
        "crosswoz", task="causal-lm", base_model="smollm2-135m-instruct",
        recipe={"description": "人均消费是131元。"},
    ).version  # fmt: skip
    registry.close()
    as_json = conveyor("models", "show", version, "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert '"description": "人均消费是131元。"' in as_json.stdout
    assert json.loads(as_json.stdout)["recipe"]["description"] == "人均消费是131元。"
