"""The drift monitor on a language model: prompts against the training prompts, no labels or
confidence to judge (plain values), and the reference of a chat recipe from its train split."""

from __future__ import annotations

import json
from pathlib import Path

from conveyor.chat import Conversation, Message
from conveyor.registry import Registry
from conveyor.settings import Settings
from data_checks.reference import profile_of_version
from data_checks.stats import chat_profile
from serving.control.monitor import MonitorThresholds, check_drift
from serving.worker.profile import InputProfile, profile_of

THRESHOLDS = MonitorThresholds(min_requests=40)
FACTS = ("name[Aromi], food[Thai]", "name[Blue Spice], area[city centre]")
ASK = "Write one or two sentences describing this restaurant, using every fact given: "


def _chat(prompt: str, answer: str, line: int) -> Conversation:
    return Conversation((Message("user", prompt), Message("assistant", answer)), line)


def _training() -> list[Conversation]:
    return [_chat(ASK + FACTS[i % 2], "A long reference answer " * 8, i) for i in range(200)]


def _live(prompts: list[str]) -> InputProfile:
    no_answer = [{"label": None, "score": None}] * len(prompts)
    return profile_of(prompts, no_answer, [[1, 2, 3]] * len(prompts), unk_token_id=0)


def test_the_reference_is_the_prompts_not_the_answers() -> None:
    profile = chat_profile(_training())
    assert profile["labels"] is None and profile["rows"] == 200
    prompt_only = chat_profile([_chat(ASK + FACTS[0], "x" * 5000, 1)])
    assert (
        prompt_only["length_counts"]
        == chat_profile([_chat(ASK + FACTS[0], "y", 1)])["length_counts"]
    ), "the answer's length is not part of what live traffic can be compared with"


def test_prompts_like_training_are_no_drift_and_confidence_is_not_judged() -> None:
    report = check_drift(chat_profile(_training()), _live([ASK + FACTS[i % 2] for i in range(80)]),
                         THRESHOLDS)  # fmt: skip
    figures = {f.name: f.value for f in report.figures}
    assert report.judged and not report.drifted, report.reason()
    assert figures["label_psi"] is None and figures["mean_confidence"] is None
    assert figures["length_psi"] is not None and figures["length_psi"] < 0.2


def test_prompts_unlike_training_are_drift() -> None:
    pasted = ["please summarise this whole contract for me: " + "clause " * 200] * 80
    report = check_drift(chat_profile(_training()), _live(pasted), THRESHOLDS)
    assert report.drifted and "length_psi" in report.reason()


def test_a_profile_without_scores_keeps_a_classifiers_scores_apart() -> None:
    mixed = _live(["a prompt"] * 3)
    classified = profile_of(["a text"], [{"label": "timer", "score": 0.8}], [[1]], None)
    mixed.merge(classified)
    assert (mixed.texts, mixed.scored, mixed.mean_confidence) == (4, 1, 0.8)
    old_heartbeat = {k: v for k, v in classified.as_dict().items() if k != "scored"}
    assert InputProfile.from_dict(old_heartbeat).scored == 1, "older workers sent classifiers"


def test_a_chat_versions_reference_is_recomputed_from_its_train_split(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from conveyor.registry import VersionRecord

    train = tmp_path / "train.jsonl"
    rows = [{"messages": [m.as_dict() for m in c.messages]} for c in _training()]
    train.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    record = VersionRecord(
        version="chat:v1", deployment="chat", number=1, task="causal-lm", base_model="b",
        artifact_uri=None, data_fingerprint=None, metrics={},
        recipe={"data": {"train": str(train), "format": "chat"}}, verdict=None,
        status="registered", created_at=datetime.now(UTC), created_by="test",
    )  # fmt: skip
    reference = profile_of_version(record)
    assert reference is not None and reference.profile == chat_profile(_training())


def test_with_capture_on_a_language_model_is_judged_on_its_captured_prompts(
    registry: Registry, settings: Settings, tmp_path: Path, smollm2_tokenizer_dir: Path
) -> None:
    """The workers' profiles hold nothing (no server), the capture holds 80 real chat
    prompts far longer than training's: the monitor reads the capture and finds the drift;
    with the capture off it reads the workers' (empty) profiles and judges nothing."""
    from datetime import UTC, datetime

    from conveyor.capture_format import capture_root, day_folder, day_of
    from conveyor.serving_spec import CaptureSpec
    from data_checks import PROFILE_KEY
    from serving.control.monitor import monitor_version
    from serving.worker.capture_rows import Exchange, rows_of
    from serving.worker.capture_writer import DraftFile
    from testbed.tiny_models import write_tiny_llama
    from testbed.versions import DEPLOYMENT, register_llm

    folder = write_tiny_llama(tmp_path / "llama", smollm2_tokenizer_dir)
    version = register_llm(
        registry,
        settings,
        folder,
        serving={"capture": {"enabled": True}, "monitor": {"min_requests": 40}},
    )
    registry.update_version(version, metrics={PROFILE_KEY: chat_profile(_training())})
    pasted = [("user", "please summarise this whole contract for me: " + "clause " * 150)]
    exchanges = [Exchange(version, "active", "bot", "chat", 200, 9.0, pasted, "It says ...")] * 80
    now = datetime.now(UTC)
    rows = rows_of(CaptureSpec(enabled=True), now.timestamp(), exchanges, DEPLOYMENT, "w")
    draft = DraftFile.open(
        day_folder(capture_root(settings.home, DEPLOYMENT), day_of(now)), day_of(now), "w"
    )
    draft.append(rows)
    draft.publish()

    checked, report = monitor_version(registry, DEPLOYMENT, home=settings.home)
    assert checked == version and report.source == "capture" and report.requests == 80
    assert report.drifted and "length_psi" in report.reason(), report.reason()
    _, blind = monitor_version(registry, DEPLOYMENT)  # no home: the workers' profiles
    assert blind.source == "heartbeats" and blind.requests == 0 and not blind.judged
