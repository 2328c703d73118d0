"""harness/plugins/schedule.py: the slow tests are spread through the first part of every worker's share, and the
reordering neither loses nor duplicates a test."""

from __future__ import annotations

import pytest

from harness.plugins.schedule import SLOW_SPAN, spread


@pytest.mark.parametrize(("count", "slow_every", "parts"), [(1000, 40, 4), (1000, 40, 1), (37, 5, 4), (6, 1, 4)])
def test_every_test_is_kept_once(count: int, slow_every: int, parts: int) -> None:
    items = list(range(count))
    ordered = spread(items, lambda item: item % slow_every == 0, parts)
    assert sorted(ordered) == items


def test_each_part_gets_its_share_of_slow_tests_in_its_first_span_and_keeps_the_rest_in_order() -> None:
    items = list(range(1000))
    slow = [item for item in items if item % 40 == 0]  # 25 of them
    ordered = spread(items, lambda item: item in slow, 4)
    for part in range(4):
        share = ordered[part * 250 : (part + 1) * 250]
        positions = [index for index, item in enumerate(share) if item in slow]
        assert len(positions) in (6, 7)
        assert max(positions) < SLOW_SPAN * 250
    rest = [item for item in ordered if item not in slow]
    assert rest == sorted(rest)


def test_the_parts_start_their_slow_tests_at_different_times() -> None:
    items = list(range(400))
    ordered = spread(items, lambda item: item % 20 == 0, 4)
    parts = [ordered[part * 100 : (part + 1) * 100] for part in range(4)]
    first_slow = [next(index for index, item in enumerate(share) if item % 20 == 0) for share in parts]
    assert len(set(first_slow)) == 4
