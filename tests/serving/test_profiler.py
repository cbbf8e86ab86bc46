"""The drift profile never shares a tokenizer with the batcher (issue 13, item 0).

In-process, with the real parts of a worker: a loaded tiny classifier, the real
:class:`~serving.batcher.Batcher` padding batches of mixed-length CLINC150 texts on its
thread, and an event loop that profiles every answer as ``Runtime.classify`` does. The old
way (tokenize the profile on the loop with the served tokenizer) fails batches; the
:class:`~serving.profiler.ProfileRecorder` fails none and still counts every text.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from conveyor.registry import Registry
from conveyor.settings import Settings
from serving.batcher import Batcher
from serving.controller import Served, load_version
from serving.inference import classify_texts
from serving.profile import InputProfile, profile_of
from serving.profiler import ProfileRecorder
from tests.clinc_slices import clinc_texts
from tests.serving.conftest import make_version

Profile = Callable[[Served, list[str], list[dict[str, Any]]], None]


@pytest.fixture
def served(registry: Registry, settings: Settings, tokenizer: Any) -> Served:
    return load_version(registry.resolve(make_version(registry, settings, tokenizer, 0)))


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Threads switch every 50 µs (not 5 ms): the race shows in seconds, not minutes."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(5e-5)
    yield
    sys.setswitchinterval(before)


def _traffic(served: Served, profile: Profile, requests: int = 1500) -> list[BaseException]:
    """``requests`` one-text requests, 32 at a time, each profiled on the loop when answered."""

    def forward(model: Served, texts: list[str], top_k: int) -> list[dict[str, Any]]:
        return classify_texts(model.loaded, texts, top_k, model.max_length)

    batcher = Batcher(forward, max_batch_size=32)
    texts = clinc_texts()
    errors: list[BaseException] = []

    async def one(index: int, gate: asyncio.Semaphore) -> None:
        async with gate:
            items = [texts[index % len(texts)]]
            try:
                results = await batcher.submit(served, served.version, items, 1)
            except ValueError as exc:
                errors.append(exc)
                return
            profile(served, items, results)

    async def main() -> None:
        gate = asyncio.Semaphore(32)
        await asyncio.gather(*(one(i, gate) for i in range(requests)))

    asyncio.run(main())
    return errors


def _on_the_loop(served: Served, items: list[str], results: list[dict[str, Any]]) -> None:
    """What ``Runtime._profile`` did: the served tokenizer, on the event loop's thread."""
    tokenizer = served.loaded.tokenizer
    profile_of(items, results, tokenizer(items, add_special_tokens=False)["input_ids"], None)


@pytest.mark.usefixtures("fast_switching")
def test_profiling_on_the_loop_with_the_served_tokenizer_fails_batches(served: Served) -> None:
    """The fault itself, so the next test is known to be able to fail."""
    errors = _traffic(served, _on_the_loop)
    assert errors, "no batch failed: the race did not show"
    assert "Unable to create tensor" in str(errors[0])


@pytest.mark.usefixtures("fast_switching")
def test_the_profile_recorder_fails_no_batch_and_counts_every_text(served: Served) -> None:
    seen: list[InputProfile] = []
    recorder = ProfileRecorder(lambda _version, profile: seen.append(profile))

    def profile(served: Served, items: list[str], results: list[dict[str, Any]]) -> None:
        recorder.submit(served.version, served.loaded.tokenizer, items, results)

    errors = _traffic(served, profile)
    recorder.wait_idle()
    recorder.stop()
    assert errors == []
    assert sum(p.texts for p in seen) == 1500 and recorder.dropped == recorder.failed == 0
    assert sum(p.tokens for p in seen) > 1500


def test_a_full_queue_drops_samples_and_never_blocks() -> None:
    import threading

    release = threading.Event()

    def slow(_version: str, _profile: InputProfile) -> None:
        release.wait(5)

    class Tokenizer:
        unk_token_id = None

        def __call__(self, texts: list[str], **_: Any) -> dict[str, Any]:
            return {"input_ids": [[1] for _ in texts]}

    recorder = ProfileRecorder(slow, max_pending=2)
    for _ in range(10):
        recorder.submit("d:v1", Tokenizer(), ["hi"], [{"label": "a", "score": 0.5}])
    assert recorder.dropped >= 7
    release.set()
    recorder.wait_idle()
    recorder.stop()
