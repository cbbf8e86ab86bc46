"""`conveyor distil` end to end for a language model: a tiny Llama chat version over E2E is
the teacher; its student keeps half its layers, names it in its lineage, and is judged
against it by the chat gates (generation metrics within the parity tolerance). A student
that fails the gate is refused with exit 1, and production stays where it was. The verdict
shows the student's answer speed and weights beside the teacher's."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conveyor.registry import Registry
from conveyor.settings import Settings
from testbed.paths import REPO_ROOT
from testbed.tiny_models import write_tiny_llama
from testbed.versions import DEPLOYMENT, register_e2e_llm
from tests.training.conftest import subprocess_env

pytestmark = pytest.mark.integration
# a few steps of a random 1-layer student: its perplexity may rise, the gates are under test
CHEAP = ("--set", "training.max_steps=3", "--set", "training.batch_size=4",
         "--set", "compress.distil.max_perplexity_increase=1.0")  # fmt: skip


def _distil(home: Path, teacher: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conveyor", "distil", teacher, "--student", "layers=1",
         "--against", "none", *CHEAP, *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**subprocess_env(home), "OMP_NUM_THREADS": "1"},
        timeout=600,
    )  # fmt: skip


def test_a_chat_student_is_distilled_with_lineage_and_judged_by_the_chat_gates(
    registry: Registry, settings: Settings, tmp_path: Path, smollm2_tokenizer_dir: Path
) -> None:
    folder = write_tiny_llama(tmp_path / "m", smollm2_tokenizer_dir)  # 2 layers
    teacher = register_e2e_llm(registry, settings, folder)
    result = _distil(settings.home, teacher)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    new = result.stdout.strip().splitlines()[-1]
    student = registry.resolve(new)
    assert student.version != teacher and student.task == "causal-lm"
    assert student.metrics["distilled_from"] == teacher
    assert student.metrics["student_layers"] == 1 and student.metrics["teacher_layers"] == 2
    assert student.artifact_uri is not None
    config = json.loads((Path(student.artifact_uri) / "config.json").read_text())
    assert config["num_hidden_layers"] == 1
    assert student.verdict is not None and student.verdict["champion"] == teacher
    assert f"1-layer student of {teacher}, passed" in result.stdout
    report = Path(result.stdout.split("parity report: ")[1].splitlines()[0])
    assert report.is_file() and "ROUGE-L" in report.read_text(), report
    assert "weights on disk (MB)" in report.read_text()
    beside = rf"against {teacher}: answers [\d.]+ tokens/s vs [\d.]+ tokens/s .*; weights "
    assert re.search(beside, result.stdout), result.stdout
    judged = json.loads(report.with_suffix(".json").read_text())
    ours, theirs = judged["candidate_metrics"], judged["champion_metrics"]
    assert ours["model_size_mb"] < theirs["model_size_mb"]  # one layer fewer (~37 kB)
    assert ours["answer_tokens_per_s"] > 0 and theirs["answer_tokens_per_s"] > 0
    assert registry.alias(DEPLOYMENT, "production") == teacher  # judged, not moved


def test_a_chat_student_that_fails_parity_is_refused_and_nothing_moves(
    registry: Registry, settings: Settings, tmp_path: Path, smollm2_tokenizer_dir: Path
) -> None:
    folder = write_tiny_llama(tmp_path / "m", smollm2_tokenizer_dir)
    teacher = register_e2e_llm(registry, settings, folder, min_rouge_l=0.99)  # random: ~0
    result = _distil(settings.home, teacher, "--set", "compress.distil.max_headline_drop=0")
    assert result.returncode == 1, (result.stdout + result.stderr)[-3000:]
    new = result.stdout.strip().splitlines()[-1]
    assert registry.resolve(new).status == "rejected"
    assert "refused" in result.stdout and "ROUGE-L 0.0000 < 0.9900" in result.stdout
    assert registry.alias(DEPLOYMENT, "production") == teacher
