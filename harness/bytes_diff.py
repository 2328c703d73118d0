"""Readable failure messages for byte-for-byte comparisons of possibly huge outputs."""

from __future__ import annotations

CONTEXT = 16


def first_difference(actual: bytes, expected: bytes) -> int | None:
    """Offset of the first differing byte, or None when equal."""
    if actual == expected:
        return None
    for offset, (a, e) in enumerate(zip(actual, expected, strict=False)):
        if a != e:
            return offset
    return min(len(actual), len(expected))


def _window(data: bytes, offset: int) -> str:
    start = max(0, offset - CONTEXT)
    chunk = data[start : offset + CONTEXT]
    return f"{chunk.hex(' ')}  {chunk!r}"


def describe_difference(actual: bytes, expected: bytes) -> str:
    offset = first_difference(actual, expected)
    if offset is None:
        return "equal"
    return (
        f"bytes differ at offset {offset} (actual {len(actual)} bytes, expected {len(expected)} bytes)\n"
        f"  actual   around it: {_window(actual, offset)}\n"
        f"  expected around it: {_window(expected, offset)}"
    )


def assert_same_bytes(actual: bytes, expected: bytes) -> None:
    """Fail with describe_difference. Raised by hand, not with `assert`: pytest's own explanation of two
    unequal megabyte strings is a quadratic diff that can run for many minutes."""
    if actual != expected:
        raise AssertionError(describe_difference(actual, expected))
