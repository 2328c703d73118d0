"""The pinned table spec/uppercase.tsv (T-4): reproducible, and what Unicode says."""

from __future__ import annotations

import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from upper_echo.table import parse_table

REPO = Path(__file__).resolve().parents[2]
TABLE = REPO / "spec" / "uppercase.tsv"
UCD = Path("/usr/share/unicode")


@pytest.fixture(scope="module")
def table() -> dict[int, str]:
    return parse_table(TABLE.read_text(encoding="utf-8"))


@pytest.mark.clause("T-4")
def test_regenerating_reproduces_the_committed_table() -> None:
    if not (UCD / "SpecialCasing.txt").is_file():
        pytest.skip("Debian's unicode-data package is not installed")
    generated = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen-uppercase-table"), "--output", "-"],
        capture_output=True,
        check=True,
    ).stdout
    assert generated == TABLE.read_bytes()


@pytest.mark.clause("T-4")
def test_the_table_is_unicode_15_with_1525_entries(table) -> None:
    assert TABLE.read_text(encoding="utf-8").startswith("# Unicode 15.0.0 full default uppercase mapping")
    assert len(table) == 1525


@pytest.mark.clause("T-4")
@pytest.mark.parametrize(
    "lower,upper",
    [
        ("ß", "SS"),
        ("ﬁ", "FI"),
        ("ŉ", "ʼN"),
        ("ᾳ", "ΑΙ"),
        ("ΐ", "\u0399\u0308\u0301"),
        ("ı", "I"),
        ("i", "I"),
        ("µ", "Μ"),
        ("ǅ", "Ǆ"),
        ("𐐨", "𐐀"),
        ("ა", "Ა"),
        ("ꭰ", "Ꭰ"),
    ],
)
def test_the_spec_examples(table, lower, upper) -> None:
    assert table[ord(lower)] == upper


@pytest.mark.clause("T-4")
@pytest.mark.parametrize("unchanged", ["İ", "ẞ", "😀", "A", "1"])
def test_what_maps_to_itself_is_not_listed(table, unchanged) -> None:
    assert ord(unchanged) not in table


@pytest.mark.clause("T-4", "T-5")
def test_python_str_upper_agrees_on_every_scalar_value(table) -> None:
    """Python's own mapping is a second, independent derivation of the same data, for 14.0 and 15.0."""
    if unicodedata.unidata_version not in ("14.0.0", "15.0.0"):
        pytest.skip(f"this Python has Unicode {unicodedata.unidata_version}; the comparison holds for 14.0 and 15.0")
    differ = [
        hex(cp) for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF and chr(cp).upper() != table.get(cp, chr(cp))
    ]
    assert differ == []
