"""The pinned uppercase table of spec/PROTOCOL.md T-4, loaded from the package's uppercase.tsv.

uppercase.tsv is a link to spec/uppercase.tsv. Format: lines starting with `#` are comments; every other line is
`CODEPOINT<TAB>REPLACEMENT`, hex code points, the replacement one or more of them separated by single spaces.
"""

from __future__ import annotations

import os
from functools import lru_cache

# Opened beside this module, not through importlib.resources, which costs every server and transform start about
# 4 ms (it imports typing and zipfile): the package is always a folder (bin/upper-echo, or installed by pip).
TABLE_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "uppercase.tsv")


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
def uppercase_table_text() -> str:
    """spec/uppercase.tsv as shipped with the package (a link to it)."""
    with open(TABLE_FILE, encoding="utf-8") as table_file:
        return table_file.read()


@lru_cache(maxsize=1)
def uppercase_table() -> dict[int, str]:
    """The pinned table, parsed."""
    return parse_table(uppercase_table_text())
