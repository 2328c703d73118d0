"""The order in which pytest-xdist workers meet the tests, a pytest plugin (registered by tests/conftest.py).

Most tests are short and spend the CPU on the process starts they make. A few (`@pytest.mark.slow`) last a second or
more, most of them waiting on an implementation's timers (timeouts, idle, drain), some on a nested pytest run or a
big transfer. In collection order those come late and together, so the run used to end with 15-20 s in which the
workers waited on them and the cores were idle (bench/README.md, "The matrix inside a minute").

`--dist worksteal` first hands each of the W workers one contiguous W-th of the collection, then moves tests from the
end of a busy worker's queue to an idle one. So on a worker the slow tests are dealt round-robin to the W parts and
spread through the first SLOW_SPAN of each part, staggered from part to part: each worker waits on one now and then
while the others use the cores, and the end of every queue, where the balancing happens, is short tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pytest

Item = TypeVar("Item")

SLOW_SPAN = 0.75  # of each worker's part; the rest is left to short tests, which balance the end of the run


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "slow: takes a second or more (timers, a nested pytest run, a big transfer); under xdist it is "
        "scheduled early and apart from other slow tests (harness/plugins/schedule.py)",
    )


def spread(items: list[Item], is_slow: Callable[[Item], bool], parts: int) -> list[Item]:
    """`items` reordered: slow ones dealt round-robin to `parts` contiguous parts of equal size and placed, staggered,
    through the first SLOW_SPAN of their part; the others keep their order."""
    slow = [item for item in items if is_slow(item)]
    rest = [item for item in items if not is_slow(item)]
    ordered: list[Item] = []
    for part in range(parts):
        part_slow = slow[part::parts]
        size = (len(items) * (part + 1)) // parts - (len(items) * part) // parts
        take = max(0, size - len(part_slow))
        part_items, rest = rest[:take], rest[take:]
        spacing = SLOW_SPAN * size / max(1, len(part_slow))
        for index, item in enumerate(part_slow):  # in increasing position, so each index is final
            part_items.insert(min(len(part_items), int((index + part / parts) * spacing)), item)
        ordered.extend(part_items)
    return ordered + rest


@pytest.hookimpl(wrapper=True)  # after -k, -m and --shard, so that the parts are those of the selection
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]):
    result = yield
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        items[:] = spread(items, lambda item: item.get_closest_marker("slow") is not None, workerinput["workercount"])
    return result
