"""A deliberately naive oracle for U: the scanning rule of spec T-3, written out byte by byte.

It shares nothing with any implementation but the table file, spec/uppercase.tsv, which it reads itself, so
it can check them all: the unit tests' transducer, the differential fuzzer's servers and clients, and the
bench's stream output. `expected_u(data)` is U with the pinned table.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from . import REPO

TABLE = REPO / "spec" / "uppercase.tsv"

# Table 3-7: lead byte range -> (sequence length, allowed range of the second byte)
WELL_FORMED_LEADS = [
    (0xC2, 0xDF, 2, 0x80, 0xBF),
    (0xE0, 0xE0, 3, 0xA0, 0xBF),
    (0xE1, 0xEC, 3, 0x80, 0xBF),
    (0xED, 0xED, 3, 0x80, 0x9F),
    (0xEE, 0xEF, 3, 0x80, 0xBF),
    (0xF0, 0xF0, 4, 0x90, 0xBF),
    (0xF1, 0xF3, 4, 0x80, 0xBF),
    (0xF4, 0xF4, 4, 0x80, 0x8F),
]


def well_formed_length(data: bytes, start: int) -> int:
    """Length of the well-formed sequence starting at `start`, or 0 if none does."""
    lead = data[start]
    if lead < 0x80:
        return 1
    for low, high, length, second_low, second_high in WELL_FORMED_LEADS:
        if low <= lead <= high:
            tail = data[start + 1 : start + length]
            if (
                len(tail) == length - 1
                and second_low <= tail[0] <= second_high
                and all(0x80 <= byte <= 0xBF for byte in tail[1:])
            ):
                return length
            return 0
    return 0


def is_proper_prefix(rest: bytes) -> bool:
    """Whether `rest` is the start of a well-formed sequence and shorter than it: what a server holds back (D-2)."""
    for low, high, length, second_low, second_high in WELL_FORMED_LEADS:
        if low <= rest[0] <= high:
            return (
                len(rest) < length
                and (len(rest) < 2 or second_low <= rest[1] <= second_high)
                and all(0x80 <= byte <= 0xBF for byte in rest[2:])
            )
    return False


def owed_length(data: bytes) -> int:
    """How much of `data` a server must have answered once it has received exactly `data` (D-2): all but a
    tail that is a proper prefix of a well-formed sequence."""
    position = 0
    while position < len(data):
        length = well_formed_length(data, position)
        if not length and is_proper_prefix(data[position:]):
            return position
        position += length or 1
    return position


def reference_u(data: bytes, table: dict[int, str]) -> bytes:
    out, position = bytearray(), 0
    while position < len(data):
        length = well_formed_length(data, position)
        if length:
            code_point = ord(data[position : position + length].decode("utf-8"))
            out += table.get(code_point, chr(code_point)).encode("utf-8")
            position += length
        else:
            out.append(data[position])
            position += 1
    return bytes(out)


def read_table(path: Path = TABLE) -> dict[int, str]:
    """spec/uppercase.tsv (T-4): code point -> its full uppercase mapping, for the code points that change."""
    table: dict[int, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            source, target = line.split("\t")
            table[int(source, 16)] = "".join(chr(int(code, 16)) for code in target.split())
    return table


@lru_cache(maxsize=1)
def pinned_table() -> dict[int, str]:
    return read_table()


# The matrix asks for the same inputs' U once per pair. A worker meets about 100 vectors and 60 condition inputs
# (U of 100 kB takes this oracle 60 ms): all of them stay.
@lru_cache(maxsize=1024)
def expected_u(data: bytes) -> bytes:
    """U(data) with the pinned table: what every server and client must produce for `data`."""
    return reference_u(data, pinned_table())


def owed_after_each_read(data: bytes, read_size: int) -> list[bytes]:
    """What a server must have sent after each read of `read_size` bytes of `data` (D-2), then at its half-close
    (E-1): the held-back tail, unchanged. Joined, they are U(data)."""
    owed, answered = [], 0
    for end in range(read_size, len(data) + read_size, read_size):
        cut = answered + owed_length(data[answered:end])  # what was answered ends on a sequence boundary
        owed.append(reference_u(data[answered:cut], pinned_table()))
        answered = cut
    return [*owed, data[answered:]]
