"""The drift profile never shares a tokenizer with the batcher (issue 13, item 0).

In-process, with the real parts of a worker: a loaded tiny classifier, the batcher's padded
passes over mixed-length CLINC150 texts on one thread while another thread profiles, as a
busy event loop does. The old way (the profile tokenized with the served tokenizer) fails
passes; through the :class:`~serving.worker.profiler.ProfileRecorder` none fail, and through the
real :class:`~serving.engine.batcher.Batcher` every request is answered and every text counted.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from conveyor.registry import Registry
from conveyor.settings import Settings
from serving.engine.batcher import Batcher
from serving.engine.inference import classify_texts
from serving.worker.loading import Served, load_version
from serving.worker.profile import InputProfile
from serving.worker.profiler import ProfileRecorder
from testbed.clinc import clinc_texts
from testbed.versions import make_version

Profile = Callable[[Served, list[str], list[dict[str, Any]]], None]


@pytest.fixture
def served(registry: Registry, settings: Settings, tokenizer: Any) -> Served:
    return load_version(registry.resolve(make_version(registry, settings, tokenizer, 0)))


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Threads switch every 10 µs (not 5 ms): the race shows in seconds, not hours."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
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


def _race(
    served: Served,
    profile: Callable[[list[str]], None],
    *,
    passes_wanted: int = 200,
    until_first_failure: bool = False,
    max_seconds: float = 90.0,
) -> int:
    """The batcher's padded passes on this thread while another thread profiles non-stop
    (a busy event loop); how many passes failed. Counted in passes, not seconds, so busy
    cores make it slower, never weaker; ``until_first_failure`` stops once the race shows."""
    texts = list(clinc_texts()[:2000])
    stop = threading.Event()

    def profiling() -> None:
        index = 0
        while not stop.is_set():
            profile(texts[index % 1990 : index % 1990 + 3])
            index += 3

    thread = threading.Thread(target=profiling)
    thread.start()
    failed = passes = 0
    deadline = time.monotonic() + max_seconds
    try:
        while passes < passes_wanted and time.monotonic() < deadline:
            batch = texts[passes % 1990 : passes % 1990 + 8]
            passes += 1
            try:
                classify_texts(served.loaded, batch, 1, served.max_length)
            except ValueError as exc:
                assert "Unable to create tensor" in str(exc)
                failed += 1
                if until_first_failure:
                    break
    finally:
        stop.set()
        thread.join()
    assert failed or passes >= passes_wanted, f"only {passes} passes in {max_seconds:g} s"
    return failed


@pytest.mark.usefixtures("fast_switching")
def test_profiling_with_the_served_tokenizer_on_another_thread_fails_batches(
    served: Served,
) -> None:
    """The fault itself (what ``Runtime._profile`` did), so the next test is known to be able
    to fail."""
    tokenizer = served.loaded.tokenizer
    race = _race(
        served,
        lambda items: tokenizer(items, add_special_tokens=False),
        passes_wanted=20_000,
        until_first_failure=True,
    )
    assert race > 0


@pytest.mark.usefixtures("fast_switching")
def test_profiling_through_the_recorder_fails_none(served: Served) -> None:
    seen: list[InputProfile] = []
    recorder = ProfileRecorder(lambda _version, profile: seen.append(profile), max_pending=64)
    result = [{"label": "timer", "score": 0.5}] * 3

    def profile(items: list[str]) -> None:
        recorder.submit(served.version, served.loaded.tokenizer, items, result[: len(items)])
        time.sleep(0)  # let the recorder's thread run, as the event loop would

    assert _race(served, profile) == 0
    recorder.wait_idle()
    recorder.stop()
    assert seen and recorder.failed == 0


@pytest.mark.usefixtures("fast_switching")
def test_through_the_batcher_every_request_is_answered_and_profiled(served: Served) -> None:
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
