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

from conveyor.recipe import load_recipe
from conveyor.registry import open_registry
from conveyor.settings import Settings
from conveyor.splits import read_split
from flows.server import ensure_prefect_server

__all__ = ["EXAMPLES", "DemoResult", "classify", "run_demo"]

EXAMPLES = (
    "set a timer for ten minutes",
    "how do i say thank you in french",
    "move 200 dollars from checking to savings",
    "what does the word serendipity mean",
    "who won the chess olympiad in 1962",
)
Echo = Callable[[str], None]


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


class RolloutTraffic(threading.Thread):
    """Real requests while a rollout of the deployment is open, so a canary can be judged."""

    def __init__(self, settings: Settings, deployment: str, endpoint: str, texts: list[str]):
        super().__init__(name="demo-traffic", daemon=True)
        self.registry = open_registry(settings)
        self.deployment, self.endpoint, self.texts = deployment, endpoint, texts
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
                _body, version = classify(self.endpoint, [rng.choice(self.texts)], timeout=10)
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
    steps: int,
    port: int,
    prefect_port: int,
    overrides: Sequence[str] = (),
    echo: Echo = print,
) -> DemoResult:
    from serving.daemon import ensure_model_server, ready

    echo(f"[1/4] Prefect server on 127.0.0.1:{prefect_port}")
    prefect = ensure_prefect_server(settings, prefect_port)
    echo(f"      {'started' if prefect.started else 'reusing'} {prefect.url}")

    recipe = load_recipe(recipe_path)
    registry = open_registry(settings)
    seed = recipe.training.seed + len(registry.list_versions(recipe.name))
    budget = [f"training.max_steps={steps}", f"training.seed={seed}"]
    rollout = ["serving.canary_percent=25", "serving.bake_seconds=20"]
    endpoint = f"http://127.0.0.1:{port}"
    traffic = None
    if ready(endpoint):
        texts = read_split(recipe.data.test or recipe.data.validation)[recipe.data.text_field]
        traffic = RolloutTraffic(settings, recipe.name, endpoint, texts.astype(str).tolist())
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
        body, version = classify(served, EXAMPLES)
        for text, answer in zip(EXAMPLES, body["results"], strict=True):
            examples.append({"text": text, "version": version, **answer})
    return DemoResult(outcome, prefect.url, served, examples, seen)
