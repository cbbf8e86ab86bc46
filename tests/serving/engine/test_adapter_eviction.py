"""Adapters loaded on demand and evicted least-recently-used under a budget, on a real peft
model over a tiny random Llama: an evicted adapter answers again, the same, under a new name
(nothing of its earlier load is reused); one a request holds is never evicted; an adapter
on another base is refused naming both hashes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from conveyor.model_folder import ArtifactError
from conveyor.registry import Registry
from conveyor.settings import Settings
from serving.engine.adapter_budget import AdapterBudget
from serving.engine.adapters import AdapterPool
from serving.engine.params import SamplingParams
from serving.worker.loading import Served, load_version
from testbed.adapter_traffic import make_adapter, register_adapter
from testbed.tiny_models import write_tiny_llama

pytestmark = pytest.mark.integration


def _served(
    registry: Registry, settings: Settings, base: Path, tmp: Path, name: str, seed: int
) -> Any:
    adapter = make_adapter(base, tmp / f"{name}-{seed}", seed, spread=0.5)
    version = register_adapter(registry, settings, base, adapter, deployment=name)
    return registry.resolve(version)


async def _answer(pool: AdapterPool, served: Served, ids: list[int]) -> tuple[str, list[int]]:
    """One request as the API makes it: lease the adapter, decode, let go."""
    assert served.adapter is not None and served.engine is not None
    name = await pool.acquire(served.adapter)
    try:
        tokens: list[int] = []
        async for event in served.engine.stream(ids, SamplingParams(max_tokens=8), name):
            tokens.extend(event.token_ids)
        return name, tokens
    finally:
        pool.unlease(served.adapter)


def _until_gone(served: Served, name: str) -> None:
    assert served.engine is not None
    deadline = time.monotonic() + 10
    while name in served.engine.adapters() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert name not in served.engine.adapters()


def test_an_evicted_adapter_loads_again_under_a_new_name_and_answers_the_same(
    registry: Registry, settings: Settings, tmp_path: Path, smollm2_tokenizer_dir: Path,
    smollm2_tokenizer: Any,
) -> None:  # fmt: skip
    base = write_tiny_llama(tmp_path / "base", smollm2_tokenizer_dir)
    pool = AdapterPool(budget=AdapterBudget(max_loaded=1), wait_seconds=10, single_base=True)
    ids = list(smollm2_tokenizer("name[The Eagle], food[French]")["input_ids"])
    a = load_version(_served(registry, settings, base, tmp_path, "lora-a", 1), pool)
    first_name, first = asyncio.run(_answer(pool, a, ids))
    assert first_name == a.adapter
    b = load_version(_served(registry, settings, base, tmp_path, "lora-b", 2), pool)
    _until_gone(a, first_name)  # room for one: b's load evicted a
    assert pool.view()["slots"][a.version]["loaded"] is False
    b_name, b_answer = asyncio.run(_answer(pool, b, ids))
    again_name, again = asyncio.run(_answer(pool, a, ids))  # cold: loads a, evicts b
    assert again == first and b_answer != first
    assert again_name != first_name, "a load again is a new adapter in the model"
    _until_gone(b, b_name)
    view = pool.view()
    assert (view["loads"], view["evictions"], view["loaded"]) == (3, 2, 1)
    assert a.engine is not None
    a.engine.close()


def test_an_adapter_a_request_holds_is_never_evicted(
    registry: Registry, settings: Settings, tmp_path: Path, smollm2_tokenizer_dir: Path
) -> None:
    base = write_tiny_llama(tmp_path / "base", smollm2_tokenizer_dir)
    pool = AdapterPool(budget=AdapterBudget(max_loaded=1), wait_seconds=0.5, single_base=True)
    a = load_version(_served(registry, settings, base, tmp_path, "lora-a", 1), pool)
    assert a.adapter is not None and a.engine is not None
    held = pool.try_lease(a.adapter)  # a request on lora-a, mid-answer
    second = _served(registry, settings, base, tmp_path, "lora-b", 2)
    with pytest.raises(ArtifactError, match="no room for the adapter of lora-b:v1: the 1 adapters"):
        load_version(second, pool)
    assert held in a.engine.adapters()
    pool.unlease(a.adapter)
    b = load_version(second, pool)  # the request ended: now a may go
    _until_gone(a, held)
    assert b.adapter in a.engine.adapters()
    a.engine.close()


def test_an_adapter_on_another_base_is_refused_naming_both_hashes(
    registry: Registry, settings: Settings, tmp_path: Path, smollm2_tokenizer_dir: Path
) -> None:
    one = write_tiny_llama(tmp_path / "one", smollm2_tokenizer_dir, seed=1)
    two = write_tiny_llama(tmp_path / "two", smollm2_tokenizer_dir, seed=2)
    pool = AdapterPool(single_base=True)
    a = load_version(_served(registry, settings, one, tmp_path, "lora-a", 1), pool)
    other = _served(registry, settings, two, tmp_path, "lora-b", 2)
    with pytest.raises(ArtifactError) as refused:
        load_version(other, pool)
    held, wanted = a.base, other_base(other)
    assert held and wanted and held != wanted
    assert held in str(refused.value) and wanted in str(refused.value)
    assert a.engine is not None
    a.engine.close()


def other_base(record: Any) -> str:
    from conveyor.model_folder import read_manifest

    manifest = read_manifest(Path(record.artifact_uri))
    assert manifest.base is not None
    return manifest.base.sha256
