"""llama.cpp in this process, through ``xllamacpp``: one GGUF model, parallel slots.

:class:`LlamaCppModel` starts llama.cpp's own server engine on a GGUF file (continuous
batching over ``slots`` sequences, each holding ``context`` tokens) and runs completions on
it from Python: :meth:`~LlamaCppModel.complete` blocks until the answer is whole,
:meth:`~LlamaCppModel.stream` hands each chunk to a callback that may stop it. Prompts are
token ids, so a prompt is the same tokens whichever backend runs it (the chat template is
applied by the version's own tokenizer, as for the torch engine).

Sampling is only what conveyor's API offers (temperature, top_p, seed, stop): llama.cpp's
other samplers (top-k 40, min-p 0.05, repetition penalties ...) are switched off, so a
version answers the same request the same way on either backend; temperature 0 is greedy.

The engine also listens on a loopback port (llama.cpp's HTTP server); it is given a random
API key, so nothing beside conveyor's own routes can call it unasked.

Both the gates (answers for the parity gate) and serving (the decode engine of a GGUF
version) run a version through this one class.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.model_folder.errors import ArtifactError, first_line

__all__ = ["SLOT_CONTEXT", "Chunk", "LlamaCppModel", "gguf_context_length"]

log = logging.getLogger(__name__)

# Tokens one slot holds (prompt and answer), at most: each of the parallel slots keeps its
# own KV cache of this size (SmolLM2-135M: 12 MB per 1,000 tokens in f16).
SLOT_CONTEXT = 2048

_SAMPLERS_OFF: dict[str, Any] = {
    "top_k": 0,
    "min_p": 0.0,
    "typical_p": 1.0,
    "repeat_penalty": 1.0,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "dry_multiplier": 0.0,
    "xtc_probability": 0.0,
    "mirostat": 0,
}


@dataclass(frozen=True)
class Chunk:
    """One streamed piece of an answer; the last has ``finish_reason`` and the counts."""

    text: str
    finish_reason: str | None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


def gguf_context_length(path: Path) -> int | None:
    """The context the model was trained with, from the GGUF's metadata (None if unsaid)."""
    from gguf import GGUFReader

    reader = GGUFReader(path)
    arch = _field(reader, "general.architecture")
    value = _field(reader, f"{arch}.context_length") if arch else None
    return int(value) if value is not None else None


def _field(reader: Any, key: str) -> Any:
    field = reader.get_field(key)
    return field.contents() if field is not None else None


class LlamaCppModel:
    """A GGUF model in llama.cpp's server engine (``slots`` sequences decoding together)."""

    def __init__(self, path: Path, *, context: int, slots: int = 8, threads: int = 1) -> None:
        import xllamacpp

        if not path.is_file():
            raise ArtifactError(f"no GGUF at {path}")
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_parallel = slots
        params.n_ctx = context * slots  # each slot holds one whole request
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.warmup = False
        params.verbosity = -1
        params.api_keys = [secrets.token_urlsafe(24)]  # its own HTTP port answers no one
        try:
            self._server = xllamacpp.Server(params)
        except Exception as exc:  # a GGUF llama.cpp cannot read
            raise ArtifactError(f"llama.cpp cannot load {path}: {first_line(exc)}") from exc
        self.path = path
        self.context = context
        self.slots = slots
        self.threads = threads
        self._lock = threading.Lock()
        self._closed = False

    @property
    def address(self) -> str:
        """llama.cpp's own HTTP server (for benchmarks against it; it needs the key)."""
        return str(self._server.listening_address)

    def _body(
        self,
        prompt_ids: Sequence[int],
        max_tokens: int,
        temperature: float,
        top_p: float,
        seed: int | None,
        stop: Sequence[str],
        stream: bool,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "prompt": [int(t) for t in prompt_ids],
            "max_tokens": max_tokens,
            "temperature": temperature,
            "top_p": top_p,
            "stop": list(stop),
            "stream": stream,
            "cache_prompt": True,
            **_SAMPLERS_OFF,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        if seed is not None:
            body["seed"] = seed % (2**32)  # llama.cpp's seed is 32 bits
        return body

    def complete(
        self,
        prompt_ids: Sequence[int],
        max_tokens: int,
        *,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        stop: Sequence[str] = (),
    ) -> Chunk:
        """The whole answer (blocks; callable from many threads at once)."""
        body = self._body(prompt_ids, max_tokens, temperature, top_p, seed, stop, False)
        result = self._server.handle_completions(body)
        if not isinstance(result, dict) or "choices" not in result:
            raise RuntimeError(f"llama.cpp failed: {_error_text(result)}")
        choice, usage = result["choices"][0], result.get("usage") or {}
        return Chunk(
            choice.get("text") or "",
            choice.get("finish_reason") or "stop",
            usage.get("prompt_tokens"),
            usage.get("completion_tokens"),
        )

    def stream(
        self,
        prompt_ids: Sequence[int],
        max_tokens: int,
        on_chunk: Callable[[Chunk], bool],
        *,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        stop: Sequence[str] = (),
    ) -> None:
        """Hand each chunk to ``on_chunk`` (on this thread); it returns True to stop the
        answer there. Blocks until the answer ends; RuntimeError when llama.cpp fails it."""
        body = self._body(prompt_ids, max_tokens, temperature, top_p, seed, stop, True)
        failure: list[str] = []

        def callback(data: Any) -> bool:
            if not isinstance(data, dict) or "error" in data:
                failure.append(_error_text(data))
                return True
            chunk = _chunk_of(data)
            return chunk is not None and bool(on_chunk(chunk))

        self._server.handle_completions(body, callback)
        if failure:
            raise RuntimeError(f"llama.cpp failed: {failure[0]}")

    def close(self, wait: float = 30.0) -> None:
        """Stop llama.cpp's engine and free the model (answers still running end first).

        The engine is destroyed on a thread of its own, waited for at most ``wait`` seconds:
        a destructor that does not return leaves the model allocated (logged), never the
        caller blocked."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            holder = [self._server]
            self._server = None

        def destroy() -> None:
            holder.clear()  # the last reference: llama.cpp's engine stops and frees here

        thread = threading.Thread(target=destroy, name="llamacpp-close", daemon=True)
        thread.start()
        thread.join(timeout=wait)
        if thread.is_alive():
            log.warning("llama.cpp's engine for %s did not stop within %.0f s", self.path, wait)


def _chunk_of(data: dict[str, Any]) -> Chunk | None:
    choices = data.get("choices") or []
    usage = data.get("usage")
    if not choices and usage is None:
        return None
    choice = choices[0] if choices else {}
    usage = usage or {}
    return Chunk(
        choice.get("text") or "",
        choice.get("finish_reason"),
        usage.get("prompt_tokens"),
        usage.get("completion_tokens"),
    )


def _error_text(result: Any) -> str:
    if isinstance(result, dict) and isinstance(result.get("error"), dict):
        return str(result["error"].get("message", result["error"]))[:200]
    return json.dumps(result, default=str)[:200]
