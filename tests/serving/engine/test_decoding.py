"""The decode engine on a tiny random Llama: continuous batching gives each request exactly
what it gets alone; stop conditions, seeds, cancellation, limits and failures."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from serving.api.validation import status_of
from serving.engine._kv_batch import KVBatch, prefill_inputs
from serving.engine._text import TextState
from serving.engine.decoding import DecodeEngine
from serving.engine.limits import MAX_TEMPERATURE
from serving.engine.params import DecodeError, EngineClosed, SamplingParams, TokenEvent
from serving.refusal import InvalidRequest

PROMPTS = (
    "name[The Eagle], eatType[coffee shop], food[French], priceRange[moderate]",
    "hello",
    "the quick brown fox jumps over the lazy dog and then",
    "one two three",
    "name[Aromi], area[city centre]",
)


@pytest.fixture(scope="module")
def model(tiny_llama: Path) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(tiny_llama)).eval()


@pytest.fixture
def engine(model: Any, smollm2_tokenizer: Any) -> Iterator[DecodeEngine]:
    engine = DecodeEngine(model, smollm2_tokenizer, max_batch=4, context=512, name="test")
    yield engine
    engine.close()


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text)["input_ids"])


def _greedy_alone(model: Any, ids: list[int], max_new: int) -> list[int]:
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=max_new, do_sample=False)
    return list(out[0, len(ids) :].tolist())


async def _tokens(
    engine: DecodeEngine,
    ids: list[int],
    params: SamplingParams,
    after: asyncio.Event | None = None,
    running: asyncio.Event | None = None,
) -> tuple[list[int], TokenEvent]:
    """The request's output tokens; it starts once ``after`` is set and sets ``running``
    after its third token (so the next one joins it mid-flight)."""
    if after is not None:
        await after.wait()
    tokens: list[int] = []
    last = None
    async for event in engine.stream(ids, params):
        tokens.extend(event.token_ids)
        last = event
        if running is not None and len(tokens) == 3:
            running.set()
    assert last is not None
    return tokens, last


@pytest.mark.integration
def test_batched_greedy_equals_generate_alone_with_joins_mid_flight(
    engine: DecodeEngine,
    model: Any,
    smollm2_tokenizer: Any,
) -> None:
    prompts = [_ids(smollm2_tokenizer, p) for p in PROMPTS]
    lengths = [24, 9, 30, 17, 40]

    async def run() -> list[tuple[list[int], TokenEvent]]:
        events = [asyncio.Event() for _ in prompts]
        jobs = [
            _tokens(
                engine, ids, SamplingParams(max_tokens=n), events[i - 1] if i else None, events[i]
            )
            for i, (ids, n) in enumerate(zip(prompts, lengths, strict=True))
        ]
        return await asyncio.gather(*jobs)

    results = asyncio.run(run())
    for ids, n, (tokens, last) in zip(prompts, lengths, results, strict=True):
        assert tokens == _greedy_alone(model, ids, n)
        assert last.prompt_tokens == len(ids) and last.completion_tokens == len(tokens)
    stats = engine.stats()
    assert stats["prefills"] == len(PROMPTS)
    assert stats["mean_batch"] > 1.5, "requests shared decode steps"
    assert stats["steps"] < sum(lengths), stats
    assert stats["running"] == 0 and stats["waiting"] == 0


class _Hold:
    """Holds the decode thread at a token boundary until released: the requests submitted
    meanwhile are admitted in one round."""

    def __init__(self, engine: DecodeEngine) -> None:
        self.engine = engine
        self.started = threading.Event()
        self.released = threading.Event()
        engine.call_between_steps(self._hold)

    def _hold(self) -> None:
        self.started.set()
        self.released.wait(30)

    async def held(self) -> None:
        assert await asyncio.to_thread(self.started.wait, 30), "the decode thread never held"

    async def release_once_waiting(self, count: int) -> None:
        deadline = time.monotonic() + 30
        while self.engine.stats()["waiting"] < count and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        self.released.set()


@pytest.mark.integration
def test_requests_admitted_together_prefill_in_one_pass_and_equal_generate_alone(
    engine: DecodeEngine,
    model: Any,
    smollm2_tokenizer: Any,
) -> None:
    first = _ids(smollm2_tokenizer, PROMPTS[2])
    rest = [_ids(smollm2_tokenizer, p) for p in (PROMPTS[0], PROMPTS[1], PROMPTS[3])]
    assert len({len(ids) for ids in [first, *rest]}) == 4, "prompts of different lengths"
    lengths = [12, 1, 20]  # the second ends at its first token, in the prefill

    async def run() -> tuple[list[tuple[list[int], TokenEvent]], int]:
        three = asyncio.Event()
        running = asyncio.ensure_future(_tokens(engine, first, SamplingParams(60), None, three))
        await three.wait()
        hold = _Hold(engine)
        await hold.held()
        still_running = int(engine.stats()["running"])
        jobs = [
            asyncio.ensure_future(_tokens(engine, ids, SamplingParams(max_tokens=n)))
            for ids, n in zip(rest, lengths, strict=True)
        ]
        await hold.release_once_waiting(len(jobs))
        return [await running, *[await job for job in jobs]], still_running

    results, still_running = asyncio.run(run())
    assert still_running == 1, "the prefill joins a batch mid-flight"
    for ids, n, (tokens, last) in zip([first, *rest], [60, *lengths], results, strict=True):
        assert tokens == _greedy_alone(model, ids, n)
        assert last.completion_tokens == n
    stats = engine.stats()
    assert stats["prefills"] == 4 and stats["prefill_batches"] == 2, stats
    assert stats["running"] == 0 and stats["errors"] == 0


@pytest.mark.integration
def test_max_prefill_tokens_splits_the_admitted_requests_across_rounds(
    model: Any,
    smollm2_tokenizer: Any,
) -> None:
    ids = _ids(smollm2_tokenizer, PROMPTS[0])
    engine = DecodeEngine(
        model, smollm2_tokenizer, context=512, max_prefill_tokens=2 * len(ids) + 1
    )

    async def run() -> None:
        hold = _Hold(engine)
        await hold.held()
        jobs = [engine.complete(ids, SamplingParams(max_tokens=3)) for _ in range(4)]
        await asyncio.gather(hold.release_once_waiting(4), *jobs)

    try:
        asyncio.run(run())
    finally:
        engine.close()
    stats = engine.stats()
    assert stats["prefills"] == 4 and stats["prefill_batches"] == 2, stats


@torch.inference_mode()
def _prefill_and_join(model: Any, batch: KVBatch, prompts: list[list[int]]) -> list[int]:
    inputs = prefill_inputs(prompts, torch.device("cpu"))
    out = model(**inputs, logits_to_keep=1)
    tokens = [int(t) for t in out.logits[:, -1].argmax(dim=-1)]
    batch.join(out.past_key_values, inputs["attention_mask"], tokens)
    return tokens


@torch.inference_mode()
def _step_matches_each_row_alone(model: Any, batch: KVBatch, rows: list[list[int]]) -> None:
    """One decode step of ``batch`` (row ``i`` has seen ``rows[i]`` but its last token) gives
    the logits of each row run alone from scratch; the greedy token is appended to each."""
    logits = model(**batch.step_inputs(), logits_to_keep=1).logits[:, -1]
    for row, seen in zip(logits, rows, strict=True):
        alone = model(input_ids=torch.tensor([seen]), logits_to_keep=1).logits[0, -1]
        torch.testing.assert_close(row, alone, atol=1e-4, rtol=1e-4)
    tokens = logits.argmax(dim=-1)
    batch.set_next(tokens)
    for seen, token in zip(rows, tokens.tolist(), strict=True):
        seen.append(int(token))


@pytest.mark.integration
def test_a_left_padded_prefill_joins_a_running_batch_as_if_each_row_ran_alone(
    model: Any,
    smollm2_tokenizer: Any,
) -> None:
    medium, short, long, shorter = (_ids(smollm2_tokenizer, PROMPTS[i]) for i in (2, 1, 0, 3))
    batch = KVBatch()
    rows = [[*medium, *_prefill_and_join(model, batch, [medium])]]
    _step_matches_each_row_alone(model, batch, rows)
    # two rows, the shorter left-padded, wider than the running row: the running row pads
    pair = _prefill_and_join(model, batch, [short, long])
    rows += [[*short, pair[0]], [*long, pair[1]]]
    assert batch.columns == len(long) and len(batch) == 3
    _step_matches_each_row_alone(model, batch, rows)
    batch.keep([0, 1])  # the long row leaves: the columns only it needed go
    rows = rows[:2]
    assert batch.columns == max(len(r) for r in rows) - 1
    # two rows narrower than the batch: the new rows pad
    pair = _prefill_and_join(model, batch, [shorter, short])
    rows += [[*shorter, pair[0]], [*short, pair[1]]]
    for _ in range(2):
        _step_matches_each_row_alone(model, batch, rows)


@pytest.mark.integration
def test_max_tokens_ends_with_length_and_text_matches_decode(
    engine: DecodeEngine,
    smollm2_tokenizer: Any,
) -> None:
    ids = _ids(smollm2_tokenizer, PROMPTS[0])
    text, last = asyncio.run(engine.complete(ids, SamplingParams(max_tokens=12)))
    tokens, _ = asyncio.run(_tokens(engine, ids, SamplingParams(max_tokens=12)))
    assert last.finish_reason == "length" and last.completion_tokens == 12
    assert text == smollm2_tokenizer.decode(tokens, skip_special_tokens=True)


@pytest.mark.integration
def test_stop_string_ends_output_before_it(
    engine: DecodeEngine,
    smollm2_tokenizer: Any,
) -> None:
    ids = _ids(smollm2_tokenizer, PROMPTS[2])
    full, _ = asyncio.run(engine.complete(ids, SamplingParams(max_tokens=30)))
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    assert stop.strip(), f"need a visible stop string in {full!r}"
    text, last = asyncio.run(engine.complete(ids, SamplingParams(max_tokens=30, stop=(stop,))))
    assert last.finish_reason == "stop"
    assert text == full[: full.index(stop)]
    assert last.completion_tokens < 30


@pytest.mark.integration
def test_seeded_sampling_repeats_and_seeds_differ(
    engine: DecodeEngine,
    smollm2_tokenizer: Any,
) -> None:
    ids = _ids(smollm2_tokenizer, PROMPTS[1])

    def sample(seed: int) -> list[int]:
        params = SamplingParams(max_tokens=20, temperature=1.0, top_p=0.9, seed=seed)
        return asyncio.run(_tokens(engine, ids, params))[0]

    first = sample(7)
    assert sample(7) == first
    assert sample(8) != first


@pytest.mark.integration
def test_closing_the_stream_stops_decoding_within_a_token_or_two(
    engine: DecodeEngine,
    smollm2_tokenizer: Any,
) -> None:
    ids = _ids(smollm2_tokenizer, PROMPTS[0])

    async def run() -> tuple[int, int]:
        stream = engine.stream(ids, SamplingParams(max_tokens=400))
        for _ in range(5):
            await stream.__anext__()
        await stream.aclose()  # the client went away
        at_close = int(engine.stats()["steps"])
        await asyncio.sleep(0.5)
        return at_close, int(engine.stats()["steps"])

    at_close, later = asyncio.run(run())
    assert later - at_close <= 2, f"{later - at_close} steps after the stream was closed"
    assert engine.stats()["cancelled"] == 1 and engine.stats()["running"] == 0


@pytest.mark.integration
def test_bounded_batch_queues_the_rest_in_order(
    model: Any,
    smollm2_tokenizer: Any,
) -> None:
    engine = DecodeEngine(model, smollm2_tokenizer, max_batch=2, context=512)
    ids = _ids(smollm2_tokenizer, PROMPTS[3])
    finished: list[int] = []

    async def one(i: int) -> None:
        await engine.complete(ids, SamplingParams(max_tokens=8 + i))
        finished.append(i)

    async def run() -> None:
        await asyncio.gather(*(one(i) for i in range(5)))

    try:
        asyncio.run(run())
    finally:
        engine.close()
    assert finished[:2] == [0, 1] and sorted(finished) == [0, 1, 2, 3, 4]
    assert engine.stats()["mean_batch"] <= 2


@pytest.mark.integration
def test_prompt_beyond_context_is_a_400_naming_both_numbers(
    model: Any,
    smollm2_tokenizer: Any,
) -> None:
    engine = DecodeEngine(model, smollm2_tokenizer, context=32)
    try:
        ids = list(range(100, 120))
        with pytest.raises(InvalidRequest) as refused:
            asyncio.run(engine.complete(ids, SamplingParams(max_tokens=13)))
        assert status_of(refused.value) == 400 and refused.value.field == "max_tokens"
        assert "20" in refused.value.reason and "13" in refused.value.reason
        assert engine.stats()["prefills"] == 0
    finally:
        engine.close()


class _Exploding(torch.nn.Module):
    """A model whose forward fails for one prompt token: a request the model cannot run."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.inner = model
        self.generation_config = model.generation_config

    def forward(self, input_ids: torch.Tensor, **kwargs: Any) -> Any:
        if bool((input_ids == 13).any()):
            raise ValueError("bad token")
        return self.inner(input_ids=input_ids, **kwargs)


@pytest.mark.integration
def test_a_failing_request_fails_alone_and_the_engine_goes_on(
    model: Any,
    smollm2_tokenizer: Any,
) -> None:
    engine = DecodeEngine(_Exploding(model), smollm2_tokenizer, context=512)
    good = _ids(smollm2_tokenizer, PROMPTS[1])
    try:
        with pytest.raises(DecodeError, match="bad token"):
            asyncio.run(engine.complete([5, 13, 7], SamplingParams(max_tokens=4)))
        _, last = asyncio.run(engine.complete(good, SamplingParams(max_tokens=4)))
        assert last.finish_reason == "length" and engine.stats()["errors"] == 1
    finally:
        engine.close()


@pytest.mark.integration
def test_a_failing_request_in_a_batched_prefill_fails_alone(
    model: Any,
    smollm2_tokenizer: Any,
) -> None:
    engine = DecodeEngine(_Exploding(model), smollm2_tokenizer, context=512)
    good = [_ids(smollm2_tokenizer, p) for p in (PROMPTS[1], PROMPTS[3])]

    async def run() -> list[Any]:
        hold = _Hold(engine)
        await hold.held()
        jobs = [
            engine.complete(ids, SamplingParams(max_tokens=4))
            for ids in (good[0], [5, 13, 7], good[1])
        ]
        results = await asyncio.gather(hold.release_once_waiting(3), *jobs, return_exceptions=True)
        return results[1:]

    try:
        first, bad, second = asyncio.run(run())
    finally:
        engine.close()
    assert isinstance(bad, DecodeError) and "bad token" in str(bad)
    for ok, ids in zip((first, second), good, strict=True):
        assert not isinstance(ok, BaseException)
        assert ok[1].finish_reason == "length"
        assert ok[0] == smollm2_tokenizer.decode(
            _greedy_alone(model, ids, 4), skip_special_tokens=True
        )
    stats = engine.stats()
    assert stats["errors"] == 1 and stats["prefills"] == 2 and stats["prefill_batches"] == 2, stats


@pytest.mark.integration
def test_close_ends_pending_requests_with_an_error(
    model: Any,
    smollm2_tokenizer: Any,
) -> None:
    engine = DecodeEngine(model, smollm2_tokenizer, context=512)
    ids = _ids(smollm2_tokenizer, PROMPTS[0])

    async def run() -> None:
        task = asyncio.ensure_future(engine.complete(ids, SamplingParams(max_tokens=400)))
        await asyncio.sleep(0.1)
        await asyncio.to_thread(engine.close)
        with pytest.raises(EngineClosed):
            await asyncio.wait_for(task, 10)

    start = time.monotonic()
    asyncio.run(run())
    assert time.monotonic() - start < 10
    with pytest.raises(EngineClosed):
        asyncio.run(engine.complete(ids, SamplingParams(max_tokens=4)))


class _ByteTokenizer:
    """Each token one byte of UTF-8: a character may span several tokens."""

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return bytes(ids).decode("utf-8", errors="replace")


def test_text_never_emits_half_a_character_and_holds_a_possible_stop() -> None:
    data = "café ☕ end".encode()
    state = TextState(_ByteTokenizer(), ())
    pieces = [state.add(b)[0] for b in data]
    assert "".join(pieces) == "café ☕ end"
    assert all("\ufffd" not in p for p in pieces)
    assert pieces[data.index("☕".encode()) + 1] == ""  # the 2nd of 3 bytes: nothing yet

    state = TextState(_ByteTokenizer(), ("☕ e",))
    out = []
    for b in data:
        text, stopped = state.add(b)
        out.append(text)
        if stopped:
            break
    assert stopped and "".join(out) == "café "


def test_sampling_params_refuse_out_of_range_values() -> None:
    with pytest.raises(InvalidRequest, match="max_tokens"):
        SamplingParams(max_tokens=0)
    with pytest.raises(InvalidRequest, match="top_p"):
        SamplingParams(max_tokens=1, top_p=0)
    SamplingParams(max_tokens=1, temperature=MAX_TEMPERATURE)  # the bound the API documents
    with pytest.raises(InvalidRequest, match="temperature"):
        SamplingParams(max_tokens=1, temperature=MAX_TEMPERATURE + 0.01)
    for seed in (2**64, -(2**63) - 1):
        with pytest.raises(InvalidRequest, match="seed"):
            SamplingParams(max_tokens=1, temperature=1.0, seed=seed)
    SamplingParams(max_tokens=1, temperature=1.0, seed=2**64 - 1)  # torch takes it
    for bad in (float("nan"), float("inf")):
        with pytest.raises(InvalidRequest, match="temperature"):
            SamplingParams(max_tokens=1, temperature=bad)


def test_a_row_whose_sampling_fails_fails_alone() -> None:
    from serving.engine._sampling import next_tokens

    logits = torch.tensor([[0.0, 3.0, 1.0], [float("nan"), 1.0, 0.0], [2.0, 0.0, 0.0]])
    generators = [torch.Generator().manual_seed(s) for s in (1, 2, 3)]
    tokens, failed = next_tokens(logits, [1.0, 1.0, 0.0], [1.0, 1.0, 1.0], generators)
    assert set(failed) == {1} and tokens[2] == 0  # row 2 greedy; row 0 sampled
    assert 0 <= tokens[0] < 3
    tiny, failed = next_tokens(logits[[0]] * 50, [1.5e-38], [1.0], generators[:1])
    assert (tiny, failed) == ([1], {}), "a tiny temperature decodes greedily, never overflows"


