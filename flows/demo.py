"""The demo: Prefect server, the retrain flow, a live endpoint, example requests.

Plain functions the `conveyor demo` command wires together. Every run retrains with a
new seed, so a second run really compares a new model with the one in production.
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from conveyor.chat.records import read_chat_split
from conveyor.recipe import Recipe, load_recipe
from conveyor.registry import open_registry
from conveyor.settings import Settings
from conveyor.splits import read_split
from flows.server import ensure_prefect_server

__all__ = ["DemoResult", "chat", "classify", "example_texts", "run_demo"]

CLASSIFIER_EXAMPLES = 5
Echo = Callable[[str], None]
CLASSIFIER_STEPS = 400  # about 2 minutes on 2 CPU cores, 94% in-scope accuracy on CLINC150


@dataclass
class DemoResult:
    outcome: dict[str, Any]
    prefect_url: str
    endpoint: str | None
    examples: list[dict[str, Any]] = field(default_factory=list)
    traffic: dict[str, Any] = field(default_factory=dict)


def classify(endpoint: str, texts: Sequence[str], timeout: float = 30.0) -> tuple[Any, str]:
    """POST /classify; the parsed body and the X-Model-Version that answered."""
    request = urllib.request.Request(
        f"{endpoint}/classify",
        data=json.dumps({"texts": list(texts)}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read()), response.headers.get("X-Model-Version", "?")


def chat(
    endpoint: str, model: str, prompt: str, max_tokens: int = 64, timeout: float = 60.0
) -> tuple[Any, str]:
    """POST /v1/chat/completions (greedy); the parsed body and the X-Model-Version."""
    payload = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
    }
    request = urllib.request.Request(
        f"{endpoint}/v1/chat/completions",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read()), response.headers.get("X-Model-Version", "?")


def demo_steps(recipe: Recipe) -> int:
    """The demo's training budget: the recipe's own, a classifier's capped at
    ``CLASSIFIER_STEPS`` (CLINC150's 5 epochs would take 20 minutes here; a recipe that asks
    for fewer, such as SIB-200's 176, keeps its own)."""
    training = recipe.training
    if training.max_steps:  # no need to count the data
        steps = training.max_steps
    elif recipe.task == "causal-lm":
        steps = training.planned_steps(len(read_chat_split(recipe.data.train)))
    else:
        steps = training.planned_steps(len(read_split(recipe.data.train)))
    return steps if recipe.task == "causal-lm" else min(CLASSIFIER_STEPS, steps)


def _test_inputs(recipe: Recipe) -> list[str]:
    """What the demo asks: test texts, or the distinct user prompts of the test chats."""
    path = recipe.data.test or recipe.data.validation
    if recipe.task == "causal-lm":
        prompts = [c.prompt[-1].content for c in read_chat_split(path) if c.prompt]
        return list(dict.fromkeys(prompts))
    return [str(t) for t in read_split(path)[recipe.data.text_field]]


def _ask(endpoint: str, recipe: Recipe, text: str, timeout: float) -> str:
    """One request of the deployment's kind; the version that answered."""
    if recipe.task == "causal-lm":
        return chat(endpoint, recipe.name, text, max_tokens=16, timeout=timeout)[1]
    return classify(endpoint, [text], timeout=timeout)[1]


def example_texts(recipe: Recipe, count: int = CLASSIFIER_EXAMPLES) -> list[str]:
    """Test texts of ``count`` different labels (a fixed draw), in the recipe's language."""
    frame = read_split(recipe.data.test or recipe.data.validation)
    distinct = recipe.data.label_field or recipe.data.text_field
    drawn = frame.sample(frac=1.0, random_state=0).drop_duplicates(distinct)
    return [str(text) for text in drawn[recipe.data.text_field].head(count)]


def _examples(endpoint: str, recipe: Recipe) -> list[dict[str, Any]]:
    if recipe.task != "causal-lm":
        texts = example_texts(recipe)
        body, version = classify(endpoint, texts)
        return [
            {"text": text, "version": version, **answer}
            for text, answer in zip(texts, body["results"], strict=True)
        ]
    examples = []
    for prompt in _test_inputs(recipe)[:3]:
        body, version = chat(endpoint, recipe.name, prompt)
        answer = body["choices"][0]["message"]["content"]
        examples.append({"text": prompt, "version": version, "answer": answer})
    return examples


class RolloutTraffic(threading.Thread):
    """Real requests while a rollout of the deployment is open, so a canary can be judged."""

    def __init__(self, settings: Settings, recipe: Recipe, endpoint: str, texts: list[str]):
        super().__init__(name="demo-traffic", daemon=True)
        self.registry = open_registry(settings)
        self.recipe, self.deployment = recipe, recipe.name
        self.endpoint, self.texts = endpoint, texts
        self.stopped = threading.Event()
        self.by_version: Counter[str] = Counter()
        self.failed = 0

    def _open(self) -> bool:
        _production, rollout = self.registry.serving_target(self.deployment)
        return rollout is not None and rollout.state.open

    def run(self) -> None:
        rng = random.Random(0)
        checked = 0.0
        active = False
        while not self.stopped.is_set():
            if time.monotonic() - checked > 0.5:
                active, checked = self._open(), time.monotonic()
            if not active:
                self.stopped.wait(0.5)
                continue
            try:
                version = _ask(self.endpoint, self.recipe, rng.choice(self.texts), timeout=30)
                self.by_version[version] += 1
            except (urllib.error.URLError, OSError):
                self.failed += 1
            self.stopped.wait(0.04)

    def stop(self) -> dict[str, Any]:
        self.stopped.set()
        self.join(timeout=10)
        return {"requests": sum(self.by_version.values()) + self.failed, "failed": self.failed,
                "by_version": dict(self.by_version)}  # fmt: skip


def run_demo(
    settings: Settings,
    recipe_path: str,
    *,
    steps: int | None,
    port: int,
    prefect_port: int,
    overrides: Sequence[str] = (),
    echo: Echo = print,
) -> DemoResult:
    from serving.control.daemon import ensure_model_server, ready

    echo(f"[1/4] Prefect server on 127.0.0.1:{prefect_port}")
    prefect = ensure_prefect_server(settings, prefect_port)
    echo(f"      {'started' if prefect.started else 'reusing'} {prefect.url}")

    recipe = load_recipe(recipe_path)
    if steps is None:
        steps = demo_steps(recipe)
    registry = open_registry(settings)
    seed = recipe.training.seed + len(registry.list_versions(recipe.name))
    budget = [f"training.max_steps={steps}", f"training.seed={seed}"]
    rollout = ["serving.canary_percent=25", "serving.bake_seconds=20"]
    endpoint = f"http://127.0.0.1:{port}"
    traffic = None
    if ready(endpoint):
        traffic = RolloutTraffic(settings, recipe, endpoint, _test_inputs(recipe))
        traffic.start()
    champion = registry.alias(recipe.name, "production")
    echo(
        f"[2/4] retrain flow: {recipe.name}, {steps} steps (seed {seed}); champion: "
        f"{champion or 'none yet'}"
    )
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.retrain import retrain

    try:
        with temporary_settings(updates={PREFECT_API_URL: prefect.api_url}):
            outcome = retrain(recipe_path, overrides=[*budget, *rollout, *overrides])
    finally:
        seen = traffic.stop() if traffic else {}
    echo(f"      {outcome['version']}: {outcome['reason']}")

    served = None
    if registry.alias(recipe.name, "production"):
        echo(f"[3/4] model server on {endpoint} (follows {recipe.name}@production)")
        server = ensure_model_server(settings, recipe.name, port)
        served = server.url
        echo(f"      {'started' if server.started else 'reusing'}, ready")
    else:
        echo("[3/4] no model in production yet: nothing to serve")
    examples = []
    if served:
        echo("[4/4] example requests")
        examples = _examples(served, recipe)
    return DemoResult(outcome, prefect.url, served, examples, seen)
