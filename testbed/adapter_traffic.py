"""LoRA versions on one base, registered for the served deployment, and chat traffic that
checks every answer: shared by tests/serving/control/test_adapter_promotion.py and
bench/adapter_promotion.py.

A chat answer counts as failed when it is not 2xx, has no answer at all, or (streamed) its
status was 200 but the events hold an error or never reach ``data: [DONE]``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from conveyor.model_folder import base_ref_for, content_sha256, write_model_folder
from conveyor.registry import Registry
from conveyor.settings import Settings
from testbed.traffic import Answer, Request
from testbed.versions import DEPLOYMENT

__all__ = [
    "alias_to_full",
    "answered_version",
    "failed",
    "make_adapter",
    "p99_ms",
    "register_adapter",
    "spread_chat",
    "varied_chat",
]

TOPICS = (
    "a restaurant near the river", "the weather in Paris", "a cheap coffee shop", "trains",
    "a family pub in the city centre", "Italian food", "the museum opening hours", "a sushi bar",
    "a quiet place to read", "breakfast options", "the best pizza", "a vegetarian menu",
)  # fmt: skip
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


def make_adapter(
    base: Path, folder: Path, seed: int, *, rank: int = 4, spread: float = 0.02
) -> Path:
    """A LoRA adapter on ``base`` with random B (of std ``spread``: it changes what the model
    writes), saved."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=TARGETS)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(base)), config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, spread)
    model.save_pretrained(str(folder))
    return folder


def register_adapter(
    registry: Registry,
    settings: Settings,
    base: Path,
    adapter: Path,
    *,
    serving: dict[str, Any] | None = None,
    deployment: str = DEPLOYMENT,
) -> str:
    """The adapter as a ``lora-adapter`` version of ``deployment`` on ``base`` (pinned by hash)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ref, _ = base_ref_for(str(base), settings.cache_dir)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(base)), str(adapter))
    folder = write_model_folder(
        settings.models_dir, deployment, model, AutoTokenizer.from_pretrained(str(base)),
        label_names=None, metrics={}, recipe={}, lineage={}, base=ref,
    )  # fmt: skip
    record = registry.register_version(
        deployment, task="causal-lm", base_model=str(base), recipe={}, artifact_uri=str(folder),
        serving_spec={"max_new_tokens": 32, **(serving or {})},
        content_sha256=content_sha256(folder),
    )  # fmt: skip
    return record.version


def varied_chat(model: str = DEPLOYMENT, stream_every: int = 3) -> Request:
    """/v1/chat/completions, a different prompt each time, greedy, 3 to 6 tokens; every
    ``stream_every``-th request streamed. Each request has its own canary key, so a canary
    split sends about its percent of requests to the candidate."""

    def make(client: int, index: int) -> tuple[str, bytes, dict[str, str]]:
        n = client * 7919 + index
        topic = TOPICS[n % len(TOPICS)]
        body: dict[str, Any] = {
            "model": model,
            "messages": [{"role": "user", "content": f"Question {n}: tell me about {topic}."}],
            "max_tokens": 3 + n % 4,
            "temperature": 0,
        }
        if index % stream_every == stream_every - 1:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        headers = {"x-canary-key": f"c{client}-{index}"}
        return "/v1/chat/completions", json.dumps(body).encode(), headers

    return make


def failed(answer: Answer) -> bool:
    """Not an answer from a model: not 2xx, no answer, or a stream that broke or erred."""
    if not 200 <= answer.status < 300:
        return True
    text = answer.body.decode("utf-8", errors="replace")
    if text.startswith("data:"):
        return '"error"' in text or "data: [DONE]" not in text
    try:
        body = json.loads(text)
    except ValueError:
        return True
    return not body.get("choices") or body.get("model") != answer.version


def answered_version(answer: Answer) -> str | None:
    """The version named by the header, checked against the body (``model`` of each chunk)."""
    text = answer.body.decode("utf-8", errors="replace")
    if text.startswith("data:"):
        first = json.loads(text.split("\n", 1)[0][len("data:") :])
        assert first["model"] == answer.version, (first, answer.version)
    return answer.version


def p99_ms(answers: Sequence[Answer]) -> float:
    ordered = sorted(a.seconds for a in answers)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000 if ordered else 0.0


def monotonic_of(when: datetime) -> float:
    """A registry timestamp (wall clock) on this process's monotonic clock."""
    return time.monotonic() - (time.time() - when.timestamp())


def alias_to_full(answers: Sequence[Answer], moved: float, target: str) -> float:
    """Seconds from the alias move to the last request sent after it that another version
    answered (a request is routed when it arrives; 0 when all of them came from ``target``)."""
    late = [a.sent_at for a in answers if a.sent_at >= moved and a.version != target]
    return max(0.0, max(late, default=moved) - moved)


def spread_chat(models: Sequence[str], stream_every: int = 3) -> Request:
    """:func:`varied_chat` spread over several deployments, in turn: request ``i`` of client
    ``c`` names ``models[(c + i) % len(models)]``."""
    each = [varied_chat(model, stream_every) for model in models]

    def make(client: int, index: int) -> tuple[str, bytes, dict[str, str]]:
        return each[(client + index) % len(each)](client, index)

    return make
