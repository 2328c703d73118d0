"""The known-failures ledger (tests/matrix/known_failures.toml): failures that are listed, explained and dated.

A listed failure does not fail the run (it is reported as a known failure, pytest's xfail). A listed test that
passes fails (the entry is stale: remove it), an entry past its expiry date fails the run, and so does an entry
that matches no test of a run that had the entry's test file in scope and was not narrowed by -k, -m or
--deselect. A repeated test is listed by its cell id (the node id without `-r{k}of{N}`): its failing repeats are
known failures, its passing ones pass, and the entry is stale when all repeats pass. The ledger starts empty
and should stay empty for the reference implementations.
"""

from __future__ import annotations

import datetime
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .. import REPO
from .cells import cell_id

LEDGER = REPO / "tests" / "matrix" / "known_failures.toml"  # data the test authors edit, beside the tests
FIELDS = {"test", "reason", "link", "expires"}


class LedgerError(Exception):
    """The ledger file is malformed: a usage error, reported before any test runs."""


@dataclass(frozen=True)
class KnownFailure:
    test: str  # a pytest node id; `*` matches any run of characters (brackets are literal)
    reason: str
    link: str
    expires: datetime.date

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile(".*".join(re.escape(part) for part in self.test.split("*")) + r"\Z")

    def matches(self, nodeid: str) -> bool:
        return self.pattern.match(nodeid) is not None

    def matches_cell(self, nodeid: str) -> bool:
        """The node id, or its cell (a repeated test's node id without `-r{k}of{N}`: a flaky cell is listed
        once, by its cell id)."""
        return self.matches(nodeid) or self.matches(cell_id(nodeid))

    @property
    def file(self) -> str:
        return self.test.split("::", 1)[0]

    def expired(self, today: datetime.date | None = None) -> bool:
        return (today or datetime.date.today()) > self.expires

    def describe(self) -> str:
        return f"{self.reason} ({self.link}; expires {self.expires.isoformat()})"

    def as_dict(self) -> dict[str, str]:
        return {"test": self.test, "reason": self.reason, "link": self.link, "expires": self.expires.isoformat()}


def parse_ledger(text: str, source: str = "known_failures.toml") -> list[KnownFailure]:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise LedgerError(f"{source}: {error}") from None
    unknown_tables = set(document) - {"failure"}
    if unknown_tables:
        raise LedgerError(f"{source}: unknown keys {sorted(unknown_tables)}; entries are [[failure]] tables")
    entries = []
    for number, entry in enumerate(document.get("failure", []), 1):
        where = f"{source}: [[failure]] #{number}"
        if set(entry) != FIELDS:
            raise LedgerError(f"{where}: needs exactly the keys {sorted(FIELDS)}, has {sorted(entry)}")
        if not isinstance(entry["expires"], datetime.date) or isinstance(entry["expires"], datetime.datetime):
            raise LedgerError(f"{where}: expires must be a TOML date like 2026-12-31")
        if not all(isinstance(entry[key], str) and entry[key].strip() for key in ("test", "reason", "link")):
            raise LedgerError(f"{where}: test, reason and link must be non-empty strings")
        if "::" not in entry["test"] or not entry["test"].startswith("tests/"):
            raise LedgerError(f"{where}: test must be a node id like tests/matrix/test_vectors.py::test_x[...]")
        if not re.match(r"https?://", entry["link"]):
            raise LedgerError(f"{where}: link must be an http(s) URL")
        entries.append(KnownFailure(entry["test"], entry["reason"], entry["link"], entry["expires"]))
    return entries


def load_ledger(path: Path = LEDGER) -> list[KnownFailure]:
    return parse_ledger(path.read_text(encoding="utf-8"), path.name) if path.exists() else []


class Ledger:
    def __init__(self, entries: list[KnownFailure], today: datetime.date | None = None) -> None:
        self.entries = entries
        self.today = today or datetime.date.today()

    def match(self, nodeid: str) -> KnownFailure | None:
        return next((entry for entry in self.entries if entry.matches_cell(nodeid)), None)

    def expired(self) -> list[KnownFailure]:
        return [entry for entry in self.entries if entry.expired(self.today)]

    def problems(self, nodeids: list[str], narrowed: bool) -> list[str]:
        """Why the ledger fails this run: expired entries, and entries that matched nothing in scope."""
        found = [
            f"expired on {entry.expires.isoformat()}: {entry.test} ({entry.reason}; {entry.link})"
            for entry in self.expired()
        ]
        if not narrowed:
            files = {nodeid.split("::", 1)[0] for nodeid in nodeids}
            for entry in self.entries:
                if entry.file in files and not any(entry.matches_cell(nodeid) for nodeid in nodeids):
                    found.append(f"matches no test: {entry.test} ({entry.reason}; {entry.link})")
        return found
