"""The spec's own files: vectors well-formed and agreeing with U, every clause covered by a test, and the command-line
table's host patterns reading IPv4 forms as X-5 says."""

from __future__ import annotations

import re
import tomllib

import pytest
from upper_echo import cli
from upper_echo.table import uppercase_table
from upper_echo.transducer import transform

from harness import REPO
from harness.oracle import reference_u
from harness.spec import cited_by_tests, spec_clauses
from harness.vectors import load_vectors


def test_clause_ids_are_unique() -> None:
    clauses = spec_clauses()
    assert len(clauses) == len(set(clauses)) and len(clauses) > 30


def test_every_clause_is_cited_by_a_test() -> None:
    uncovered = [clause for clause in spec_clauses() if clause not in cited_by_tests()]
    assert uncovered == [], f"spec clauses no test cites: {uncovered}"


def test_tests_cite_only_clauses_that_exist() -> None:
    unknown = cited_by_tests() - set(spec_clauses())
    assert unknown == set()


def test_vectors_are_well_formed() -> None:
    vectors = load_vectors()
    ids = [vector.id for vector in vectors]
    assert len(vectors) >= 60
    assert len(ids) == len(set(ids)), "vector ids must be unique"
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", vector_id) for vector_id in ids)
    known = set(spec_clauses())
    for vector in vectors:
        assert vector.clauses and set(vector.clauses) <= known, vector.id
        assert vector.description, vector.id


@pytest.mark.clause("T-1", "T-2", "T-3", "T-4")
def test_vectors_agree_with_the_transducer_and_the_reference() -> None:
    table = uppercase_table()
    for vector in load_vectors():
        assert transform(vector.input) == vector.expected, vector.id
        if len(vector.input) < 100_000:
            assert reference_u(vector.input, table) == vector.expected, vector.id


HOST_TYPE = tomllib.loads((REPO / "spec" / "cli.toml").read_text(encoding="utf-8"))["types"]["host"]


@pytest.mark.clause("X-5")
@pytest.mark.parametrize(
    "host,verdict",
    [
        *((h, "usage error") for h in ["127.1", "2130706433", "0177.0.0.1", "127.0.0.01", "0x7f.0.0.1", "256.0.0.1"]),
        *((h, "usage error") for h in ["127.0.0.1.", "0x7f000001", "a.1", "1.2.3.4.5", " 127.0.0.1"]),
        *((h, "address") for h in ["127.0.0.1", "0.0.0.0", "255.255.255.255", "10.0.0.255"]),
        *((h, "name") for h in ["localhost", "example.com", "a..b", "1.x", "::1", "::ffff:127.0.0.1", "1.2.3.4.."]),
    ],
)
def test_the_table_reads_ipv4_forms_as_x5_says(host: str, verdict: str) -> None:
    """cli.toml's two host patterns against the forms X-5 names."""
    ipv4_like = re.fullmatch(HOST_TYPE["ipv4_like"], host) is not None
    ipv4 = re.fullmatch(HOST_TYPE["ipv4"], host) is not None
    assert {"usage error": (True, False), "address": (True, True), "name": (False, False)}[verdict] == (ipv4_like, ipv4)


NOT_PRINTABLE_ASCII = ["127。0。0。1", "１２７.０.０.１", "ｌｏｃａｌｈｏｓｔ", "local host", "a\tb", "a\x7fb", "é.com"]


@pytest.mark.clause("X-5")
@pytest.mark.parametrize("host", NOT_PRINTABLE_ASCII)
def test_the_tables_host_grammar_takes_printable_ascii_only(host: str) -> None:
    assert re.fullmatch(HOST_TYPE["pattern"], host) is None


@pytest.mark.clause("X-5")
def test_the_reference_uses_the_tables_host_patterns() -> None:
    assert (cli.PATTERNS["host"].pattern, cli.IPV4_LIKE.pattern, cli.IPV4.pattern) == (
        HOST_TYPE["pattern"],
        HOST_TYPE["ipv4_like"],
        HOST_TYPE["ipv4"],
    )
