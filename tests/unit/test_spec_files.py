"""The spec's own files: vectors well-formed and agreeing with U, and every clause covered by a test."""

from __future__ import annotations

import re

import pytest
from upper_echo.table import uppercase_table
from upper_echo.transducer import transform

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
