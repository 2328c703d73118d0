"""The build-time proof that lets the transducer map with str.upper (spec/PROTOCOL.md T-5).

T-5 forbids a runtime's case functions as such: they differ between runtimes and versions. It allows one only where
a recorded build-time proof shows it equal to the pinned table. `bin/build` runs `python -m upper_echo.proof`, which
compares this interpreter's str.upper with the table on every one of the 1,112,064 Unicode scalar values (and on
the 128 lone surrogates U+DC80..U+DCFF that the `surrogateescape` decoder turns invalid bytes into, which must come
back unchanged for T-3), one character at a time and as one string, and records the verdict in PROOF_FILE beside
the package, keyed by the interpreter (implementation, sys.version, unicodedata.unidata_version) and by the
table's SHA-256. At run time `str_upper_is_proven()` looks the running interpreter and table up there: anything
missing, different or unreadable means no proof, and the transducer maps with the table.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import unicodedata
from functools import lru_cache

from .table import parse_table, uppercase_table_text

# A plain path: pathlib (and tempfile, in record()) would cost every server and transform start about 6 ms.
PROOF_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "str-upper-proof.json")
ESCAPE_SURROGATES = range(0xDC80, 0xDD00)  # what surrogateescape decodes the bytes 80..FF into
SCALAR_VALUES = 0x110000 - 0x800


def interpreter_key() -> str:
    """What str.upper depends on: the interpreter's build and its Unicode database."""
    return f"{sys.implementation.name} {sys.version} unicode {unicodedata.unidata_version}"


def table_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def scalar_values():
    return (code_point for code_point in range(0x110000) if not 0xD800 <= code_point <= 0xDFFF)


def prove(table: dict[int, str]) -> tuple[bool, str]:
    """(True, what was checked) when str.upper equals `table` everywhere; (False, the first difference) if not."""
    checked = 0
    for code_point in scalar_values():
        character = chr(code_point)
        if character.upper() != table.get(code_point, character):
            return (
                False,
                f"U+{code_point:04X} upper() is {character.upper()!r}, the table says {table.get(code_point)!r}",
            )
        checked += 1
    if checked != SCALAR_VALUES:
        return False, f"checked {checked} scalar values, expected {SCALAR_VALUES}"
    for code_point in ESCAPE_SURROGATES:
        if chr(code_point).upper() != chr(code_point):
            return False, f"U+{code_point:04X} (an escaped invalid byte) is not left unchanged"
    # No context across characters: one string of every scalar value (and escape) maps character by character.
    everything = "".join(map(chr, scalar_values())) + "".join(map(chr, ESCAPE_SURROGATES))
    expected = "".join(table.get(ord(character), character) for character in everything)
    if everything.upper() != expected:
        return False, "str.upper of all scalar values as one string differs from the table, character by character"
    return True, f"{checked} scalar values and {len(ESCAPE_SURROGATES)} escape surrogates"


def read_proofs(path: str = PROOF_FILE) -> dict:
    try:
        with open(path, encoding="utf-8") as proof_file:
            proofs = json.load(proof_file)
    except (OSError, ValueError):
        return {}
    return proofs if isinstance(proofs, dict) else {}


@lru_cache(maxsize=1)
def str_upper_is_proven() -> bool:
    """Whether a recorded build-time proof shows this interpreter's str.upper equal to the pinned table (T-5)."""
    entry = read_proofs().get(interpreter_key())
    return (
        isinstance(entry, dict)
        and entry.get("equal") is True
        and entry.get("table_sha256") == table_digest(uppercase_table_text())
    )


def record(path: str = PROOF_FILE) -> tuple[bool, str]:
    """Prove, unless this interpreter and table are recorded already (bin/build is idempotent), and record it."""
    text = uppercase_table_text()
    key, digest = interpreter_key(), table_digest(text)
    proofs = read_proofs(path)
    entry = proofs.get(key)
    if isinstance(entry, dict) and entry.get("table_sha256") == digest and isinstance(entry.get("equal"), bool):
        return entry["equal"], f"{entry.get('detail', '')} (recorded already)"
    equal, detail = prove(parse_table(text))
    proofs[key] = {"equal": equal, "table_sha256": digest, "detail": detail}
    import tempfile  # bin/build only

    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".str-upper-proof-")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        json.dump(proofs, out, indent=2, sort_keys=True)
        out.write("\n")
    os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide it from an unprivileged server (Dockerfile)
    os.replace(temporary, path)
    return equal, detail


def main() -> int:
    """bin/build: prove and record; says what it found when it proved anew, nothing when it was recorded already."""
    recorded = read_proofs().get(interpreter_key())
    equal, detail = record()
    if recorded != read_proofs().get(interpreter_key()):
        verdict = "equals" if equal else "differs from (the transducer maps with the table)"
        print(f"str.upper of {interpreter_key()} {verdict} the pinned table: {detail}", file=sys.stderr)
    return 0  # a difference is not a build failure: the transducer then maps with the table


if __name__ == "__main__":
    sys.exit(main())
