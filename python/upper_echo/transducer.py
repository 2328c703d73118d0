"""The pure protocol core: the transform U of spec/PROTOCOL.md as a streaming transducer, touching no I/O.

No sockets, no files, no stdin or stdout: feed() takes bytes and returns the
bytes that are owed now, flush() returns the held-back tail at end of stream.
The pinned table it maps with comes from table.py.

Design: Python's strict UTF-8 decoder with the `surrogateescape` error
handler implements Table 3-7 exactly (T-2) and turns each byte that is not
part of a well-formed sequence into one lone surrogate U+DC80..U+DCFF, which
the encoder turns back into the same byte (T-3). The held-back tail (D-2) is
computed here, not by Python's incremental decoder: that one also holds back
`ED A0`, which can never become well-formed. The mapping itself comes from
the pinned table (T-4). str.upper maps instead only where a recorded build-time
proof (proof.py, run by bin/build) shows this interpreter's str.upper equal to
that table on every scalar value and on the escape surrogates (T-5); only the
mapping of the decoded text changes, not the tail, the escapes or the structure.

Speed (bench/README.md): with the proof, decode + str.upper + encode runs at
C speed (about 6x the table route below on the bench's mixed text). Without it:
`str.translate` costs ~50 ns per character on
non-ASCII text, ASCII included. So a chunk is first `bytes.upper()`-ed, which
maps exactly a-z (the table's only ASCII keys; those bytes never occur inside
a multi-byte sequence), and then only the table's non-ASCII keys that occur
in the chunk are replaced, one `str.replace` each. That is exact because no
replacement contains a key (checked when the plan is made), so the order of
the replacements does not matter. With very many distinct keys in one chunk
it falls back to `str.translate`.
"""

from __future__ import annotations

import re
from functools import lru_cache

from .proof import str_upper_is_proven
from .table import uppercase_table

# A proper prefix of a well-formed sequence (Table 3-7) at the very end of the input.
POSSIBLE_PREFIX_AT_END = re.compile(
    rb"""(?:
      [\xc2-\xdf]
    | \xe0[\xa0-\xbf]? | [\xe1-\xec\xee\xef][\x80-\xbf]? | \xed[\x80-\x9f]?
    | \xf0(?:[\x90-\xbf][\x80-\xbf]?)? | [\xf1-\xf3](?:[\x80-\xbf][\x80-\xbf]?)? | \xf4(?:[\x80-\x8f][\x80-\xbf]?)?
    )\Z""",
    re.VERBOSE,
)

ASCII_BYTES = bytes(range(128))
ASCII_LOWER = frozenset(range(ord("a"), ord("z") + 1))
MAX_REPLACEMENTS = 160  # distinct keys in one chunk above which one str.translate pass is cheaper


def replacement_plan(table: dict[int, str]) -> dict[str, str] | None:
    """The table's non-ASCII keys as str -> str, when bytes.upper() + replacing them is exactly U."""
    ascii_keys = {key for key in table if key < 0x80}
    if ascii_keys != ASCII_LOWER or any(table[key] != chr(key - 32) for key in ascii_keys):
        return None
    if any(ord(char) in table for replacement in table.values() for char in replacement):
        return None  # a replacement that is itself a key would make the order of replacements matter
    return {chr(key): replacement for key, replacement in table.items() if key >= 0x80}


@lru_cache(maxsize=1)
def default_plan() -> dict[str, str] | None:
    return replacement_plan(uppercase_table())


class UppercaseTransducer:
    """Streaming U: bytes in, bytes out, flush at end of stream."""

    def __init__(self, table: dict[int, str] | None = None) -> None:
        self._table = uppercase_table() if table is None else table
        self._plan = default_plan() if table is None else replacement_plan(table)
        self._str_upper = table is None and str_upper_is_proven()  # T-5: only where the build proved it equal
        self._tail = b""

    def feed(self, data: bytes) -> bytes:
        """Transform `data`; return everything owed except a possible-prefix tail (D-2)."""
        if not self._tail and data.isascii():
            return data.upper()  # fast path: bytes.upper() maps a-z only, which is U on ASCII
        data = self._tail + data
        held = POSSIBLE_PREFIX_AT_END.search(data, max(0, len(data) - 3))
        cut = held.start() if held else len(data)
        self._tail = data[cut:]
        return self._map(data[:cut])

    def flush(self) -> bytes:
        """End of stream: the held-back tail passes through unchanged (E-1, T-3)."""
        tail, self._tail = self._tail, b""
        return tail

    def _map(self, data: bytes) -> bytes:
        if self._str_upper:  # the escapes of invalid bytes come back unchanged: the proof covers them (T-3)
            return data.decode("utf-8", errors="surrogateescape").upper().encode("utf-8", errors="surrogateescape")
        plan = self._plan
        if plan is None:
            return self._translate(data)
        data = data.upper()  # a-z only (see the module docstring)
        non_ascii = data.translate(None, ASCII_BYTES)
        if not non_ascii:
            return data
        present = plan.keys() & set(non_ascii.decode("utf-8", errors="surrogateescape"))
        if not present:
            return data
        if len(present) > MAX_REPLACEMENTS:
            return self._translate(data)
        text = data.decode("utf-8", errors="surrogateescape")
        for key in present:
            text = text.replace(key, plan[key])
        return text.encode("utf-8", errors="surrogateescape")

    def _translate(self, data: bytes) -> bytes:
        text = data.decode("utf-8", errors="surrogateescape")
        return text.translate(self._table).encode("utf-8", errors="surrogateescape")


def transform(data: bytes) -> bytes:
    """U over a whole stream."""
    transducer = UppercaseTransducer()
    return transducer.feed(data) + transducer.flush()
