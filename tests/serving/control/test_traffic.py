"""`conveyor traffic` over real Parquet capture files and a real DuckDB, no server: the age
filter (and the day folders it skips), two versions compared on the same inputs, and the
export read back as a training split by the readers training uses."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conveyor.capture_format import capture_root, day_folder, day_of, published_files
from conveyor.chat.records import read_chat_split
from conveyor.registry import Registry
from conveyor.serving_spec import CaptureSpec
from conveyor.settings import Settings
from serving.control.traffic import TrafficError, TrafficQuery, parse_since, summarize
from serving.control.traffic_compare import compare_versions
from serving.control.traffic_export import ExportFormat, export_traffic
from serving.worker.capture import Exchange
from serving.worker.capture_rows import rows_of
from serving.worker.capture_writer import DraftFile
from testbed.versions import DEPLOYMENT, make_version
from tests.unit.test_cli import conveyor

ON = CaptureSpec(enabled=True)


def _write(home: Path, at: datetime, exchanges: list[Exchange]) -> None:
    """Publish one capture file of ``exchanges`` answered at ``at`` (in its day's folder)."""
    rows = rows_of(ON, at.timestamp(), exchanges, DEPLOYMENT, "w")
    day = day_of(at)
    draft = DraftFile.open(day_folder(capture_root(home, DEPLOYMENT), day), day, "w")
    draft.append(rows)
    draft.publish()


def _classify(version: str, text: str, label: str, app: str = "shop") -> Exchange:
    return Exchange(f"{DEPLOYMENT}:{version}", "active", app, "classify", 200, 2.0, text, label)


def test_since_counts_only_recent_rows_and_skips_older_day_folders(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    _write(tmp_path, now - timedelta(days=3), [_classify("v1", "old", "timer")] * 4)
    _write(tmp_path, now - timedelta(hours=3), [_classify("v1", "earlier", "timer")] * 2)
    _write(tmp_path, now, [_classify("v1", "new", "timer")] * 3)
    root = capture_root(tmp_path, DEPLOYMENT)
    assert len(published_files(root)) == 3
    assert len(published_files(root, now - timedelta(hours=2))) < 3  # the old day: not read
    total = summarize(tmp_path, TrafficQuery(DEPLOYMENT))
    recent = summarize(tmp_path, TrafficQuery(DEPLOYMENT, since=parse_since("2h")))
    assert [r["requests"] for r in total] == [9] and [r["requests"] for r in recent] == [3]
    with pytest.raises(TrafficError, match="--since '2 weeks'"):
        parse_since("2 weeks")


def test_two_versions_are_compared_on_the_inputs_both_answered(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    _write(
        tmp_path,
        now,
        [
            _classify("v1", "set a timer", "timer"),
            _classify("v2", "set a timer", "timer"),
            _classify("v1", "wire money", "transfer"),
            _classify("v2", "wire money", "translate"),
            _classify("v2", "wire money", "translate"),
            _classify("v1", "only one side", "definition"),
            _classify("v2", "what is a word", "definition", app="crm"),
            _classify("v1", "what is a word", "timer", app="crm"),
        ],
    )
    found = compare_versions(tmp_path, TrafficQuery(DEPLOYMENT), "v1", "v2")
    assert (found.shared, found.same, found.only_a, found.only_b) == (3, 1, 1, 0)
    assert [(r["request"], r["answer_a"], r["answer_b"]) for r in found.differing] == [
        ("wire money", "transfer", "translate"),
        ("what is a word", "timer", "definition"),
    ]
    shop = compare_versions(tmp_path, TrafficQuery(DEPLOYMENT, app="shop"), "v1", "v2")
    assert (shop.shared, shop.same) == (2, 1)
    with pytest.raises(TrafficError, match="itself"):
        compare_versions(tmp_path, TrafficQuery(DEPLOYMENT), "v1", f"{DEPLOYMENT}:v1")


def test_an_export_reads_back_as_training_data_with_its_provenance(tmp_path: Path) -> None:
    from training.data.text import read_texts

    chat = (("system", "be brief"), ("user", "name a pub"))
    _write(
        tmp_path,
        datetime.now(UTC),
        [
            _classify("v1", "set a timer", "timer"),
            Exchange(f"{DEPLOYMENT}:v1", "active", "shop", "classify", 422, 1.0, "x" * 9),
            Exchange(f"{DEPLOYMENT}:v2", "canary", "bot", "chat", 200, 9.0, chat, "The Eagle"),
            Exchange(f"{DEPLOYMENT}:v2", "canary", "bot", "completion", 200, 9.0, "Once", " upon"),
        ],
    )
    text = tmp_path / "text.jsonl"
    fmt = ExportFormat("text", text_field="utterance", label_field="intent")
    assert export_traffic(tmp_path, TrafficQuery(DEPLOYMENT), fmt, text) == 1  # not the 422
    assert read_texts(text, "utterance", "intent") == (["set a timer"], ["timer"])
    provenance = json.loads(text.read_text())["provenance"]
    assert provenance["version"] == f"{DEPLOYMENT}:v1" and provenance["label_is_draft"] is True

    chats = tmp_path / "chat.jsonl"
    assert export_traffic(tmp_path, TrafficQuery(DEPLOYMENT), ExportFormat("chat"), chats) == 2
    chat_row, completion_row = sorted(read_chat_split(chats), key=lambda c: -len(c.messages))
    assert [m.role for m in chat_row.messages] == ["system", "user", "assistant"]
    assert chat_row.messages[-1].content == "The Eagle"
    assert [m.content for m in completion_row.messages] == ["Once", " upon"]
    with pytest.raises(TrafficError, match="nothing exported"):
        export_traffic(tmp_path, TrafficQuery(DEPLOYMENT, app="nobody"), fmt, tmp_path / "n.jsonl")
    assert not (tmp_path / "n.jsonl").exists()


def test_the_compare_command_prints_the_agreement_and_the_differing_inputs(
    registry: Registry, settings: Settings, tokenizer: Any
) -> None:
    make_version(registry, settings, tokenizer, 0)
    _write(
        settings.home,
        datetime.now(UTC),
        [_classify("v1", "wire money", "transfer"), _classify("v2", "wire money", "translate")],
    )
    result = conveyor("traffic", "compare", DEPLOYMENT, "v1", "v2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{DEPLOYMENT}:v1 vs {DEPLOYMENT}:v2: 1 inputs both answered, 0")
    assert "wire money" in lines[3] and "transfer" in lines[3] and "translate" in lines[3]
    exported = settings.home / "drafts.jsonl"  # nothing promoted: the newest version's format
    done = conveyor("traffic", "export", DEPLOYMENT, "--version", "v2", "--to", str(exported))
    assert done.returncode == 3 and "no version" in done.stderr  # v2 is not registered
    done = conveyor("traffic", "export", DEPLOYMENT, "--to", str(exported))
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in exported.read_text().splitlines()]
    assert sorted((r["text"], r["label"]) for r in rows) == [
        ("wire money", "transfer"),
        ("wire money", "translate"),
    ]
    missing = conveyor("traffic", "no-such-deployment")
    assert missing.returncode == 3 and missing.stderr.startswith("error: no deployment")


def test_a_replay_asks_both_versions_the_most_asked_inputs_again(
    registry: Registry, settings: Settings, tokenizer: Any
) -> None:
    """`compare --replay N`: the N inputs asked most often, answered now by both versions
    loaded in process; version 1's replayed answers are the ones it gave live."""
    from serving.engine.inference import classify_texts
    from serving.worker.loading import load_version, release_version

    v1 = make_version(registry, settings, tokenizer, 0)
    v2 = make_version(registry, settings, tokenizer, 1)
    asked = {"wire money": 5, "set a timer": 3, "book a flight to paris": 2, "what time": 1}
    served = load_version(registry.resolve(v1))
    live = {t: classify_texts(served.loaded, [t], 1, served.max_length)[0]["label"] for t in asked}
    release_version(served)
    exchanges = [_classify("v1", t, live[t]) for t, times in asked.items() for _ in range(times)]
    _write(settings.home, datetime.now(UTC), exchanges)

    result = conveyor("traffic", "compare", DEPLOYMENT, "v1", "v2", "--replay", "3", "--json")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert (found["version_a"], found["version_b"], found["replayed"]) == (v1, v2, 3)
    rows = found["rows"]
    assert {r["request"] for r in rows} == {"wire money", "set a timer", "book a flight to paris"}
    assert all(r["answer_a"] == live[r["request"]] for r in rows), (rows, live)
    assert found["same"] == sum(r["answer_a"] == r["answer_b"] for r in rows)
    assert [r["same"] for r in rows] == sorted(r["same"] for r in rows)  # differing first

    table = conveyor("traffic", "compare", DEPLOYMENT, "v1", "v2", "--replay", "3")
    assert table.stdout.startswith(f"{v1} vs {v2} on 3 replayed inputs: {found['same']} the same")
    itself = conveyor("traffic", "compare", DEPLOYMENT, "v1", "v1", "--replay", "3")
    assert itself.returncode != 0 and "not " + v1 + " with itself" in itself.stderr
