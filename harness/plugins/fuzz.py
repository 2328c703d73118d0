"""The differential fuzzer's budget: --fuzz-examples (tests/matrix/test_fuzz.py reads it)."""

from __future__ import annotations

import pytest

DEFAULT_EXAMPLES = 20


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("upper-echo reports")
    group.addoption(
        "--fuzz-examples",
        type=int,
        default=DEFAULT_EXAMPLES,
        metavar="N",
        help=f"examples per differential fuzz test (default {DEFAULT_EXAMPLES}; try 500 for a long run)",
    )
