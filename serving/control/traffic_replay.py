"""Replay captured prompts through two versions and set their answers side by side.

Where :mod:`serving.control.traffic_compare` needs both versions to have answered the same
inputs live (a canary), a replay takes the ``n`` inputs asked most often in the capture and
asks both versions now. Each version is loaded here, in this process, the way a worker loads
it (:func:`serving.worker.loading.load_version`: its folder checked against its hash, its own
backend and engine), and answers greedily: no production worker or client is touched, no
API key or pin permission is needed, nothing is written to the capture, and the same replay
gives the same answers. Classifiers answer with their label; language models with their
text through their decode engine, chat requests through the version's chat template.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from conveyor.registry import Registry
from serving.control.traffic import TrafficError, TrafficQuery, capture_connection, execute
from serving.engine.inference import classify_texts, engine_answer
from serving.worker.loading import Served, load_version, release_version

__all__ = ["Replay", "replay_inputs", "replay_versions"]

_INPUTS = """
SELECT endpoint, request, count(*) AS seen, max(tokens_out) AS tokens
FROM traffic WHERE status = 200 AND request IS NOT NULL AND endpoint IS NOT NULL
GROUP BY endpoint, request
ORDER BY seen DESC, max(ts) DESC, request
LIMIT {n}
"""


@dataclass(frozen=True)
class Replay:
    """Both versions' answers to the same replayed inputs: how many agree, and every row
    (``endpoint``, ``request``, ``seen`` in the capture, ``tokens`` its longest answer had,
    ``answer_a``, ``answer_b``, ``same``),
    the differing ones first."""

    version_a: str
    version_b: str
    replayed: int
    same: int
    rows: list[dict[str, Any]]

    @property
    def agreement(self) -> float | None:
        return self.same / self.replayed if self.replayed else None


def replay_inputs(home: Path, query: TrafficQuery, n: int) -> list[dict[str, Any]]:
    """The ``n`` answered inputs asked most often (then most recently) among ``query``'s rows,
    whatever version answered them."""
    if n < 1:
        raise TrafficError("--replay: replay at least 1 input")
    with capture_connection(home, replace(query, version=None)) as con:
        _, found = execute(con, _INPUTS.format(n=int(n)), "replay")
    return [{"endpoint": e, "request": r, "seen": int(s), "tokens": t} for e, r, s, t in found]


def _prompt_ids(tokenizer: Any, endpoint: str, request: str) -> list[int]:
    """The prompt's tokens as the OpenAI routes make them (``serving.api.openai.serving
    .prompt_ids``): chat messages through the chat template, a completion prompt as it is."""
    if endpoint != "chat":
        return [int(t) for t in tokenizer(request)["input_ids"]]
    messages = json.loads(request)
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if isinstance(ids, dict) or hasattr(ids, "input_ids"):  # newer transformers
        ids = ids["input_ids"]
    return [int(t) for t in ids]


def _answer(served: Served, asked: dict[str, Any], max_tokens: int) -> str:
    """What ``served`` answers to one captured input, greedily, with as many new tokens as
    the longest captured answer to it had (``max_tokens`` where none was counted)."""
    loaded, request = served.loaded, asked["request"]
    if asked["endpoint"] == "classify":
        return str(classify_texts(loaded, [request], 1, served.max_length)[0]["label"])
    if served.engine is None:
        raise TrafficError(f"{served.version} has no decode engine to answer with")
    ids = _prompt_ids(loaded.tokenizer, asked["endpoint"], request)
    tokens = min(asked["tokens"] or max_tokens, served.max_new_tokens)
    return engine_answer(served.engine, ids, tokens, served.adapter)


def _answers(
    registry: Registry, version: str, inputs: list[dict[str, Any]], max_tokens: int
) -> list[str]:
    served = load_version(registry.resolve(version))
    try:
        return [_answer(served, asked, max_tokens) for asked in inputs]
    finally:
        release_version(served)


def replay_versions(
    registry: Registry,
    home: Path,
    query: TrafficQuery,
    version_a: str,
    version_b: str,
    n: int,
    *,
    max_tokens: int = 64,
) -> Replay:
    """Replay the ``n`` most asked captured inputs through both versions (one loaded at a
    time, so two large versions never share the memory)."""
    a = replace(query, version=version_a).full_version() or version_a
    b = replace(query, version=version_b).full_version() or version_b
    if a == b:
        raise TrafficError(f"compare two different versions, not {a} with itself")
    for version in (a, b):
        if registry.resolve(version).deployment != query.deployment:
            raise TrafficError(f"{version} is not a version of {query.deployment}")
    inputs = replay_inputs(home, query, n)
    said_a = _answers(registry, a, inputs, max_tokens)
    said_b = _answers(registry, b, inputs, max_tokens)
    rows = [
        {**i, "answer_a": x, "answer_b": y, "same": x == y}
        for i, x, y in zip(inputs, said_a, said_b, strict=True)
    ]
    rows.sort(key=lambda r: (r["same"], -r["seen"]))
    return Replay(a, b, len(rows), sum(1 for r in rows if r["same"]), rows)
