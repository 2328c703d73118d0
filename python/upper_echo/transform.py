"""The transform U of spec/PROTOCOL.md as a sans-I/O streaming transducer.

No sockets, no files: feed() takes bytes and returns the bytes that are owed
now, flush() returns the held-back tail at end of stream.

Design: Python's strict UTF-8 decoder with the `surrogateescape` error
handler implements Table 3-7 exactly (T-2) and turns each byte that is not
part of a well-formed sequence into one lone surrogate U+DC80..U+DCFF, which
the encoder turns back into the same byte (T-3). Its incremental form holds
back only a tail that can still become well-formed (D-2). The mapping itself
comes from the pinned table (T-4), never from str.upper (T-5).
"""
from __future__ import annotations

import codecs
from functools import lru_cache
from importlib import resources

TABLE_RESOURCE = "uppercase.tsv"


def parse_table(text: str) -> dict[int, str]:
    """Parse spec/uppercase.tsv into a str.translate table."""
    table: dict[int, str] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        code_point, replacement = line.split("\t")
        table[int(code_point, 16)] = "".join(chr(int(cp, 16)) for cp in replacement.split(" "))
    return table


@lru_cache(maxsize=1)
def uppercase_table() -> dict[int, str]:
    """The pinned table, shipped as package data (a link to spec/uppercase.tsv)."""
    text = resources.files(__package__).joinpath(TABLE_RESOURCE).read_text(encoding="utf-8")
    return parse_table(text)


def _utf8_decoder() -> codecs.IncrementalDecoder:
    return codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")


class UppercaseTransducer:
    """Streaming U: bytes in, bytes out, flush at end of stream."""

    def __init__(self, table: dict[int, str] | None = None) -> None:
        self._table = uppercase_table() if table is None else table
        self._decoder = _utf8_decoder()
        self._tail_held = False

    def feed(self, data: bytes) -> bytes:
        """Transform `data`; return everything owed except an incomplete tail (D-2)."""
        if not self._tail_held and data.isascii():
            return data.upper()  # fast path: bytes.upper() maps a-z only, which is U on ASCII
        text = self._decoder.decode(data, final=False)
        self._tail_held = bool(self._decoder.getstate()[0])
        return self._encode(text)

    def flush(self) -> bytes:
        """End of stream: the held-back tail passes through unchanged (E-1, T-3)."""
        text = self._decoder.decode(b"", final=True)
        self._decoder = _utf8_decoder()
        self._tail_held = False
        return self._encode(text)

    def _encode(self, text: str) -> bytes:
        return text.translate(self._table).encode("utf-8", errors="surrogateescape")


def transform(data: bytes) -> bytes:
    """U over a whole stream."""
    transducer = UppercaseTransducer()
    return transducer.feed(data) + transducer.flush()
