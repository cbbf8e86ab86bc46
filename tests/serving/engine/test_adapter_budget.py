"""Which adapters to evict to load one more: least recently used idle ones, never one a
request holds or one still loading, under a count and a memory bound."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.engine.adapter_budget import AdapterBudget, SlotView, adapter_bytes, choose_evictions


def _slot(
    key: str, used: float, *, nbytes: int = 10, leases: int = 0, loading: bool = False
) -> SlotView:
    return SlotView(key, nbytes, used, leases, loading)


def test_room_already_means_no_eviction() -> None:
    slots = [_slot("a", 1.0), _slot("b", 2.0)]
    assert choose_evictions(slots, 10, AdapterBudget()) == []
    assert choose_evictions(slots, 10, AdapterBudget(max_loaded=3, budget_bytes=30)) == []


def test_the_least_recently_used_idle_adapter_goes_first() -> None:
    slots = [_slot("new", 3.0), _slot("old", 1.0), _slot("mid", 2.0)]
    assert choose_evictions(slots, 10, AdapterBudget(max_loaded=3)) == ["old"]
    assert choose_evictions(slots, 10, AdapterBudget(max_loaded=2)) == ["old", "mid"]


def test_an_adapter_a_request_holds_or_one_loading_is_never_chosen() -> None:
    slots = [_slot("held", 1.0, leases=1), _slot("loading", 0.5, loading=True), _slot("idle", 2.0)]
    assert choose_evictions(slots, 10, AdapterBudget(max_loaded=3)) == ["idle"]
    assert choose_evictions(slots, 10, AdapterBudget(max_loaded=2)) is None  # must wait


def test_the_memory_bound_evicts_until_the_bytes_fit() -> None:
    slots = [_slot("a", 1.0, nbytes=40), _slot("b", 2.0, nbytes=40), _slot("c", 3.0, nbytes=15)]
    assert choose_evictions(slots, 30, AdapterBudget(budget_bytes=100)) == ["a"]
    assert choose_evictions(slots, 90, AdapterBudget(budget_bytes=100)) == ["a", "b", "c"]
    assert choose_evictions(slots, 101, AdapterBudget(budget_bytes=100)) is None


def test_one_adapter_over_the_whole_budget_is_refused_naming_both_sizes() -> None:
    with pytest.raises(ValueError, match=r"takes 2.00 MiB, over the adapter memory budget of 1.00"):
        AdapterBudget(budget_bytes=2**20).check_fits("d:v1", 2 * 2**20)
    AdapterBudget(budget_bytes=2**20).check_fits("d:v1", 2**20)


def test_an_adapters_size_is_its_weights_file(tmp_path: Path) -> None:
    (tmp_path / "adapter_model.safetensors").write_bytes(b"x" * 123)
    assert adapter_bytes(tmp_path) == 123
    assert adapter_bytes(tmp_path / "missing") == 0
