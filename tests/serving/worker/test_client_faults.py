"""Client mistakes are the client's, a model's fault fails only the request that hit it
(issue 13, item 5), with real tiny models in-process.

- a batch one bad request breaks is run again request by request;
- a text longer than the model embeds is truncated to what it embeds (no 500);
- a prompt that does not fit the context with ``max_new_tokens`` is a 422, never a model error.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from conveyor.registry import Registry
from conveyor.settings import Settings
from serving.engine.batcher import Batcher
from serving.engine.inference import classify_texts
from serving.engine.limits import context_length
from serving.worker.loading import Served, load_version
from testbed.clinc import clinc_texts
from testbed.versions import LONG_TEXT, SMOKE_SAFE_VOCAB, make_version, texts_beyond


def _served(registry: Registry, settings: Settings, tokenizer: Any, **kwargs: Any) -> Served:
    return load_version(registry.resolve(make_version(registry, settings, tokenizer, 3, **kwargs)))


def test_one_bad_request_fails_only_itself(
    registry: Registry, settings: Settings, tokenizer: Any
) -> None:
    served = _served(registry, settings, tokenizer, vocab=SMOKE_SAFE_VOCAB)
    passes: list[int] = []
    plug = threading.Event()

    def forward(model: Served, texts: list[str], top_k: int) -> list[dict[str, Any]]:
        passes.append(len(texts))
        if len(passes) == 1:
            plug.wait(10)  # the first pass holds the thread while the others queue behind it
        return classify_texts(model.loaded, texts, top_k, model.max_length)

    batcher = Batcher(forward)
    rare = set(texts_beyond(tokenizer))
    good = [t for t in clinc_texts()[:200] if t not in rare][:5]
    bad = sorted(rare)[0]

    async def run() -> list[Any]:
        first = asyncio.ensure_future(batcher.submit(served, "v", [good[0]], 1))
        await asyncio.sleep(0.2)
        rest = [batcher.submit(served, "v", [t], 1) for t in [good[1], bad, *good[2:]]]
        gathered = asyncio.gather(*rest, return_exceptions=True)
        await asyncio.sleep(0.2)
        plug.set()
        return [await first, *await gathered]

    answers = asyncio.run(run())
    assert passes[:2] == [1, 5], "the five queued requests went in one pass"
    assert passes[2:] == [1] * 5, "that pass failed and each request ran alone"
    failed = [a for a in answers if isinstance(a, BaseException)]
    assert len(failed) == 1 and isinstance(answers[2], IndexError)
    assert all(isinstance(a, list) and a[0]["label"] for a in answers if a is not answers[2])


def test_a_text_longer_than_the_model_embeds_is_truncated_to_fit(
    registry: Registry, settings: Settings, tokenizer: Any
) -> None:
    served = _served(registry, settings, tokenizer, positions=16)  # the recipe says 48
    assert (
        context_length(served.loaded.model, served.loaded.tokenizer) == 16
        and served.max_length == 16
    )
    (answer,) = classify_texts(served.loaded, [LONG_TEXT * 20], 1, served.max_length)
    assert 0 <= answer["score"] <= 1
