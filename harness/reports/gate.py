"""The gate across runs: a baseline diff of cells, the blame of each flipped cell, and pass-rate history.

All pure functions of results.json documents (and of a history folder), shared by the pytest plugin and by
`python3 -m harness.reports.merge`:

- diff(baseline, results): every cell classified against the baseline run: newly failing, newly passing,
  newly flaky, still failing, unchanged, new, removed; each flipped cell blamed on what changed between the
  two runs' provenance (the client's folder, the server's folder, a runtime version, an image, the
  harness), or "flaky or environmental" when none of that did;
- history: one compact JSON file per run in a folder; the last N runs as a strip per cell, and proposals
  for the known-failures ledger (never applied by themselves).
"""

from __future__ import annotations

import datetime
import hashlib
import json
from pathlib import Path

from .cells import ROLES, cell_id, condition_grids, describe, group_cells, status
from .known_failures import KnownFailure

RESULTS_FORMAT = "upper-echo-results/"
HISTORY_FORMAT = "upper-echo-history/1"
FLIPS = ("newly failing", "newly flaky", "newly passing")
UNEXPECTED = ("newly failing", "newly flaky")  # what fails a baseline run (unless its ledger lists the cell)
KINDS = ("newly failing", "newly flaky", "newly passing", "still failing", "new", "removed", "unchanged")
STABLE = "flaky or environmental"
HISTORY_WINDOW = 20
PROPOSE_AFTER = 3  # a cell failing in every one of at least this many recent runs is a ledger candidate
PROPOSED_EXPIRY_DAYS = 30
STRIP_CODES = {"passed": "p", "failed": "f", "flaky": "~", "known-failure": "k", "skipped": "s"}


def cells_of(results: dict) -> list[dict]:
    return results.get("cells") or group_cells(results.get("tests", []))


# ---------------------------------------------------------------- baseline


