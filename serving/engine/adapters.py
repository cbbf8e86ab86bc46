"""Versions as adapters: one base model per worker, its LoRA adapters, one engine over them.

A ``lora-adapter`` version is a few megabytes on a base named by hash (:class:`BaseRef`). The
worker's :class:`AdapterPool` keeps each base once (keyed by that hash) as a peft model; a
version adds its adapter with ``PeftModel.load_adapter`` and removes it with
``delete_adapter``. Both run on the engine's decode thread between two steps, and a delete
waits until no request for that adapter runs or waits, so requests in flight never see the
model change under them. All versions on a base share one :class:`DecodeEngine`: rows of
different versions decode in the same forward pass (peft's mixed-batch ``adapter_names``).
When a base's last adapter goes, its engine finishes what it has and the base is dropped.

A version's adapter is a *slot* (named by the adapter's first name, what ``Served.adapter``
holds). Under an :class:`~serving.engine.adapter_budget.AdapterBudget` (how many adapters,
how many bytes) a slot no request holds may be evicted, least recently used first, to make
room; a request leases its slot (:meth:`AdapterPool.acquire`), loading it again if it was
evicted, waiting up to ``wait_seconds`` for room and the load, else :class:`AdapterBusy`.
Each load gets a new name in the peft model, so nothing of an earlier load (of this version
or another) is ever reused by a request on the new one.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import threading
import time
import warnings
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.model_folder import (
    ArtifactError,
    BaseRef,
    LoadedModel,
    ModelKind,
    load_pretrained_in_memory,
    read_manifest,
    resolve_base_ref,
    verify_content,
)
from serving.engine._adapter_slots import AdapterBusy, AdapterEvents, Slot, keep_active, trim_heap
from serving.engine.adapter_budget import AdapterBudget, SlotView, adapter_bytes, choose_evictions
from serving.engine.decoding import DecodeEngine

__all__ = [
    "AdapterBusy",
    "AdapterEvents",
    "AdapterPool",
    "SharedBase",
    "adapter_name",
    "is_adapter_folder",
]

log = logging.getLogger(__name__)
_serial = itertools.count(1)


def adapter_name(version: str) -> str:
    """A peft adapter name for ``version`` (no dots), unique in this process: a version
    dropped and loaded again never meets its own adapter still waiting to be deleted."""
    return f"{re.sub(r'[^0-9A-Za-z_]', '_', version)}_{next(_serial)}"


def is_adapter_folder(folder: Path | None) -> bool:
    return folder is not None and (folder / "adapter_config.json").is_file()


@dataclass
class SharedBase:
    """A base model held once, the adapters on it (slot -> folder), and their engine."""

    key: str
    model: Any  # a peft model over the base
    engine: DecodeEngine
    adapters: dict[str, Path] = field(default_factory=dict)


def _tokenizer(folder: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _checked(folder: Path | None, expected_sha256: str | None) -> tuple[Path, BaseRef]:
    if folder is None or not folder.is_dir():
        raise ArtifactError(f"artifact missing: {folder} does not exist")
    if expected_sha256:
        verify_content(folder, expected_sha256)
    manifest = read_manifest(folder)
    if manifest.kind is not ModelKind.LORA_ADAPTER or manifest.base is None:
        raise ArtifactError(f"{folder} holds a {manifest.kind} model, not a LoRA adapter on a base")
    return folder, manifest.base


class AdapterPool:
    """The shared bases of one worker process, keyed by the base's SHA-256, and the adapter
    slots on them, within ``budget``. ``single_base``: every adapter must be on the base the
    first one brought (a server of many deployments on one base)."""

    def __init__(
        self,
        cache_dir: Path | None = None,
        *,
        max_batch: int = 8,
        budget: AdapterBudget | None = None,
        wait_seconds: float = 10.0,
        single_base: bool = False,
        events: AdapterEvents | None = None,
    ) -> None:
        self.cache_dir = cache_dir
        self.max_batch = max_batch
        self.budget = budget or AdapterBudget()
        self.wait_seconds = wait_seconds
        self.single_base = single_base
        self.events = events
        self._bases: dict[str, SharedBase] = {}
        self._slots: dict[str, Slot] = {}
        self._lock = threading.RLock()  # a closed engine calls back at once
        self._base_lock = threading.Lock()  # one base opened at a time
        self.loads = 0
        self.evictions = 0

    def bases(self) -> dict[str, SharedBase]:
        with self._lock:
            return dict(self._bases)

    def view(self) -> dict[str, Any]:
        """The slots, for ``/v1/status``: which are loaded, their size, leases and totals."""
        with self._lock:
            held = [s for s in self._slots.values() if s.name is not None]
            slots = {
                s.version: {"slot": s.key, "loaded": s.name is not None, "bytes": s.nbytes}
                | {"leases": s.leases, "loading": s.loading}
                for s in self._slots.values()
            }
        return {
            "max_loaded": self.budget.max_loaded,
            "budget_bytes": self.budget.budget_bytes,
            "loaded": len(held),
            "loaded_bytes": sum(s.nbytes for s in held),
            "loads": self.loads,
            "evictions": self.evictions,
            "slots": slots,
        }

    # -- loading a version (the controller's thread) ----------------------------------------

    def load(
        self, folder: Path | None, version: str, *, expected_sha256: str | None = None
    ) -> tuple[LoadedModel, SharedBase, str]:
        """Check the adapter folder, put it on its base (loading the base if this worker has
        none yet), making room within the budget: the version as a LoadedModel, the shared
        base, and the adapter's slot. The slot comes back leased: :meth:`unlease` it once
        the version is checked."""
        path, ref = _checked(folder, expected_sha256)
        nbytes = adapter_bytes(path)
        try:
            self.budget.check_fits(version, nbytes)
        except ValueError as exc:
            raise ArtifactError(str(exc)) from exc
        self._check_base(version, ref)
        tokenizer = _tokenizer(path)
        name = adapter_name(version)
        slot = self._reserve(Slot(name, version, ref.sha256, path, nbytes, loading=True, leases=1))
        started = time.monotonic()
        try:
            shared = self._put(ref, path, name, tokenizer)
        except BaseException:
            with self._lock:
                self._slots.pop(name, None)
            raise
        with self._lock:
            slot.name, slot.loading = name, False
            shared.adapters[name] = path
            self.loads += 1
        self._tell_loaded(version, time.monotonic() - started)
        loaded = LoadedModel(
            path, "causal-lm", shared.model, tokenizer, None, ModelKind.LORA_ADAPTER, ref
        )
        return loaded, shared, name

    def _check_base(self, version: str, ref: BaseRef) -> None:
        if not self.single_base:
            return
        with self._lock:
            held = [b for b in self._bases.values() if not b.engine.closed]
        if held and held[0].key != ref.sha256:
            raise ArtifactError(
                f"{version} is an adapter on base {ref.name} (sha256 {ref.sha256}), but this "
                f"server holds base sha256 {held[0].key}: one server serves one base"
            )

    def _reserve(self, slot: Slot) -> Slot:
        """Make room for ``slot`` (evicting idle adapters) and hold its place, waiting up to
        ``wait_seconds`` for requests to let go; ArtifactError when they do not."""
        deadline = time.monotonic() + self.wait_seconds
        while True:
            with self._lock:
                victims = choose_evictions(self._views(), slot.nbytes, self.budget)
                if victims is not None:
                    for key in victims:
                        self._evict(self._slots[key])
                    self._slots[slot.key] = slot
                    return slot
                busy = sum(1 for s in self._slots.values() if s.name or s.loading)
            if time.monotonic() >= deadline:
                raise ArtifactError(
                    f"no room for the adapter of {slot.version}: the {busy} adapters loaded "
                    f"are all in use ({self._bounds()})"
                )
            time.sleep(0.02)

    def _put(self, ref: BaseRef, path: Path, name: str, tokenizer: Any) -> SharedBase:
        with self._base_lock:
            with self._lock:
                shared = self._bases.get(ref.sha256)
            if shared is None or shared.engine.closed:
                shared = self._open(ref, path, name, tokenizer)
                with self._lock:
                    self._bases[ref.sha256] = shared
                return shared

        def load() -> None:
            shared.model.load_adapter(str(path), adapter_name=name, is_trainable=False)
            keep_active(shared.model)

        try:
            shared.engine.call_between_steps(load).result()
        except Exception as exc:  # peft raises many types for a bad folder
            raise ArtifactError(f"cannot load the adapter in {path}: {exc}") from exc
        return shared

    def _open(self, ref: BaseRef, folder: Path, name: str, tokenizer: Any) -> SharedBase:
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        base_folder = resolve_base_ref(ref, self.cache_dir or _default_cache_dir())
        try:
            base = load_pretrained_in_memory(AutoModelForCausalLM, base_folder)
            model = PeftModel.from_pretrained(
                base, str(folder), adapter_name=name, is_trainable=False
            )
        except Exception as exc:  # peft and transformers raise many types for a bad folder
            raise ArtifactError(f"cannot load the adapter in {folder}: {exc}") from exc
        model.eval()
        engine = DecodeEngine(model, tokenizer, max_batch=self.max_batch, name=ref.sha256[:12])
        log.info("base %s (%s) loaded for adapters", ref.name, ref.sha256[:12])
        return SharedBase(ref.sha256, model, engine)

    # -- requests (the event loop) ------------------------------------------------------------

    async def acquire(self, key: str) -> str:
        """Lease slot ``key`` for one request: its adapter's name in the model now, loading
        it again (making room) when it was evicted. AdapterBusy when that takes longer than
        ``wait_seconds``; ArtifactError when the slot is gone or its load failed."""
        start = time.monotonic()
        cold = False
        while True:
            name = self.try_lease(key)
            if name is not None:
                if cold and self.events is not None:
                    self.events.waited(self._slots_version(key), time.monotonic() - start)
                return name
            cold = True
            if time.monotonic() - start >= self.wait_seconds:
                raise AdapterBusy(
                    f"the adapter of {self._slots_version(key)} is not loaded and there was "
                    f"no room within {self.wait_seconds:g} s ({self._bounds()}); retry shortly",
                    retry_after=max(1.0, self.wait_seconds / 2),
                )
            await asyncio.sleep(0.01)

    def try_lease(self, key: str) -> str | None:
        """The slot's adapter name, leased; or None while it loads (a load is started here
        when there is room)."""
        with self._lock:
            slot = self._slots.get(key)
            if slot is None:
                raise ArtifactError(f"adapter {key} is no longer held by this worker")
            if slot.error is not None:
                error, slot.error = slot.error, None
                raise ArtifactError(error)
            if slot.name is not None:
                slot.leases += 1
                slot.last_used = time.monotonic()
                return slot.name
            if slot.loading:
                return None
            others = [v for v in self._views() if v.key != key]
            victims = choose_evictions(others, slot.nbytes, self.budget)
            if victims is None:
                return None
            for victim in victims:
                self._evict(self._slots[victim])
            slot.loading = True
            shared = self._bases[slot.base]
        self._reload(slot, shared)
        return None

    def unlease(self, key: str) -> None:
        with self._lock:
            slot = self._slots.get(key)
            if slot is not None and slot.leases > 0:
                slot.leases -= 1
                slot.last_used = time.monotonic()

    def _reload(self, slot: Slot, shared: SharedBase) -> None:
        name = adapter_name(slot.version)  # a new name: nothing of an earlier load is reused
        path, started = slot.folder, time.monotonic()

        def load() -> None:
            shared.model.load_adapter(str(path), adapter_name=name, is_trainable=False)
            keep_active(shared.model)

        def done(future: Future[Any]) -> None:
            failed = future.exception()
            with self._lock:
                slot.loading = False
                held = self._slots.get(slot.key) is slot
                if failed is None and held:
                    slot.name = name
                    self.loads += 1
                elif failed is not None:
                    slot.error = f"cannot load the adapter of {slot.version} again: {failed}"
            if failed is None and not held:  # released while it loaded
                self._delete(shared, name)
            elif failed is None:
                self._tell_loaded(slot.version, time.monotonic() - started)

        shared.engine.call_between_steps(load).add_done_callback(done)

    # -- giving back ---------------------------------------------------------------------------

    def _evict(self, slot: Slot) -> None:
        """(under the lock) Drop an idle slot's adapter from the model; it stays a slot."""
        name, slot.name = slot.name, None
        self.evictions += 1
        if self.events is not None:
            self.events.evicted(slot.version)
        shared = self._bases.get(slot.base)
        if name is not None and shared is not None:
            self._delete(shared, name)
        log.info("adapter of %s evicted (%d bytes)", slot.version, slot.nbytes)

    def _delete(self, shared: SharedBase, name: str) -> None:
        model = shared.model

        def delete() -> None:
            with warnings.catch_warnings():  # "was active which is now deleted": expected
                warnings.simplefilter("ignore", UserWarning)
                model.delete_adapter(name)
            keep_active(model)
            trim_heap()

        shared.engine.call_between_steps(delete, unused=name).add_done_callback(
            lambda _: self._tell_holding()
        )

    def release(self, key: str, name: str) -> None:
        """Remove slot ``name`` (its adapter once no request uses it); the base goes with its
        last one."""
        with self._lock:
            shared = self._bases.get(key)
            slot = self._slots.pop(name, None)
            if shared is None or shared.adapters.pop(name, None) is None:
                return
            if not shared.adapters:
                del self._bases[key]
                shared.engine.retire()  # finishes what it has, then its thread ends
                log.info("base %s released with its last adapter", key[:12])
                return
        if slot is not None and slot.name is not None:
            self._delete(shared, slot.name)

    # -- telling -------------------------------------------------------------------------------

    def _views(self) -> list[SlotView]:
        return [s.view() for s in self._slots.values() if s.name is not None or s.loading]

    def _slots_version(self, key: str) -> str:
        slot = self._slots.get(key)
        return slot.version if slot is not None else key

    def _bounds(self) -> str:
        budget = self.budget
        count = "no bound" if budget.max_loaded is None else f"at most {budget.max_loaded}"
        size = (
            "no memory bound"
            if budget.budget_bytes is None
            else f"{budget.budget_bytes / 2**20:.2f} MiB"
        )
        return f"adapters: {count}, {size}"

    def _tell_loaded(self, version: str, seconds: float) -> None:
        if self.events is not None:
            self.events.loaded(version, seconds)
        self._tell_holding()

    def _tell_holding(self) -> None:
        if self.events is None:
            return
        with self._lock:
            held = [s for s in self._slots.values() if s.name is not None]
        self.events.holding(len(held), sum(s.nbytes for s in held))


def _default_cache_dir() -> Path:
    from conveyor.settings import Settings

    return Settings().cache_dir
