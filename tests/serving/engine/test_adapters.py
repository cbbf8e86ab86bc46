"""Versions as adapters: one base in memory, adapters of several versions in one decode batch,
loaded beside the serving one without disturbing it, deleted when the controller drops them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from conveyor.model_folder import base_ref_for, content_sha256, write_model_folder
from conveyor.registry import Registry
from conveyor.settings import Settings
from serving.engine.decoding import DecodeEngine
from serving.engine.params import SamplingParams
from serving.worker.controller import RELEASE_GRACE_SECONDS, Controller
from testbed.versions import zero_in_place

pytestmark = pytest.mark.integration
DEPLOYMENT = "tiny-lora"
PROMPTS = ("name[The Eagle], food[French]", "hello there", "one two three four five six")


def _lora(base: Path, seed: int) -> Any:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"])
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(base)), config)
    with torch.no_grad():  # random B: the adapter changes what the model writes
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    return model.eval()


@pytest.fixture(scope="module")
def adapters(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folders = []
    for seed in (1, 2):
        folder = tmp_path_factory.mktemp(f"lora-{seed}")
        _lora(tiny_llama, seed).save_pretrained(str(folder))
        folders.append(folder)
    return folders


async def _tokens(engine: DecodeEngine, ids: list[int], adapter: str | None, n: int) -> list[int]:
    tokens: list[int] = []
    async for event in engine.stream(ids, SamplingParams(max_tokens=n), adapter):
        tokens.extend(event.token_ids)
    return tokens


def test_two_adapters_and_the_base_in_one_batch_match_each_alone(
    tiny_llama: Path,
    adapters: list[Path],
    smollm2_tokenizer: Any,
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(tiny_llama))
    model = PeftModel.from_pretrained(base, str(adapters[0]), adapter_name="a").eval()
    model.load_adapter(str(adapters[1]), adapter_name="b")
    engine = DecodeEngine(model, smollm2_tokenizer, context=512)
    ids = [list(smollm2_tokenizer(p)["input_ids"]) for p in PROMPTS]
    names = [None, "a", "b"]
    try:
        alone = [asyncio.run(_tokens(engine, i, n, 16)) for i, n in zip(ids, names, strict=True)]
        steps = engine.stats()["steps"]

        async def together() -> list[list[int]]:
            jobs = [_tokens(engine, i, n, 16) for i, n in zip(ids, names, strict=True)]
            return await asyncio.gather(*jobs)

        assert asyncio.run(together()) == alone
        assert engine.stats()["steps"] - steps < 20, "the three shared decode steps"
    finally:
        engine.close()
    same_prompt = [asyncio.run(_alone(model, smollm2_tokenizer, ids[0], n)) for n in names]
    assert len({tuple(t) for t in same_prompt}) == 3, "each adapter writes its own text"
    with model.disable_adapter(), torch.no_grad():
        out = model.generate(torch.tensor([ids[0]]), max_new_tokens=16, do_sample=False)
    assert same_prompt[0] == out[0, len(ids[0]) :].tolist()


async def _alone(model: Any, tokenizer: Any, ids: list[int], adapter: str | None) -> list[int]:
    engine = DecodeEngine(model, tokenizer, context=512)
    try:
        return await _tokens(engine, ids, adapter, 16)
    finally:
        engine.close()


def _register(
    registry: Registry, settings: Settings, base: Path, adapter: Path, tokenizer: Any
) -> str:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    ref, _ = base_ref_for(str(base), settings.cache_dir)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(base)), str(adapter))
    folder = write_model_folder(
        settings.models_dir, DEPLOYMENT, model, tokenizer, label_names=None, metrics={},
        recipe={}, lineage={}, base=ref,
    )  # fmt: skip
    record = registry.register_version(
        DEPLOYMENT, task="causal-lm", base_model=str(base), recipe={}, artifact_uri=str(folder),
        serving_spec={"max_new_tokens": 32}, content_sha256=content_sha256(folder),
    )  # fmt: skip
    return record.version


def _params(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def test_controller_keeps_one_base_and_moves_adapters(
    tiny_llama: Path,
    adapters: list[Path],
    smollm2_tokenizer: Any,
    settings: Settings,
    registry: Registry,
) -> None:
    v1, v2, v3 = (
        _register(registry, settings, tiny_llama, folder, smollm2_tokenizer)
        for folder in (adapters[0], adapters[1], adapters[0])
    )
    controller = Controller(registry, DEPLOYMENT)
    registry.move_alias(DEPLOYMENT, "production", v1, reason="test")
    controller.sync()
    first = controller.routing.active
    assert first is not None and first.engine is not None and first.adapter is not None
    base_params = _params(first.loaded.model)
    ids = list(smollm2_tokenizer(PROMPTS[0])["input_ids"])
    engine = first.engine
    alone = asyncio.run(_tokens(engine, ids, first.adapter, 60))

    async def load_beside() -> list[int]:
        """v2 loads while a v1 request decodes: that request's tokens do not change."""
        in_flight = asyncio.ensure_future(_tokens(engine, ids, first.adapter, 60))
        await asyncio.sleep(0.05)
        registry.move_alias(DEPLOYMENT, "production", v2, reason="test")
        await asyncio.to_thread(controller.sync)
        return await in_flight

    assert asyncio.run(load_beside()) == alone
    routing = controller.routing
    assert routing.active is not None and routing.active.version == v2
    assert routing.standby is first
    assert routing.active.engine is engine and routing.active.loaded.model is first.loaded.model
    assert len(controller.adapters.bases()) == 1
    extra = _params(first.loaded.model) - base_params
    assert 0 < extra < base_params / 20, "a second version costs an adapter, not a model"

    registry.move_alias(DEPLOYMENT, "production", v3, reason="test")
    controller.sync()  # v1 falls out of active/canary/standby: its adapter goes, later
    # A request that picked v1 just before the swap still finds its adapter in the engine.
    assert first.adapter in engine.adapters()
    assert asyncio.run(_tokens(engine, ids, first.adapter, 5)) == alone[:5]
    deadline = time.monotonic() + RELEASE_GRACE_SECONDS + 10
    while first.adapter in engine.adapters() and time.monotonic() < deadline:
        controller.sync()  # released on a tick once the grace has passed
        time.sleep(0.2)
    assert first.adapter not in engine.adapters()
    assert {controller.routing.active.adapter, controller.routing.standby.adapter} == set(  # type: ignore[union-attr]
        engine.adapters()
    )
    assert _params(first.loaded.model) == base_params + extra
    assert not engine.closed


