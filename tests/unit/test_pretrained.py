"""The real SmolLM2 GGUF converts once to safetensors, is cached by its hash, and answers."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import pytest

from conveyor.pretrained import (
    SMOLLM2,
    cached_build,
    file_sha256,
    resolve_pretrained,
    smollm2_gguf,
)


def _slow_build(folder: Path) -> None:
    (folder / "weights.bin").write_bytes(b"x" * 1000)
    time.sleep(3.0)  # both racers are inside their build at once (spawn start-up is ~1 s)


def _race(root: str, source: str, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    built = cached_build(Path(root), "thing", Path(source), _slow_build)
    queue.put(str(built.path))


@pytest.mark.unit
def test_two_processes_building_at_once_leave_one_whole_folder(tmp_path: Path) -> None:
    source = tmp_path / "source.gguf"
    source.write_bytes(b"model bytes")
    root = tmp_path / "cache"
    # spawn, not fork: a fork of a pytest process that already runs threads (servers, torch,
    # tokenizers) can inherit a held lock and hang.
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    racers = [context.Process(target=_race, args=(str(root), str(source), queue)) for _ in "ab"]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=120)
    assert [racer.exitcode for racer in racers] == [0, 0]
    paths = {queue.get(timeout=5), queue.get(timeout=5)}
    assert len(paths) == 1
    folder = Path(paths.pop())
    assert [p.name for p in root.iterdir()] == [folder.name]  # no temporary folder left
    assert folder.name == f"thing-{file_sha256(source)[:16]}"
    assert (folder / "weights.bin").stat().st_size == 1000
    marker = json.loads((folder / "conveyor-base.json").read_text())
    assert marker["source_sha256"] == file_sha256(source)

    calls: list[Path] = []
    again = cached_build(root, "thing", source, calls.append)
    assert again.path == folder and calls == []  # cached: not built again
    source.write_bytes(b"other model bytes")  # new content, new hash, new folder
    assert cached_build(root, "thing", source, _slow_build).path != folder


@pytest.mark.unit
def test_a_converted_base_changed_on_disk_is_converted_again_never_used(tmp_path: Path) -> None:
    source = tmp_path / "source.gguf"
    source.write_bytes(b"model bytes")
    root = tmp_path / "cache"

    def build(folder: Path) -> None:
        (folder / "model.safetensors").write_bytes(b"w" * 100)
        (folder / "tokenizer.json").write_text("{}")

    built = cached_build(root, "thing", source, build)
    assert (root.stat().st_mode & 0o777, built.path.stat().st_mode & 0o777) == (0o700, 0o700)
    (built.path / "tokenizer.json").write_text('{"planted": true}')  # same size or not: hashed
    calls: list[Path] = []

    def counted(folder: Path) -> None:
        calls.append(folder)
        build(folder)

    again = cached_build(root, "thing", source, counted)
    assert len(calls) == 1 and again.path == built.path
    assert (again.path / "tokenizer.json").read_text() == "{}"
    assert [p.name for p in root.iterdir()] == [again.path.name]  # the changed one is gone
    assert cached_build(root, "thing", source, counted).path == again.path and len(calls) == 1


@pytest.mark.unit
def test_other_bases_are_not_built_ins(tmp_path: Path) -> None:
    assert resolve_pretrained("minilm", tmp_path) is None
    assert not (tmp_path / "base-models").exists()


@pytest.mark.integration
def test_the_real_gguf_converts_to_a_folder_that_answers(tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf()
    assert gguf.stat().st_size > 50_000_000
    converted = resolve_pretrained(SMOLLM2, tmp_path)
    assert converted is not None and converted.source_sha256 == file_sha256(gguf)
    assert converted.path.parent == tmp_path / "base-models"

    tokenizer = AutoTokenizer.from_pretrained(converted.path)
    model = AutoModelForCausalLM.from_pretrained(converted.path, dtype=torch.float32)
    assert sum(p.numel() for p in model.parameters()) > 130_000_000
    question = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
    prompt = tokenizer.apply_chat_template(question, add_generation_prompt=True, tokenize=False)
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer
