"""Load a version for serving, answer classify / generate, and check it on a smoke set."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from conveyor.errors import ConveyorError
from conveyor.model_folder import ArtifactError, LoadedModel, load_model
from serving.engine.decoding import DecodeEngine
from serving.engine.llamacpp_engine import LlamaCppEngine
from serving.engine.params import SamplingParams

__all__ = [
    "SMOKE_PROMPTS",
    "SMOKE_TEXTS",
    "ArtifactError",
    "SmokeError",
    "classify_texts",
    "engine_answer",
    "engine_text",
    "generate_text",
    "load_for_serving",
    "preload_model_libraries",
    "smoke_check",
]

SMOKE_TEXTS = ("hello", "what time is it", "set a timer for five minutes", "thanks")
SMOKE_PROMPTS = ("hello", "the")


class SmokeError(ConveyorError):
    """A version that loads but does not answer its smoke set: it must never take traffic."""


def preload_model_libraries() -> None:
    """Import what loading a model needs, once, while the worker starts.

    transformers imports thousands of modules on first use. Left to the first load, that
    import runs on the controller thread while the event loop answers traffic, and the two
    share the GIL: on two busy cores a worker waited over a minute to become ready after its
    registry came back. Paid here, before the worker listens, it costs a few quiet seconds.
    """
    import importlib

    for module in (
        "transformers.modeling_utils",  # accelerate, torch.distributed, sympy: the bulk
        "transformers.models.auto.modeling_auto",
        "transformers.models.auto.tokenization_auto",
        "transformers.generation.utils",
    ):
        importlib.import_module(module)


def load_for_serving(
    folder: Path | str | None, task: str, *, expected_sha256: str | None = None, slots: int = 8
) -> LoadedModel:
    """Load a model folder (safetensors, or a GGUF into llama.cpp with ``slots`` parallel
    sequences) for inference; ArtifactError says why not.

    ``expected_sha256`` is the hash registered with the version: a folder that differs from
    it by one bit is refused before any of it is read as a model.
    """
    return load_model(folder, task, expected_sha256=expected_sha256, gguf_slots=slots)


@torch.inference_mode()
def classify_texts(
    loaded: LoadedModel, texts: Sequence[str], top_k: int, max_length: int
) -> list[dict[str, Any]]:
    """One forward pass over ``texts``: label, score and the ``top_k`` best for each."""
    assert loaded.label_names is not None, "classify needs a classification model"
    batch = loaded.tokenizer(
        list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
    )
    probs = torch.softmax(loaded.model(**batch).logits.float(), dim=-1)
    k = max(1, min(top_k, probs.shape[-1]))
    scores, ids = probs.topk(k, dim=-1)
    results = []
    for row_scores, row_ids in zip(scores.tolist(), ids.tolist(), strict=True):
        best = [
            {"label": loaded.label_names[i], "score": round(s, 6)}
            for s, i in zip(row_scores, row_ids, strict=True)
        ]
        results.append({"label": best[0]["label"], "score": best[0]["score"], "top_k": best})
    return results


def _generate_kwargs(loaded: LoadedModel, max_new_tokens: int, temperature: float) -> Any:
    sampling = temperature > 0
    return {
        "max_new_tokens": max_new_tokens,
        "do_sample": sampling,
        "temperature": temperature if sampling else None,
        "top_p": None,
        "top_k": None,
        "pad_token_id": loaded.tokenizer.pad_token_id,
    }


@torch.inference_mode()
def generate_text(loaded: LoadedModel, prompt: str, max_new_tokens: int, temperature: float) -> str:
    """A continuation of ``prompt``: greedy at temperature 0, sampled above."""
    encoded = loaded.tokenizer(prompt, return_tensors="pt")
    output = loaded.model.generate(
        **encoded, **_generate_kwargs(loaded, max_new_tokens, temperature)
    )
    new_tokens = output[0, encoded["input_ids"].shape[1] :]
    return str(loaded.tokenizer.decode(new_tokens, skip_special_tokens=True))


def _run_sync(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coroutine`` to its end from sync code, inside an event loop's thread or not."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def engine_text(
    engine: DecodeEngine | LlamaCppEngine,
    tokenizer: Any,
    prompt: str,
    max_tokens: int,
    adapter: str | None = None,
) -> str:
    """A greedy continuation of ``prompt`` through the decode engine, from sync code."""
    return engine_answer(engine, list(tokenizer(prompt)["input_ids"]), max_tokens, adapter)


def engine_answer(
    engine: DecodeEngine | LlamaCppEngine,
    ids: list[int],
    max_tokens: int,
    adapter: str | None = None,
) -> str:
    """A greedy answer to prompt tokens ``ids`` through the decode engine, from sync code."""
    text, _ = _run_sync(engine.complete(ids, SamplingParams(max_tokens=max_tokens), adapter))
    return str(text)


def smoke_check(
    loaded: LoadedModel,
    max_length: int,
    *,
    engine: DecodeEngine | LlamaCppEngine | None = None,
    adapter: str | None = None,
) -> dict[str, Any]:
    """Answer the smoke set with finite, well-formed outputs, or raise SmokeError saying how not.

    A generative version with a decode engine answers through it (``adapter``: its adapter)."""
    try:
        if loaded.task == "causal-lm":
            if engine is not None:
                outputs = [
                    engine_text(engine, loaded.tokenizer, p, 4, adapter) for p in SMOKE_PROMPTS
                ]
            else:
                outputs = [generate_text(loaded, p, 4, 0.0) for p in SMOKE_PROMPTS]
            return {"prompts": len(outputs)}
        results = classify_texts(loaded, SMOKE_TEXTS, 1, max_length)
    except Exception as exc:  # any failure on the smoke set disqualifies the version
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise SmokeError(f"smoke set failed: {type(exc).__name__}: {first}") from exc
    bad = [r for r in results if not math.isfinite(r["score"]) or not 0 <= r["score"] <= 1]
    if len(results) != len(SMOKE_TEXTS) or bad:
        raise SmokeError(f"smoke set gave malformed outputs: {bad or results}")
    return {"texts": len(results), "labels": sorted({r["label"] for r in results})}