def load_baseline(path: Path) -> tuple[dict, Path]:
    """A results.json, or the newest (by its recorded `created`) results document under a folder."""
    path = Path(path)
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8")), path
    if not path.is_dir():
        raise FileNotFoundError(f"--baseline {path}: no such file or folder")
    found = []
    for candidate in sorted(path.rglob("*.json")):
        try:
            document = json.loads(candidate.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(document, dict) and str(document.get("format", "")).startswith(RESULTS_FORMAT):
            found.append((document.get("created", ""), str(candidate), document))
    if not found:
        raise FileNotFoundError(f"--baseline {path}: no results.json under it")
    created, where, document = max(found, key=lambda item: (item[0], item[1]))
    return document, Path(where)


def _class(outcome: str | None) -> str | None:
    if outcome is None:
        return None
    return {"error": "fail", "failed": "fail", "known-failure": "fail", "flaky": "flaky", "passed": "pass"}.get(
        outcome, "skip"
    )


def classify(old: str | None, new: str | None) -> str:
    """The diff kind of one cell from its baseline and current outcomes (None: absent from that run)."""
    before, after = _class(old), _class(new)
    if before is None:
        return "new"
    if after is None:
        return "removed"
    if after == "pass":
        return "newly passing" if before in ("fail", "flaky") else "unchanged"
    if after == "fail":
        return "still failing" if before in ("fail", "flaky") else "newly failing"
    if after == "flaky":
        return "still failing" if before in ("fail", "flaky") else "newly flaky"
    return "unchanged"  # skipped now: --require-all makes that a failure where it matters


def _short(fingerprint: str | None) -> str:
    if not fingerprint:
        return "(none)"
    if fingerprint.startswith("dirty:"):
        return f"uncommitted {fingerprint[6:18]}"
    return fingerprint.removeprefix("sha256:")[:12]


def blame(cell: dict, old_provenance: dict | None, new_provenance: dict | None) -> list[str]:
    """What changed between two runs for this cell's sides and the harness; [STABLE] when nothing did."""
    if not old_provenance or not new_provenance:
        return ["unknown: a run without provenance"]
    reasons: list[str] = []
    old_impls, new_impls = old_provenance.get("implementations", {}), new_provenance.get("implementations", {})
    for role in ROLES:
        name = cell.get(role)
        if not name:
            continue
        before, after = old_impls.get(name), new_impls.get(name)
        if before is None or after is None:
            reasons.append(f"{role} {name}: no provenance in the {'baseline' if before is None else 'current run'}")
            continue
        if before.get("fingerprint") != after.get("fingerprint"):
            reasons.append(
                f"{role}'s folder {after.get('path', name)}/: {_short(before.get('fingerprint'))} -> "
                f"{_short(after.get('fingerprint'))}"
            )
        old_version = (before.get("runtime") or {}).get("version")
        new_version = (after.get("runtime") or {}).get("version")
        if old_version != new_version:
            reasons.append(f"{role}'s runtime ({name}): {old_version} -> {new_version}")
        old_image = (before.get("image") or {}).get("id")
        new_image = (after.get("image") or {}).get("id")
        if (before.get("image") or after.get("image")) and old_image != new_image:
            reasons.append(f"{role}'s image ({name}): {_short(old_image)} -> {_short(new_image)}")
    old_harness, new_harness = old_provenance.get("harness", {}), new_provenance.get("harness", {})
    if old_harness.get("fingerprint") != new_harness.get("fingerprint"):
        parts = [
            f"{part}/"
            for part, state in new_harness.get("parts", {}).items()
            if state.get("fingerprint") != old_harness.get("parts", {}).get(part, {}).get("fingerprint")
        ]
        reasons.append(f"the harness: {', '.join(parts) or 'changed'}")
    if reasons:
        return reasons
    old_env, new_env = old_provenance.get("environment", {}), new_provenance.get("environment", {})
    changed = [
        f"{key} {old_env.get(key)} -> {new_env.get(key)}"
        for key in ("kernel", "cores", "python", "pytest", "plugins")
        if old_env.get(key) != new_env.get(key)
    ]
    return [STABLE + (f" (environment: {'; '.join(changed)})" if changed else "")]


def diff(baseline: dict, results: dict, baseline_path: str = "") -> dict:
    """Every cell of `results` against `baseline`: counts per kind, and every cell that is not unchanged."""
    old = {cell["cell"]: cell for cell in cells_of(baseline)}
    new = {cell["cell"]: cell for cell in cells_of(results)}
    counts = dict.fromkeys(KINDS, 0)
    listed = []
    for cell in sorted(old.keys() | new.keys()):
        before, after = old.get(cell), new.get(cell)
        kind = classify(before and before["outcome"], after and after["outcome"])
        counts[kind] += 1
        if kind == "unchanged":
            continue
        entry = {
            "cell": cell,
            "kind": kind,
            "before": describe(before) if before else None,
            "after": describe(after) if after else None,
        }
        if after is not None and after.get("repro"):
            entry["repro"] = after["repro"]
        if kind in FLIPS:
            entry["blame"] = blame(after, baseline.get("provenance"), results.get("provenance"))
        if after is not None and after["outcome"] == "known-failure":
            entry["listed"] = True
        listed.append(entry)
    unexpected = [e["cell"] for e in listed if e["kind"] in UNEXPECTED and not e.get("listed")]
    return {
        "baseline": {
            "path": baseline_path,
            "created": baseline.get("created"),
            "command": baseline.get("command"),
            "commit": ((baseline.get("provenance") or {}).get("harness") or {}).get("commit"),
        },
        "counts": counts,
        "cells": listed,
        "unexpected": unexpected,
    }


# ---------------------------------------------------------------- history


def history_record(results: dict) -> dict:
    """The compact record of one run: its time, status and every cell's strip code (`~3/20` for flaky),
    grouped by test function (`{"file::test": {"param-id": "p"}}`) so the long prefix is written once."""
    codes: dict[str, dict[str, str]] = {}
    for cell in cells_of(results):
        code = STRIP_CODES.get(status(cell), "f")
        if code in ("~", "k") and cell.get("runs", 1) > 1:
            code += f"{cell['failures']}/{cell['runs']}"
        function, _, param = cell["cell"].partition("[")
        codes.setdefault(function, {})[param[:-1] if param else ""] = code
    provenance = results.get("provenance") or {}
    return {
        "format": HISTORY_FORMAT,
        "created": results.get("created", ""),
        "exit_status": results.get("exit_status"),
        "backend": results.get("backend"),
        "command": results.get("command"),
        "commit": (provenance.get("harness") or {}).get("commit"),
        "cells": codes,
    }


def append_history(folder: Path, results: dict) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    record = history_record(results)
    text = json.dumps(record, separators=(",", ":"), sort_keys=True)
    stamp = "".join(ch for ch in record["created"] if ch.isdigit())[:14] or "0"
    path = folder / f"run-{stamp}-{hashlib.sha256(text.encode()).hexdigest()[:8]}.json"
    path.write_text(text + "\n", encoding="utf-8")
    return path


def load_history(folder: Path, window: int = HISTORY_WINDOW) -> list[dict]:
    """The last `window` run records of a history folder, oldest first."""
    records = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and record.get("format") == HISTORY_FORMAT:
            record["cells"] = {
                f"{function}[{param}]" if param else function: code
                for function, params in record.get("cells", {}).items()
                for param, code in params.items()
            }
            records.append((record.get("created", ""), path.name, record))
    records.sort(key=lambda item: (item[0], item[1]))
    return [record for _, _, record in records[-window:]] if window > 0 else []


def _passing(code: str) -> bool:
    return code == "p"


def _failing(code: str) -> bool:
    return code[:1] in ("f", "k") and not code.startswith("k0")


def history_view(records: list[dict], results: dict, today: datetime.date | None = None) -> dict:
    """Strips (one code per run, `.` absent) for every cell of this run that did not pass in every run of the
    window, the pass rate of those, and the ledger proposals."""
    today = today or datetime.date.today()
    cells = {cell["cell"]: cell for cell in cells_of(results)}
    strips, rates = {}, {}
    for name in sorted(cells):
        codes = [record["cells"].get(name, ".") for record in records]
        present = [code for code in codes if code not in (".", "s")]
        if present and all(_passing(code) for code in present):
            continue
        strips[name] = codes
        rates[name] = round(sum(_passing(code) for code in present) / len(present), 3) if present else None
    entries = [
        KnownFailure(e["test"], e["reason"], e["link"], datetime.date.fromisoformat(e["expires"]))
        for e in (results.get("ledger") or {}).get("entries", [])
    ]
    add, remove = [], []
    for name, codes in strips.items():
        present = [code for code in codes if code != "."]
        listed = any(entry.matches_cell(name) for entry in entries)
        if listed or len(present) < PROPOSE_AFTER or not all(_failing(c) for c in present):
            continue
        since = next(record["created"] for record, code in zip(records, codes, strict=True) if code != ".")
        add.append(
            {
                "test": name,
                "reason": f"fails in each of the last {len(present)} runs (since {since[:10]}): FILL IN why",
                "link": "https://FILL-IN",
                "expires": (today + datetime.timedelta(days=PROPOSED_EXPIRY_DAYS)).isoformat(),
            }
        )
    for entry in entries:
        matched = [cell for name, cell in cells.items() if entry.matches_cell(name) or _matches_items(entry, cell)]
        if matched and all(cell["outcome"] == "passed" for cell in matched):
            remove.append({**entry.as_dict(), "passed": len(matched)})
    return {
        "window": len(records),
        "runs": [{"created": r.get("created"), "exit_status": r.get("exit_status")} for r in records],
        "strips": strips,
        "rates": rates,
        "stable": len(cells) - len(strips),
        "proposals": {"add": add, "remove": remove},
    }


def _matches_items(entry: KnownFailure, cell: dict) -> bool:
    return any(entry.matches(nodeid) for nodeid in cell.get("items", [cell["cell"]]))


def proposal_toml(entry: dict) -> str:
    return (
        f'[[failure]]\ntest    = "{entry["test"]}"\nreason  = "{entry["reason"]}"\n'
        f'link    = "{entry["link"]}"\nexpires = {entry["expires"]}\n'
    )


# ---------------------------------------------------------------- one place that applies all of it


def finalize(
    results: dict,
    baseline: Path | None = None,
    history: Path | None = None,
    window: int = HISTORY_WINDOW,
    fail_on_new: bool = True,
    write_history: bool = True,
) -> bool:
    """Add cells, the baseline diff and the history view to `results` (in place); append the history record.
    True when the gate fails on its own account: a newly failing or newly flaky cell the ledger does not list."""
    results["cells"] = group_cells(results.get("tests", []))
    grids = condition_grids(results["cells"])
    if grids:
        results["conditions"] = grids
    gate_failed = False
    if baseline is not None:
        document, where = load_baseline(baseline)
        results["diff"] = diff(document, results, str(where))
        gate_failed = fail_on_new and bool(results["diff"]["unexpected"])
    if gate_failed and results.get("exit_status") == 0:
        results["exit_status"] = 1
    if history is not None:
        if write_history:
            results["history_record"] = str(append_history(history, results))
        results["history"] = history_view(load_history(history, window), results)
    return gate_failed


__all__ = ["cell_id", "classify", "blame", "diff", "finalize", "history_view", "load_baseline", "load_history"]
