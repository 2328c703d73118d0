"""Shards: `--shard K/N` runs the K-th of N deterministic parts of the selected tests.

Tests are grouped by the server they use (a server's cells stay together, so its shared server starts once
per shard), else by the implementation or client they run, else by test file; groups go, largest first (ties
by name), to the shard with the fewest tests so far (ties: the lowest index). The same selection always
splits the same way, on every machine and in every xdist worker.
"""

from __future__ import annotations

import re

SHARD = re.compile(r"^(\d+)/(\d+)$")


def parse_shard(text: str) -> tuple[int, int]:
    match = SHARD.match(text.strip())
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise ValueError(f"--shard must be K/N with 1 <= K <= N, not {text!r}")
    return int(match[1]), int(match[2])


def shard_key(record: dict) -> str:
    """The group a test (a results.json record, or the same fields of a collected item) belongs to."""
    if record.get("server"):
        return f"server:{record['server']}"
    for role in ("implementation", "client"):
        if record.get(role):
            return f"{role}:{record[role]}"
    return f"file:{record.get('file') or record['nodeid'].split('::', 1)[0]}"


def assign(sizes: dict[str, int], count: int) -> dict[str, int]:
    """group -> shard index (1-based): largest group first to the least loaded shard."""
    loads = [0] * count
    placed = {}
    for key in sorted(sizes, key=lambda key: (-sizes[key], key)):
        index = min(range(count), key=lambda i: (loads[i], i))
        placed[key] = index + 1
        loads[index] += sizes[key]
    return placed


def split(records: list[dict], shard: int, count: int) -> tuple[list[dict], list[dict]]:
    """(kept, dropped) for shard `shard` of `count`, keeping the records' order."""
    sizes: dict[str, int] = {}
    for record in records:
        key = shard_key(record)
        sizes[key] = sizes.get(key, 0) + 1
    placed = assign(sizes, count)
    kept = [record for record in records if placed[shard_key(record)] == shard]
    dropped = [record for record in records if placed[shard_key(record)] != shard]
    return kept, dropped
