"""Repeated cells, a pytest plugin (registered by tests/conftest.py): `--repeat N` and the default repeats of
timing-dependent network conditions (harness/proxy.py: Condition.timing).

A cell that fails once in twenty is failing, so a timing-dependent cell runs TIMING_REPEATS times by default and
every run is its own test item, id suffix `-r{k}of{N}`: a failure is never retried away, and the reports show
such a cell as flaky, k/N (harness/plugins/reporting.py).
"""

from __future__ import annotations

import pytest

TIMING_REPEATS = 20


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("upper-echo matrix")
    group.addoption(
        "--repeat",
        type=int,
        metavar="N",
        help="run every matrix cell N times, each run its own test (default: --timing-repeats for the "
        "timing-dependent network conditions, once for everything else)",
    )
    group.addoption(
        "--timing-repeats",
        type=int,
        default=TIMING_REPEATS,
        metavar="N",
        help=f"runs of each timing-dependent network-condition cell when --repeat is not given "
        f"(default: {TIMING_REPEATS})",
    )


def pytest_configure(config: pytest.Config) -> None:
    for option in ("--repeat", "--timing-repeats"):
        value = config.getoption(option)
        if value is not None and value < 1:
            raise pytest.UsageError(f"{option} takes a whole number of at least 1, not {value}")


def repeats(config: pytest.Config, timing: bool) -> int:
    """How many times a cell runs: --repeat if given, else --timing-repeats for a timing-dependent cell, else 1."""
    chosen = config.getoption("--repeat")
    if chosen is not None:
        return chosen
    return config.getoption("--timing-repeats") if timing else 1


@pytest.fixture
def repeat_index(request: pytest.FixtureRequest) -> int:
    """Which run of a repeated cell this is, from 1 (1 for a cell that runs once)."""
    return getattr(request, "param", 1)