def test_a_full_model_version_gets_its_own_engine_and_releases_it(
    tiny_llama: Path,
    smollm2_tokenizer: Any,
    settings: Settings,
    registry: Registry,
) -> None:
    from transformers import AutoModelForCausalLM

    from serving.worker.loading import load_version, release_version

    folder = write_model_folder(
        settings.models_dir, DEPLOYMENT, AutoModelForCausalLM.from_pretrained(str(tiny_llama)),
        smollm2_tokenizer, label_names=None, metrics={}, recipe={}, lineage={},
    )  # fmt: skip
    record = registry.register_version(
        DEPLOYMENT, task="causal-lm", base_model=str(tiny_llama), recipe={},
        artifact_uri=str(folder), content_sha256=content_sha256(folder),
    )  # fmt: skip
    served = load_version(record)  # the smoke set ran through the engine
    assert served.engine is not None and served.adapter is None
    assert served.engine.stats()["prefills"] >= 2
    release_version(served)
    served.engine._thread.join(timeout=10)
    assert served.engine.closed


def test_a_served_adapter_and_its_base_do_not_change_when_their_files_do(
    tiny_llama: Path,
    adapters: list[Path],
    smollm2_tokenizer: Any,
    settings: Settings,
    registry: Registry,
    tmp_path: Path,
) -> None:
    """The shared base and the adapter are read whole, not mapped from the files (see
    conveyor.model_folder.weights): zeroed on disk after the load, the tokens stay the same."""
    import shutil

    base = Path(shutil.copytree(tiny_llama, tmp_path / "base"))
    version = _register(registry, settings, base, adapters[0], smollm2_tokenizer)
    controller = Controller(registry, DEPLOYMENT)
    registry.move_alias(DEPLOYMENT, "production", version, reason="test")
    controller.sync()
    served = controller.routing.active
    assert served is not None and served.engine is not None
    ids = list(smollm2_tokenizer(PROMPTS[0])["input_ids"])
    before = asyncio.run(_tokens(served.engine, ids, served.adapter, 12))
    zero_in_place(base / "model.safetensors")
    zero_in_place(served.loaded.folder / "adapter_model.safetensors")
    try:
        assert asyncio.run(_tokens(served.engine, ids, served.adapter, 12)) == before
    finally:
        served.engine.close()
