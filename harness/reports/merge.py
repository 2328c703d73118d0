"""Merge the results.json of several shards (`--shard K/N` runs) into one report: one table, one baseline
diff, one history record.

    python3 -m harness.reports.merge OUT_DIR IN_DIR... [--baseline PATH] [--history DIR]

Writes OUT_DIR/results.json, junit.xml, report.html and summary.md, prints the terminal table and exits
with the merged status (1 when any shard failed, the ledger has problems, or a cell is newly failing).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections import Counter
from pathlib import Path

from .gate import HISTORY_WINDOW, finalize
from .junit import write_junit
from .known_failures import KnownFailure, Ledger
from .render import clause_coverage, render_all, terminal_lines


class MergeError(ValueError):
    """Shards that cannot be one run: the same test twice, or different harness trees."""


def merge_results(parts: list[dict], today: datetime.date | None = None) -> dict:
    if not parts:
        raise MergeError("nothing to merge")
    tests: dict[str, dict] = {}
    for part in parts:
        for record in part.get("tests", []):
            if record["nodeid"] in tests:
                raise MergeError(f"{record['nodeid']} is in two shards")
            tests[record["nodeid"]] = record
    fingerprints = {((p.get("provenance") or {}).get("harness") or {}).get("fingerprint") for p in parts}
    if len(fingerprints) > 1:
        raise MergeError("the shards ran different harness trees (provenance.harness.fingerprint differs)")
    first = parts[0]
    provenance = json.loads(json.dumps(first.get("provenance") or {}))
    for part in parts[1:]:
        for name, state in ((part.get("provenance") or {}).get("implementations") or {}).items():
            provenance.setdefault("implementations", {}).setdefault(name, state)
    entries = [
        KnownFailure(e["test"], e["reason"], e["link"], datetime.date.fromisoformat(e["expires"]))
        for e in first.get("ledger", {}).get("entries", [])
    ]
    records = sorted(tests.values(), key=lambda r: r["nodeid"])
    narrowed = any(p.get("narrowed", False) for p in parts)
    problems = Ledger(entries, today).problems([r["nodeid"] for r in records], narrowed)
    problems += sorted({p for part in parts for p in part.get("ledger", {}).get("problems", []) if "passed" in p})
    statuses = [0 if p.get("exit_status") in (0, 5) else p.get("exit_status", 1) for p in parts]
    exit_status = max(statuses) if any(statuses) else (1 if problems else 0)
    return {
        "format": first.get("format", "upper-echo-results/2"),
        "created": max(p.get("created", "") for p in parts),
        "duration": max(p.get("duration", 0) for p in parts),
        "hostname": first.get("hostname", ""),
        "backend": first.get("backend", "local"),
        "command": " + ".join(sorted({p.get("command", "") for p in parts})),
        "shards": sorted(p.get("shard") or "-" for p in parts),
        "narrowed": narrowed,
        "exit_status": exit_status,
        "counts": dict(Counter(r["outcome"] for r in records)),
        "ledger": {"entries": first.get("ledger", {}).get("entries", []), "problems": problems},
        "clauses": clause_coverage(records),
        "provenance": provenance,
        "tests": records,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m harness.reports.merge",
        description="Merge shard runs (pytest --shard K/N --report-dir IN_DIR) into one report in OUT_DIR: "
        "results.json, junit.xml, report.html, summary.md and the terminal table; with --baseline one diff, "
        "with --history one history record. Exit status: the merged run's (non-zero when any shard failed "
        "or a cell is newly failing).",
    )
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    parser.add_argument("in_dirs", type=Path, nargs="+", metavar="IN_DIR", help="a shard's --report-dir")
    parser.add_argument("--baseline", type=Path, metavar="PATH", help="an earlier results.json or a folder of them")
    parser.add_argument("--history", type=Path, metavar="DIR", help="append the merged run's record to DIR")
    parser.add_argument("--history-window", type=int, default=HISTORY_WINDOW, metavar="N")
    parser.add_argument(
        "--no-fail-on-new", action="store_true", help="report newly failing cells without failing on them"
    )
    args = parser.parse_args(argv)
    parts = []
    for folder in args.in_dirs:
        path = folder / "results.json" if folder.is_dir() else folder
        try:
            parts.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as error:
            print(f"error: {path}: {error}", file=sys.stderr)
            return 2
    try:
        results = merge_results(parts)
        finalize(results, args.baseline, args.history, args.history_window, not args.no_fail_on_new)
    except (MergeError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
    write_junit(results, args.out_dir / "junit.xml")
    render_all(args.out_dir)
    for line in terminal_lines(results, 40):
        print(line)
    print(f"reports: {args.out_dir}/report.html, summary.md, results.json, junit.xml")
    return 1 if results["exit_status"] else 0


if __name__ == "__main__":
    sys.exit(main())
