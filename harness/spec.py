"""The clauses of spec/PROTOCOL.md (each rule is a bullet `- **X-N**`) and which of them the tests cite
(`@pytest.mark.clause("X-N", ...)` in tests/**/test_*.py): tests/unit/test_spec_files.py checks that every
clause is cited, and the reports show the coverage."""

from __future__ import annotations

import re
from pathlib import Path

from . import REPO

PROTOCOL = REPO / "spec" / "PROTOCOL.md"
TESTS = REPO / "tests"
CLAUSE_DEFINITION = re.compile(r"^- \*\*([A-Z]-\d+)\*\*", re.MULTILINE)
CLAUSE_MARKER = re.compile(r"mark\.clause\(([^)]*)\)")
CLAUSE_ID = re.compile(r"[A-Z]-\d+")


def spec_clauses(protocol: Path = PROTOCOL) -> list[str]:
    """The clause ids in the order the spec defines them (duplicates kept, so a test can find them)."""
    return CLAUSE_DEFINITION.findall(protocol.read_text(encoding="utf-8"))


def cited_by_tests(tests: Path = TESTS) -> set[str]:
    """Every clause id some test file cites in a clause marker."""
    cited: set[str] = set()
    for path in tests.rglob("test_*.py"):
        for arguments in CLAUSE_MARKER.findall(path.read_text(encoding="utf-8")):
            cited.update(CLAUSE_ID.findall(arguments))
    return cited
