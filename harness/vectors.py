"""The conformance vectors of spec/vectors/ (format: spec/vectors/README.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from . import REPO

VECTORS = REPO / "spec" / "vectors"


@dataclass(frozen=True)
class Vector:
    id: str
    category: str
    clauses: tuple[str, ...]
    description: str
    input: bytes
    expected: bytes


def expand(payload: dict) -> bytes:
    """Turn a PAYLOAD (text, hex, repeat or concat) into bytes."""
    if "text" in payload:
        return payload["text"].encode("utf-8")
    if "hex" in payload:
        return bytes.fromhex(payload["hex"])
    if "repeat" in payload:
        return expand(payload["repeat"]) * payload["times"]
    if "concat" in payload:
        return b"".join(expand(part) for part in payload["concat"])
    raise ValueError(f"unknown payload: {sorted(payload)}")


def load_vectors(folder: Path = VECTORS) -> list[Vector]:
    vectors = []
    for path in sorted(folder.glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        for entry in document["vectors"]:
            vectors.append(
                Vector(
                    id=entry["id"],
                    category=document["category"],
                    clauses=tuple(entry["clauses"]),
                    description=entry["description"],
                    input=expand(entry["input"]),
                    expected=expand(entry["expected"]),
                )
            )
    return vectors
