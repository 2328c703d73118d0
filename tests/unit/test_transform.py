"""The Python transducer without any I/O (spec sections 2 and 3)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from upper_echo.table import uppercase_table
from upper_echo.transducer import UppercaseTransducer, transform

from harness.oracle import owed_after_each_read, reference_u

POSSIBLE_PREFIXES = ["c3", "e2", "e2 82", "e0 a0", "ed 9f", "f0 90", "f0 90 90", "f3 bf bf", "f4 8f", "f4 8f bf"]
NEVER_WELL_FORMED = ["80", "bf", "c0", "c1", "e0 80", "ed a0", "f0 80", "f4 90", "f5", "ff", "e2 41"]

# Fragments that make generated streams interesting: cased, expanding, astral, and broken UTF-8.
FRAGMENTS = st.one_of(
    st.binary(max_size=4),
    st.sampled_from([s.encode() for s in ["a", "Z", "ß", "ΐ", "ŉ", "ﬃ", "𐐨", "😀", "ı", "i", "µ", "ǅ", "\n", "\r"]]),
    st.sampled_from([bytes.fromhex(h) for h in POSSIBLE_PREFIXES + NEVER_WELL_FORMED]),
    (st.characters(max_codepoint=0xD7FF) | st.characters(min_codepoint=0xE000)).map(lambda c: c.encode()),
)
STREAMS = st.lists(FRAGMENTS, max_size=40).map(b"".join)


def feed_in_pieces(data: bytes, cuts: list[int]) -> bytes:
    transducer, out, start = UppercaseTransducer(), bytearray(), 0
    for cut in sorted(c % (len(data) + 1) for c in cuts) + [len(data)]:
        out += transducer.feed(data[start:cut])
        start = cut
        assert len(transducer._tail) <= 3
    return bytes(out + transducer.flush())


@pytest.mark.clause("T-1", "T-2", "T-3", "T-4")
@settings(max_examples=400, deadline=None)
@given(STREAMS)
def test_agrees_with_the_naive_reference(data: bytes) -> None:
    assert transform(data) == reference_u(data, uppercase_table())


@pytest.mark.clause("D-1", "D-2")
@settings(max_examples=400, deadline=None)
@given(STREAMS, st.lists(st.integers(min_value=0), max_size=12))
def test_splitting_the_input_never_changes_the_output(data: bytes, cuts: list[int]) -> None:
    assert feed_in_pieces(data, cuts) == transform(data)


@pytest.mark.clause("D-2", "E-1")
@settings(max_examples=400, deadline=None)
@given(STREAMS, st.integers(min_value=1, max_value=20))
def test_owes_after_every_read_what_the_naive_reference_owes(data: bytes, read_size: int) -> None:
    """The reference and the oracle that the matrix's lockstep test holds every server to agree on D-2."""
    transducer = UppercaseTransducer()
    answers = [transducer.feed(data[start : start + read_size]) for start in range(0, len(data), read_size)]
    assert [*answers, transducer.flush()] == owed_after_each_read(data, read_size)


@pytest.mark.clause("D-2", "E-1")
@pytest.mark.parametrize("prefix", POSSIBLE_PREFIXES)
def test_a_possible_prefix_is_held_back_until_flush(prefix: str) -> None:
    transducer = UppercaseTransducer()
    assert transducer.feed(b"ab" + bytes.fromhex(prefix)) == b"AB"
    assert transducer.flush() == bytes.fromhex(prefix)


@pytest.mark.clause("D-2", "T-3")
@pytest.mark.parametrize("broken", NEVER_WELL_FORMED)
def test_what_can_never_be_well_formed_is_not_held(broken: str) -> None:
    data = b"ab" + bytes.fromhex(broken)
    transducer = UppercaseTransducer()
    assert transducer.feed(data) == reference_u(data, uppercase_table())
    assert transducer.flush() == b""


@pytest.mark.clause("D-2")
def test_a_held_prefix_completes_into_one_character() -> None:
    transducer = UppercaseTransducer()
    pieces = [b"\xf0", b"\x90", b"\x90", b"\xa8"]  # 𐐨 one byte at a time
    assert [transducer.feed(piece) for piece in pieces] == [b"", b"", b"", "𐐀".encode()]
    assert transducer.flush() == b""


@pytest.mark.clause("T-4")
def test_growth_is_at_most_three_times() -> None:
    table = uppercase_table()
    worst = max(len(upper.encode()) / len(chr(cp).encode()) for cp, upper in table.items())
    assert worst == 3.0
