"""The spec's own files: vectors well-formed and agreeing with U, and every clause covered by a test."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from upper_echo.transform import transform, uppercase_table

from .reference_u import reference_u

REPO = Path(__file__).resolve().parents[2]
PROTOCOL = REPO / "spec" / "PROTOCOL.md"
CLAUSE_DEFINITION = re.compile(r"^- \*\*([A-Z]-\d+)\*\*", re.MULTILINE)
CLAUSE_MARKER = re.compile(r"mark\.clause\(([^)]*)\)")


def spec_clauses() -> list[str]:
    return CLAUSE_DEFINITION.findall(PROTOCOL.read_text(encoding="utf-8"))


def vector_documents() -> list[dict]:
    return [json.loads(path.read_text(encoding="utf-8")) for path in sorted((REPO / "spec" / "vectors").glob("*.json"))]


def cited_by_tests() -> set[str]:
    cited: set[str] = set()
    for path in (REPO / "tests").rglob("test_*.py"):
        for arguments in CLAUSE_MARKER.findall(path.read_text(encoding="utf-8")):
            cited.update(re.findall(r"[A-Z]-\d+", arguments))
    return cited


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
    from tests.matrix.vectors import load_vectors
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
    from tests.matrix.vectors import load_vectors
    table = uppercase_table()
    for vector in load_vectors():
        assert transform(vector.input) == vector.expected, vector.id
        if len(vector.input) < 100_000:
            assert reference_u(vector.input, table) == vector.expected, vector.id
