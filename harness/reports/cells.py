"""Cells: what the reports count. A cell is a test item, except that the N repeats of one test (a parameter
`repeat_index` with ids `r{k}of{N}`, so node ids end in `-r3of20]`) are one cell, identified by the node id
with that suffix removed. A repeated cell that failed k of N times is "flaky" (shown as k/N); all N passing is
passed, all N failing is failed.

A cell's `condition` (the network-conditions axis: a `condition` parameter, ids like
`java-client->[split-1]->csharp-server`) puts it in that condition's own clients x servers grid.
"""

from __future__ import annotations

import re

REPEAT = re.compile(r"-r(\d+)of(\d+)(?=\]$)")
CONDITION = re.compile(r"->\[([^\]]+)\]->")
FAILING = ("failed", "error")
# the fields a cell keeps from its first item
KEPT = ("test", "client", "server", "implementation", "vector", "category", "condition")
ROLES = ("client", "server", "implementation")


def cell_id(nodeid: str) -> str:
    """The node id without its repeat suffix (`...-csharp-server-r3of20]` -> `...-csharp-server]`)."""
    return REPEAT.sub("", nodeid, count=1)


def repeat_of(nodeid: str) -> tuple[int, int] | None:
    """(k, N) of a repeated item's node id, else None."""
    match = REPEAT.search(nodeid)
    return (int(match[1]), int(match[2])) if match else None


def condition_of(nodeid: str) -> str | None:
    """The condition named in a node id (`java-client->[split-1]->csharp-server`), else None."""
    match = CONDITION.search(nodeid)
    return match[1] if match else None


def status(cell: dict) -> str:
    """One word for diffs and history: passed, failed, flaky, known-failure, skipped."""
    outcome = cell["outcome"]
    return "failed" if outcome == "error" else outcome


def describe(cell: dict) -> str:
    """The outcome as people read it: `flaky 3/20` for a flaky cell, `failed 20/20` for a repeated failure."""
    outcome = status(cell)
    if outcome == "flaky" or (cell.get("runs", 1) > 1 and outcome in ("failed", "known-failure")):
        return f"{outcome} {cell['failures']}/{cell['runs']}"
    return outcome


def group_cells(tests: list[dict]) -> list[dict]:
    """The cells of a run's test records (results.json `tests`), sorted by cell id."""
    groups: dict[str, list[dict]] = {}
    for record in tests:
        groups.setdefault(cell_id(record["nodeid"]), []).append(record)
    return [make_cell(cell, records) for cell, records in sorted(groups.items())]


def make_cell(cell: str, records: list[dict]) -> dict:
    records = sorted(records, key=lambda r: (repeat_of(r["nodeid"]) or (0, 0))[0])
    first = records[0]
    out: dict = {"cell": cell, **{key: first[key] for key in KEPT if first.get(key) not in (None, "")}}
    if "condition" not in out and condition_of(cell):
        out["condition"] = condition_of(cell)
    outcomes = [r["outcome"] for r in records]
    bad = sum(o in FAILING for o in outcomes)
    known = outcomes.count("known-failure")
    passed = outcomes.count("passed")
    runs = len(records)
    repeated = runs > 1 or repeat_of(first["nodeid"]) is not None
    if not repeated:
        outcome = first["outcome"]
    elif outcomes.count("skipped") == runs:
        outcome = "skipped"
    elif bad + known == 0:
        outcome = "passed"
    elif bad == 0:
        outcome = "known-failure"  # a listed cell (flaky or not): its failing repeats are known failures
    elif passed == 0 and known == 0:
        outcome = "error" if all(o == "error" for o in outcomes if o != "skipped") else "failed"
    else:
        outcome = "flaky"
    out.update(outcome=outcome, runs=runs, failures=bad + known)
    if repeated:
        out["items"] = [r["nodeid"] for r in records]
    out["provenance"] = {role: first[role] for role in ROLES if first.get(role)}
    failing = next((r for r in records if r["outcome"] in (*FAILING, "known-failure")), None)
    out["repro"] = (failing or first).get("repro", "")
    if failing is not None and failing.get("transcript"):
        out["transcript_of"] = failing["nodeid"]
    return out


def condition_grids(cells: list[dict]) -> dict[str, dict[str, dict[str, list[dict]]]]:
    """One clients x servers grid per condition, for results.json:
    {condition: {client: {server: [{"cell", "outcome", "failures", "runs"}]}}}."""
    grids: dict[str, dict[str, dict[str, list[dict]]]] = {}
    for cell in cells:
        if cell.get("condition") and cell.get("client") and cell.get("server"):
            box = grids.setdefault(cell["condition"], {}).setdefault(cell["client"], {})
            box.setdefault(cell["server"], []).append(
                {key: cell[key] for key in ("cell", "outcome", "failures", "runs")}
            )
    return {condition: grids[condition] for condition in sorted(grids)}
