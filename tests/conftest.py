"""Options for every test folder. A skipped test is not a passed one: CI runs with --require-all."""

from __future__ import annotations

import os

import pytest

# `-n auto`: this many pytest-xdist workers per core. Workers mostly wait, on client processes or timeouts, so more
# workers than cores fill that time. Measured on 2 cores only: 6 workers beat 5 in interleaved runs (bench/README.md,
# "The matrix inside a minute").
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
