"""Captured traffic back into training (issue 27, item 3): rows captured from a deployment are
exported by `conveyor traffic export`'s code, named in the recipe's ``data.extra``, checked
by the data checks as part of train, trained on by the real fine-tune, and named in the new
version's lineage. An extra file that leaks test texts fails the checks."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conveyor.capture_format import capture_root, day_folder, day_of
from conveyor.recipe import load_recipe
from conveyor.registry import Registry
from conveyor.serving_spec import CaptureSpec
from conveyor.settings import Settings
from data_checks.recipe import validate_recipe
from data_checks.report import Outcome, Status
from serving.control.traffic import TrafficQuery
from serving.control.traffic_export import ExportFormat, export_traffic
from serving.worker.capture import Exchange
from serving.worker.capture_rows import rows_of
from serving.worker.capture_writer import DraftFile
from testbed.paths import DATA_DIR
from tests.training.conftest import LABELS, RecipeFactory
from training import fine_tune

pytestmark = pytest.mark.integration
DEPLOYMENT = "tiny-clinc"


def _unseen_rows(tiny_data: Path, per_label: int) -> list[dict[str, str]]:
    """CLINC150 train rows of the four intents that the slice in ``tiny_data`` left out."""
    used = {json.loads(line)["text"] for name in ("train", "validation", "test")
            for line in (tiny_data / f"{name}.jsonl").read_text().splitlines()}  # fmt: skip
    counts = dict.fromkeys(LABELS, 0)
    rows = []
    for line in (DATA_DIR / "clinc150" / "train.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["label"] in counts and counts[row["label"]] < per_label and row["text"] not in used:
            counts[row["label"]] += 1
            rows.append(row)
    return rows


def _capture(home: Path, rows: list[dict[str, str]]) -> None:
    """``rows`` as /classify traffic answered by tiny-clinc:v1 for the app "shop"."""
    exchanges = [
        Exchange(f"{DEPLOYMENT}:v1", "active", "shop", "classify", 200, 3.0, r["text"], r["label"])
        for r in rows
    ]
    now = datetime.now(UTC)
    day = day_of(now)
    draft = DraftFile.open(day_folder(capture_root(home, DEPLOYMENT), day), day, "w")
    draft.append(rows_of(CaptureSpec(enabled=True), now.timestamp(), exchanges, DEPLOYMENT, "w"))
    draft.publish()


def test_an_export_is_checked_as_train_trained_on_and_named_in_lineage(
    make_recipe: RecipeFactory,
    settings: Settings,
    registry: Registry,
    tiny_data: Path,
    tmp_path: Path,
) -> None:
    _capture(settings.home, _unseen_rows(tiny_data, 10))
    exported = tmp_path / "reviewed.jsonl"
    fmt = ExportFormat("text", text_field="text", label_field="label")
    assert export_traffic(settings.home, TrafficQuery(DEPLOYMENT), fmt, exported) == 40

    recipe = load_recipe(make_recipe(), [f"data.extra=[{exported}]"])
    report = validate_recipe(recipe)
    assert report.status is Status.PASSED, [c.line() for c in report.failures]
    assert report.splits["train"]["rows"] == 160 + 40  # the export is checked as train

    result = fine_tune(recipe, settings, show_progress=False, registry=registry)
    record = registry.resolve(str(result.version))
    assert record.metrics["train_samples"] == 2 * (160 + 40)  # 2 epochs over train + extra
    assert record.data_fingerprint == report.data_fingerprint
    lineage = json.loads((Path(str(result.model_dir)) / "lineage.json").read_text())
    (extra,) = lineage["extra_data"]
    assert (extra["rows"], extra["captured_rows"]) == (40, 40)
    assert extra["captured_from"] == [f"{DEPLOYMENT}:v1"] and extra["apps"] == ["shop"]
    assert len(extra["capture_ids_sha256"]) == 64


def test_an_extra_file_that_leaks_test_texts_fails_the_checks(
    make_recipe: RecipeFactory, settings: Settings, tiny_data: Path, tmp_path: Path
) -> None:
    leaked = [json.loads(line) for line in (tiny_data / "test.jsonl").read_text().splitlines()]
    _capture(settings.home, leaked[:10])
    exported = tmp_path / "leaky.jsonl"
    fmt = ExportFormat("text", text_field="text", label_field="label")
    export_traffic(settings.home, TrafficQuery(DEPLOYMENT), fmt, exported)
    report = validate_recipe(load_recipe(make_recipe(), [f"data.extra=[{exported}]"]))
    failed = {(c.name, c.split) for c in report.checks if c.outcome is Outcome.FAILED}
    assert any("leakage" in name and split == "test" for name, split in failed), failed
    clean = validate_recipe(load_recipe(make_recipe()))
    assert not any("leakage" in c.name and c.outcome is Outcome.FAILED for c in clean.checks)
