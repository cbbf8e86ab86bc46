"""Three LoRA deployments on one base, served by one `bentoml serve` with room for two adapters.

A real server follows three deployments, each a LoRA version on the same tiny random Llama,
with ``max_loaded_adapters=2``. Three closed-loop clients send chat completions spread over
all three (the ``model`` field picks the deployment) while one deployment is promoted to a
new version and rolled back: every answer comes from a version of the deployment it named,
none fails, and the worker evicted and loaded adapters again to serve three within two.
A model the server does not serve is a 404 in OpenAI's shape, and a key for one deployment
is refused (403) on another, both through the `openai` client.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from conveyor.errors import ConveyorError
from conveyor.registry import Registry, RolloutState
from conveyor.settings import Settings
from serving.control.many import check_many, deployments_on_base
from serving.control.rollout import promote, rollback
from serving.engine.adapter_budget import AdapterBudget
from testbed.adapter_traffic import failed, make_adapter, register_adapter, spread_chat
from testbed.live_server import running_server
from testbed.paths import REPO_ROOT
from testbed.tiny_models import write_tiny_llama
from testbed.traffic import Answer, Request, Traffic

pytestmark = pytest.mark.integration
DEPLOYMENTS = ("lora-a", "lora-b", "lora-c")


def _named(answers: list[Answer], request: Request) -> list[tuple[Answer, str]]:
    """Each answer with the deployment its request named (a client's i-th answer is its
    i-th request)."""
    seen: dict[int, int] = defaultdict(int)
    named = []
    for answer in answers:
        index = seen[answer.client]
        seen[answer.client] += 1
        body = request(answer.client, index)[1]
        named.append((answer, body.split(b'"model": "', 1)[1].split(b'"', 1)[0].decode()))
    return named


def test_three_deployments_one_server_promote_rollback_and_evict_lose_nothing(
    registry: Registry, settings: Settings, tmp_path: Path, smollm2_tokenizer_dir: Path
) -> None:
    base = write_tiny_llama(tmp_path / "base", smollm2_tokenizer_dir)
    first = {}
    for seed, name in enumerate(DEPLOYMENTS, start=1):
        adapter = make_adapter(base, tmp_path / f"{name}-1", seed)
        first[name] = register_adapter(registry, settings, base, adapter, deployment=name)
        promote(registry, first[name], canary_percent=0, timeout=10)
    second = make_adapter(base, tmp_path / "lora-b-2", 9)
    b2 = register_adapter(registry, settings, base, second, deployment="lora-b")
    _, key = registry.create_api_key("shop", ["lora-a"])
    bounded = settings.model_copy(update={"max_loaded_adapters": 2})
    request = spread_chat(DEPLOYMENTS)
    with (
        running_server(bounded, deployment=",".join(DEPLOYMENTS)) as server,
        Traffic(server.port, clients=3, request=request, timeout=30) as traffic,
    ):
        url = f"http://127.0.0.1:{server.port}/v1"
        client = openai.OpenAI(base_url=url, api_key="x")
        hi: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
        with pytest.raises(openai.NotFoundError) as missing:
            client.chat.completions.create(model="lora-z", messages=hi, max_tokens=2)
        shop = openai.OpenAI(base_url=url, api_key=key)  # a key for lora-a only
        said = shop.chat.completions.create(model="lora-a", messages=hi, max_tokens=2)
        assert said.model == first["lora-a"]
        with pytest.raises(openai.PermissionDeniedError):
            shop.chat.completions.create(model="lora-c", messages=hi, max_tokens=2)
        time.sleep(2.0)
        out = promote(registry, b2, canary_percent=0, timeout=30)
        assert out.rollout.state == RolloutState.COMPLETED
        time.sleep(2.0)
        back = rollback(registry, "lora-b", timeout=30)
        assert back.rollout.version == first["lora-b"]
        time.sleep(2.0)
        status = server.status()
        metrics = server_metrics(server.port)

    error = missing.value.body
    assert isinstance(error, dict) and error["code"] == "model_not_found"
    assert "lora-a" in error["message"] and "lora-z" in error["message"]
    answers = list(traffic.answers)
    assert len(answers) > 30, "the clients kept sending"
    assert [a for a in answers if failed(a)] == [], "no request failed"
    named = _named(answers, request)
    for answer, deployment in named:  # each answer from a version of the deployment it named
        assert answer.version is not None and answer.version.split(":")[0] == deployment
    assert {d for _, d in named} == set(DEPLOYMENTS)
    assert {a.version for a, d in named if d == "lora-b"} == {first["lora-b"], b2}

    pool = status["adapter_pool"]
    assert pool["max_loaded"] == 2 and pool["loaded"] <= 2
    assert pool["evictions"] > 0 and pool["loads"] > len(DEPLOYMENTS) + 1, pool
    assert set(status["deployments"]) == set(DEPLOYMENTS)
    assert "conveyor_adapter_evictions_total" in metrics
    assert "conveyor_adapter_cold_wait_seconds" in metrics


def server_metrics(port: int) -> str:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    return conn.getresponse().read().decode()


def test_serving_several_deployments_refuses_a_budget_below_one_adapter(
    registry: Registry, settings: Settings, tmp_path: Path, smollm2_tokenizer_dir: Path
) -> None:
    base = write_tiny_llama(tmp_path / "base", smollm2_tokenizer_dir)
    for seed, name in enumerate(DEPLOYMENTS[:2], start=1):
        adapter = make_adapter(base, tmp_path / name, seed)
        promote(registry, register_adapter(registry, settings, base, adapter, deployment=name))
    refused = _conveyor("serve", "--deployments", "lora-a,lora-b", "--adapter-memory-mb", "0.001")
    assert refused.returncode == 2, refused.stderr
    assert "over the adapter memory budget of 0.00 MiB" in refused.stderr
    missing = _conveyor("serve", "--deployments", "lora-a,lora-q")
    assert missing.returncode == 3 and "no such deployment: lora-q" in missing.stderr
    nobase = _conveyor("serve", "--base", "no-such-base")
    assert nobase.returncode == 3 and "no-such-base" in nobase.stderr
    assert deployments_on_base(registry, str(base)) == ["lora-a", "lora-b"]
    other = write_tiny_llama(tmp_path / "other", smollm2_tokenizer_dir, seed=7)
    adapter = make_adapter(other, tmp_path / "lora-c", 3)
    promote(registry, register_adapter(registry, settings, other, adapter, deployment="lora-c"))
    with pytest.raises(ConveyorError, match="one server serves one base") as apart:
        check_many(registry, ["lora-a", "lora-c"], AdapterBudget())
    hashes = re.findall(r"sha256 ([0-9a-f]{64})", str(apart.value))
    assert len(set(hashes)) == 2, "both bases named by hash"


def _conveyor(*args: str) -> subprocess.CompletedProcess[str]:
    """The real command line (its error handling included), in this test's home."""
    command = [sys.executable, "-c", "from cli.app import main; main()", *args]
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
