"""The HPA's decision (testbed.hpa) on plain values, one documented rule per test."""

from __future__ import annotations

import pytest

from testbed.hpa import (
    DEFAULT_BEHAVIOR,
    Behavior,
    Bounds,
    Memory,
    Metric,
    Policy,
    Rules,
    decide,
    proposal,
)

pytestmark = pytest.mark.unit

WIDE = Bounds(1, 100)
FREE = Behavior(
    up=Rules(0, (Policy("Pods", 1000, 15),)), down=Rules(0, (Policy("Percent", 100, 15),))
)


def test_desired_is_the_ceiling_of_current_times_the_ratio() -> None:
    # 3 replicas, 10 per replica wanted, 47 in all: ceil(3 * 15.67 / 10) = 5
    assert proposal(3, [Metric(47, 10)]) == 5


def test_within_the_tolerance_nothing_moves() -> None:
    assert proposal(4, [Metric(43.6, 10)]) == 4  # ratio 1.09
    assert proposal(4, [Metric(36.4, 10)]) == 4  # ratio 0.91
    assert proposal(4, [Metric(44.4, 10)]) == 5  # ratio 1.11: ceil(4.44)
    assert proposal(4, [Metric(35.6, 10)]) == 4  # ratio 0.89: ceil(3.56) = 4 still
    assert proposal(4, [Metric(30.0, 10)]) == 3


def test_the_largest_metric_proposal_wins() -> None:
    assert proposal(2, [Metric(2, 2), Metric(600, 60)]) == 10


def test_a_target_at_zero_replicas_is_not_scaled() -> None:
    with pytest.raises(ValueError, match="0 replicas"):
        proposal(0, [Metric(1, 1)])


def test_bounds_hold_whatever_the_metric() -> None:
    assert decide(0, 2, [Metric(1000, 1)], Bounds(1, 6), FREE)[0] == 6
    assert decide(0, 2, [Metric(0, 1)], Bounds(2, 6), FREE)[0] == 2


def test_scale_down_waits_for_the_highest_recommendation_in_its_window() -> None:
    behavior = Behavior(up=FREE.up, down=Rules(300, FREE.down.policies))
    replicas, memory = decide(0, 8, [Metric(80, 10)], WIDE, behavior)
    assert replicas == 8
    # load falls: the 8 recommended 200 s ago still holds the fleet
    replicas, memory = decide(200, 8, [Metric(20, 10)], WIDE, behavior, memory)
    assert replicas == 8
    # once it left the 300 s window, the highest left is the 2 of t=200
    replicas, _ = decide(301, 8, [Metric(20, 10)], WIDE, behavior, memory)
    assert replicas == 2


def test_scale_up_stabilization_takes_the_lowest_recommendation() -> None:
    behavior = Behavior(up=Rules(60, FREE.up.policies), down=FREE.down)
    _, memory = decide(0, 2, [Metric(20, 10)], WIDE, behavior)  # recommends 2
    replicas, _ = decide(30, 2, [Metric(100, 10)], WIDE, behavior, memory)
    assert replicas == 2  # a 30 s spike does not scale up within the 60 s window


def test_pods_policy_bounds_the_change_over_its_period() -> None:
    behavior = Behavior(up=Rules(0, (Policy("Pods", 4, 60),)), down=FREE.down)
    replicas, memory = decide(0, 2, [Metric(200, 10)], WIDE, behavior)
    assert replicas == 6  # +4
    replicas, memory = decide(15, 6, [Metric(200, 10)], WIDE, behavior, memory)
    assert replicas == 6  # the period that started at 2 replicas already added its 4
    replicas, _ = decide(61, 6, [Metric(200, 10)], WIDE, behavior, memory)
    assert replicas == 10


def test_default_scale_up_is_the_larger_of_four_pods_and_doubling() -> None:
    assert decide(0, 2, [Metric(1000, 10)], WIDE, DEFAULT_BEHAVIOR)[0] == 6  # 2 + 4 > 2 * 2
    assert decide(0, 10, [Metric(1000, 10)], WIDE, DEFAULT_BEHAVIOR)[0] == 20  # doubling


def test_select_min_takes_the_smaller_change() -> None:
    rules = Rules(0, (Policy("Pods", 4, 15), Policy("Percent", 100, 15)), "Min")
    behavior = Behavior(up=rules, down=FREE.down)
    assert decide(0, 10, [Metric(1000, 10)], WIDE, behavior)[0] == 14


def test_scale_down_policy_and_disabled_direction() -> None:
    one_per_minute = Behavior(up=FREE.up, down=Rules(0, (Policy("Pods", 1, 60),)))
    replicas, memory = decide(0, 8, [Metric(10, 10)], WIDE, one_per_minute)
    assert replicas == 7
    assert decide(30, 7, [Metric(10, 10)], WIDE, one_per_minute, memory)[0] == 7
    never_down = Behavior(up=FREE.up, down=Rules(0, FREE.down.policies, "Disabled"))
    assert decide(0, 8, [Metric(10, 10)], WIDE, never_down)[0] == 8


def test_memory_keeps_only_what_its_windows_need() -> None:
    behavior = Behavior(up=FREE.up, down=Rules(60, (Policy("Pods", 1, 30),)))
    memory = Memory()
    for second in range(0, 600, 15):
        _, memory = decide(second, 3, [Metric(30, 10)], WIDE, behavior, memory)
    assert all(t > 585 - 60 for t, _ in memory.recommendations)
    assert memory.events == ()
