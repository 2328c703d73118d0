"""Options for every test folder. A skipped test is not a passed one: CI runs with --require-all."""

from __future__ import annotations

import os

import pytest

# `-n auto`: this many pytest-xdist workers per core. A worker spends much of each test waiting, on a client process
# or on a timeout, so one worker per core leaves the cores idle. On 2 cores, interleaved runs (bench/README.md, "The
# matrix inside a minute"): 4 workers 94.3 and 94.8 s, 5 workers 87.4 and 89.8 s (2026-11-28 02:30); later, on another
# VM, without the network-conditions axis 6 workers 53.2, 53.2 and 55.8 s against 5 workers' 59.8, 59.1 and 60.8 s,
# the whole run 84.1 and 81.0 s against 84.3 and 87.4 s, and the docker matrix 137 and 125 s against 130 and 136 s.
WORKERS_PER_CORE = 3


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    # The suite's plugins, registered here so that they (and their options) work whichever folder pytest is given.
    from harness.plugins import fuzz, repeat, reporting, schedule, session

    for plugin in (session, reporting, fuzz, repeat, schedule):
        pluginmanager.register(plugin, f"upper-echo-{plugin.__name__.rsplit('.', 1)[-1]}")
    parser.addoption(
        "--require-all",
        action="store_true",
        help="turn every skip into a failure (CI): a missing toolchain must not pass silently",
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and item.config.getoption("--require-all"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"--require-all: this test would have been skipped: {reason}"


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    return max(1, int(WORKERS_PER_CORE * (os.cpu_count() or 1)))
