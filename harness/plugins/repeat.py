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
    parser.getgroup("upper-echo matrix").addoption(
        "--repeat",
        type=int,
        metavar="N",
        help=f"run every matrix cell N times, each run its own test (default: {TIMING_REPEATS} for the "
        "timing-dependent network conditions, once for everything else)",
    )


def pytest_configure(config: pytest.Config) -> None:
    repeat = config.getoption("--repeat")
    if repeat is not None and repeat < 1:
        raise pytest.UsageError(f"--repeat takes a whole number of at least 1, not {repeat}")


def repeats(config: pytest.Config, timing: bool) -> int:
    """How many times a cell runs: --repeat if given, else TIMING_REPEATS for a timing-dependent cell, else 1."""
    chosen = config.getoption("--repeat")
    if chosen is not None:
        return chosen
    return TIMING_REPEATS if timing else 1


@pytest.fixture
def repeat_index(request: pytest.FixtureRequest) -> int:
    """Which run of a repeated cell this is, from 1 (1 for a cell that runs once)."""
    return getattr(request, "param", 1)
