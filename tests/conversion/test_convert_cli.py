"""`conveyor convert` end to end on a tiny Llama version with a chat recipe: the GGUF
version is judged against its parent by the chat gates with the recipe's parity tolerances
(answers through llama.cpp), printed last, and refused with the numbers when it fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conveyor.registry import Registry
from conveyor.settings import Settings
from testbed.paths import REPO_ROOT
from testbed.tiny_models import write_tiny_llama
from testbed.versions import DEPLOYMENT, register_e2e_llm

pytestmark = pytest.mark.integration


def _convert(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conveyor", "convert", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=dict(os.environ),
        timeout=600,
    )


def test_a_gguf_that_keeps_parity_passes_and_is_printed_last(
    registry: Registry, settings: Settings, tmp_path: Path, smollm2_tokenizer_dir: Path
) -> None:
    parent = register_e2e_llm(
        registry, settings, write_tiny_llama(tmp_path / "m", smollm2_tokenizer_dir)
    )
    result = _convert(parent, "--to", "gguf", "--quant", "f16")
    assert result.returncode == 0, result.stderr[-2000:]
    new = result.stdout.strip().splitlines()[-1]
    record = registry.resolve(new)
    assert record.status == "evaluated" and record.metrics["converted_from"] == parent
    assert record.verdict is not None and record.verdict["champion"] == parent
    assert "passed" in result.stdout and f"parity with {parent}" in result.stdout
    assert registry.alias(DEPLOYMENT, "production") == parent  # judged, not moved


def test_a_gguf_that_fails_its_gate_is_refused_with_the_numbers(
    registry: Registry, settings: Settings, tmp_path: Path, smollm2_tokenizer_dir: Path
) -> None:
    folder = write_tiny_llama(tmp_path / "m", smollm2_tokenizer_dir)
    parent = register_e2e_llm(registry, settings, folder, min_rouge_l=0.99)  # a random model: ~0
    result = _convert(parent, "--quant", "q4_0")
    assert result.returncode == 1, result.stderr[-2000:]
    new = result.stdout.strip().splitlines()[-1]
    assert registry.resolve(new).status == "rejected"
    assert "refused" in result.stdout and "ROUGE-L 0.0000 < 0.9900" in result.stdout
    assert registry.alias(DEPLOYMENT, "production") == parent


def test_an_unknown_version_is_not_found(registry: Registry, settings: Settings) -> None:
    result = _convert("no-such:v1")
    assert result.returncode == 3 and result.stderr.startswith("error: ")
