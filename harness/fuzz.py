"""Differential fuzzing support (the tests are in tests/matrix/test_fuzz.py; the --fuzz-examples option in
plugins/fuzz.py): the stream strategies, the write splits and the ready-to-add vector printed for
a disagreement; and a seeded dense stream of the same pieces for tests that must be repeatable."""

from __future__ import annotations

import functools
import hashlib
import json
import random
import string

from hypothesis import strategies as st

# Mixed ASCII, cased and uncased Unicode (expanding, astral, locale-sensitive), and bytes that are not UTF-8.
INTERESTING = [
    "a",
    "z",
    "A",
    "i",
    "ı",
    "İ",
    "ß",
    "ẞ",
    "ΐ",
    "ŉ",
    "ﬃ",
    "ǅ",
    "µ",
    "ς",
    "σ",
    "ά",
    "ﬁ",
    "𐐨",
    "𐐀",
    "😀",
    "ა",
    "ꭰ",
    "日本",
    "١٢٣",
    "\u0301",
    "\n",
    "\r",
    "\r\n",
    "\t",
    "\x00",
    " ",
]
BROKEN = [
    bytes.fromhex(h)
    for h in [
        "80",
        "bf",
        "c0",
        "c1",
        "c3",
        "e2",
        "e2 82",
        "e0 80",
        "e0 a0",
        "ed a0",
        "ed 9f",
        "f0 90",
        "f0 90 90",
        "f4 8f bf",
        "f4 90",
        "f5",
        "ff",
        "e2 41",
        "fe ff",
    ]
]
FRAGMENTS = st.one_of(
    st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=8).map(str.encode),
    st.sampled_from([s.encode() for s in INTERESTING]),
    st.sampled_from(BROKEN),
    (st.characters(max_codepoint=0xD7FF) | st.characters(min_codepoint=0xE000)).map(str.encode),
    st.binary(max_size=4),
)
STREAMS = st.lists(FRAGMENTS, max_size=30).map(b"".join)
CUTS = st.lists(st.integers(min_value=0, max_value=400), max_size=6)  # write splits, as offsets into the stream


@functools.cache  # the same stream for several implementations: made once per worker
def dense_stream(size: int, seed: int) -> bytes:
    """`size` bytes of INTERESTING and BROKEN pieces between ASCII runs of 0 to 100 bytes, so that characters,
    broken sequences and the ends of ASCII runs fall at every offset of an 8-, 16- or 64-byte word."""
    rng = random.Random(seed)
    letters = string.ascii_letters + string.digits + " "
    pieces = [s.encode() for s in INTERESTING] + BROKEN
    stream = bytearray()
    while len(stream) < size:
        run = rng.randint(0, 12) if rng.random() < 0.8 else rng.randint(13, 100)
        stream += "".join(rng.choices(letters, k=run)).encode()
        stream += b"".join(rng.choices(pieces, k=rng.randint(1, 6)))
    return bytes(stream[:size])


def pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = sorted({cut % (len(data) + 1) for cut in cuts} | {0, len(data)})
    return [data[start:end] for start, end in zip(bounds, bounds[1:], strict=False)] or [b""]


def vector_snippet(data: bytes, expected: bytes, disagreeing: list[str]) -> str:
    """A vector for spec/vectors/*.json (check `expected` against the spec by hand before adding it)."""
    vector = {
        "id": f"fuzz-{hashlib.sha256(data).hexdigest()[:8]}",
        "clauses": ["T-1", "T-2", "T-3"],
        "description": f"found by differential fuzzing: {', '.join(disagreeing)} disagreed with U",
        "input": {"hex": data.hex(" ")},
        "expected": {"hex": expected.hex(" ")},
    }
    return "ready-to-add vector:\n" + json.dumps(vector, ensure_ascii=False)