def test_a_top_p_below_float32s_range_keeps_the_most_likely_token() -> None:
    """1e-300 passes validation (above 0) but is 0 in float32, where the probabilities are:
    the cut dropped every token, the first too, and sampling failed (a 500)."""
    from serving.engine._sampling import next_tokens

    logits = torch.tensor([[0.0, 3.0, 1.0]] * 3)
    generators = [torch.Generator().manual_seed(s) for s in (1, 2, 3)]
    tokens, failed = next_tokens(logits, [2.0, 1.0, 1.0], [1e-300, 1e-45, 1e-30], generators)
    assert (tokens, failed) == ([1, 1, 1], {})


@pytest.mark.integration
def test_a_poisoning_temperature_beside_ordinary_requests_fails_no_one(
    engine: DecodeEngine,
    model: Any,
    smollm2_tokenizer: Any,  # noqa: F811
) -> None:
    """The audit's request: ``temperature`` 1.5e-38 passed validation, overflowed at a later
    step and failed every request in the decode batch."""
    prompts = [_ids(smollm2_tokenizer, p) for p in PROMPTS[:3]]

    async def run() -> list[Any]:
        poison = SamplingParams(max_tokens=8, temperature=1.5406077321390436e-38)
        ordinary = [
            engine.complete(ids, SamplingParams(max_tokens=8, temperature=0.8, seed=i))
            for i, ids in enumerate(prompts)
        ]
        poisoned = [engine.complete(prompts[0], poison) for _ in range(3)]
        return await asyncio.gather(*ordinary, *poisoned, return_exceptions=True)

    results = asyncio.run(run())
    assert not [r for r in results if isinstance(r, BaseException)], results
    greedy = smollm2_tokenizer.decode(_greedy_alone(model, prompts[0], 8), skip_special_tokens=True)
    assert [r[0] for r in results[3:]] == [greedy] * 3  # the tiny temperature decoded greedily
    assert engine.stats()["errors"] == 0
