"""Render a report directory: results.json (and mutation.json when the mutant meta-test wrote one) become
report.html (one self-contained file: inline CSS, no script, no network) and summary.md (a CI step summary).

A pure function of the JSON files, so either run (matrix or mutants) can re-render:
    python3 -m harness.reports.render reports

Grids count cells (harness/reports/cells.py): a repeated test is one cell, flaky when some of its N repeats
failed (shown as k/N, in its own colour); condition cells get one clients x servers grid per condition.
With a baseline diff, a history view or transcripts in results.json (harness/reports/gate.py), those are shown
too; summary.md then leads with the unexpected changes, ready to paste as a PR comment.
"""

from __future__ import annotations

import html
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

from ..spec import cited_by_tests, spec_clauses
from .cells import describe, group_cells

FAILING = ("failed", "error")
STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1b1f24;max-width:1400px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d0d7de}
h3{font-size:15px;margin:16px 0 6px} code,pre{font:12px/1.35 ui-monospace,monospace}
pre{background:#f6f8fa;padding:8px;overflow-x:auto;white-space:pre-wrap;word-break:break-all;margin:4px 0}
table{border-collapse:collapse;margin:6px 0} th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:center}
th{background:#f6f8fa} th.row{text-align:right}
td.pass{background:#2da44e;color:#fff} td.fail{background:#cf222e;color:#fff;font-weight:bold}
td.known{background:#bf8700;color:#fff} td.skip{background:#afb8c1} td.none{background:#fff;color:#8c959f}
td.flaky{background:#8250df;color:#fff;font-weight:bold} .s-flaky{background:#fbefff}
.strip{white-space:nowrap;text-align:left;line-height:10px;margin-top:3px} td .strip i{border:1px solid #fff}
.strip i{display:inline-block;width:10px;height:10px;margin-right:2px;
border-radius:2px} i.q-p{background:#2da44e} i.q-f{background:#cf222e} i.q-x{background:#8250df}
i.q-k{background:#bf8700} i.q-s{background:#afb8c1} i.q-n{background:#fff;border:1px solid #d0d7de;width:8px;height:8px}
.diff td,.diff th,.timeline td,.timeline th{text-align:left;vertical-align:top}
tr.newly-failing td:first-child,tr.newly-flaky td:first-child{background:#ffebe9}
tr.newly-passing td:first-child{background:#dafbe1} .timeline tr.to-client td{background:#f6f8fa}
.timeline td.fin,.timeline td.rst{font-weight:bold} .timeline td.rst{color:#cf222e}
td a{color:inherit}
.grids{display:flex;flex-wrap:wrap;gap:18px} .grids>div{flex:0 0 auto}
.summary span{display:inline-block;margin-right:14px;padding:2px 8px;border-radius:4px}
.s-pass{background:#dafbe1} .s-fail{background:#ffebe9} .s-skip{background:#eaeef2} .s-known{background:#fff8c5}
.failure{border:1px solid #ff8182;border-radius:6px;padding:8px 12px;margin:12px 0}
.bytes td,.bytes th{text-align:left;vertical-align:top} mark{background:#ff8182}
.muted{color:#57606a} .legend td{min-width:70px}
"""


def count(records: list[dict]) -> Counter:
    return Counter(record["outcome"] for record in records)


class Box(Counter):
    """A grid box: the outcome counts of its cells, and the cells themselves (for k/N of flaky ones)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.cells: list[dict] = []

    def add(self, cell: dict) -> None:
        self[cell["outcome"]] += 1
        self.cells.append(cell)


def cells_of(results: dict) -> list[dict]:
    return results.get("cells") or group_cells(results.get("tests", []))


def cell_class(counts: Counter) -> str:
    if counts["failed"] or counts["error"]:
        return "fail"
    if counts["flaky"]:
        return "flaky"
    if counts["known-failure"]:
        return "known"
    if counts["passed"]:
        return "pass" if not counts["skipped"] else "skip"
    return "skip" if counts["skipped"] else "none"


def cell_text(counts: Counter) -> str:
    cells = getattr(counts, "cells", [])
    if len(cells) == 1:  # one cell: a repeated one as k/N failed repeats, else its outcome
        cell = cells[0]
        if cell.get("runs", 1) > 1:
            return f"{cell['failures']}/{cell['runs']}" + (" k" if cell["outcome"] == "known-failure" else "")
        return {"passed": "pass", "failed": "FAIL", "error": "ERROR", "known-failure": "known"}.get(
            cell["outcome"], cell["outcome"]
        )
    if not sum(counts.values()):
        return "-"
    text = f"{counts['passed']}/{counts['failed'] + counts['error']}/{counts['skipped']}"
    text += f" +{counts['known-failure']}k" if counts["known-failure"] else ""
    flaky = [f"{c['failures']}/{c['runs']}" for c in cells if c["outcome"] == "flaky"]
    if flaky:
        text += " ~" + ",".join(flaky[:3]) + (f",+{len(flaky) - 3}" if len(flaky) > 3 else "")
    elif counts["flaky"]:
        text += f" ~{counts['flaky']}"
    return text


def names(records: list[dict], role: str) -> list[str]:
    return sorted({record[role] for record in records if record.get(role)})


def pair_grid(cells: list[dict], condition: str | None = None) -> tuple[list[str], list[str], dict[tuple, Box]]:
    """Clients x servers over every cell that has both roles (and this condition, or none)."""
    pairs = [c for c in cells if c.get("client") and c.get("server") and c.get("condition") == condition]
    grid: dict[tuple[str, str], Box] = defaultdict(Box)
    for cell in pairs:
        grid[(cell["client"], cell["server"])].add(cell)
    return names(pairs, "client"), names(pairs, "server"), grid


def conditions(cells: list[dict]) -> list[str]:
    return sorted({cell["condition"] for cell in cells if cell.get("condition")})


def role_table(cells: list[dict]) -> dict[str, dict[str, Box]]:
    """Per implementation: its cells as a server alone, as a client alone, and without a peer."""
    table: dict[str, dict[str, Box]] = defaultdict(lambda: defaultdict(Box))
    for cell in cells:
        client, server, alone = cell.get("client"), cell.get("server"), cell.get("implementation")
        if server and not client:
            table[server]["server"].add(cell)
        elif client and not server:
            table[client]["client"].add(cell)
        elif alone:
            table[alone]["alone"].add(cell)
    return table


def failing(results: dict) -> list[dict]:
    """The first failing item of every failing or flaky cell (every failing test when nothing repeats)."""
    records = {record["nodeid"]: record for record in results["tests"]}
    out = []
    for cell in cells_of(results):
        if cell["outcome"] not in (*FAILING, "flaky"):
            continue
        items = [records[n] for n in cell.get("items", [cell["cell"]]) if n in records]
        record = next((r for r in items if r["outcome"] in FAILING), items[0] if items else None)
        if record is not None:
            out.append({**record, "cell_outcome": describe(cell), "flaky": cell["outcome"] == "flaky"})
    return out


def label(record: dict) -> str:
    return f"{record.get('test', '')}[{record['id']}]" if record.get("id") else record["nodeid"].split("::")[-1]


def clause_coverage(records: list[dict]) -> dict:
    """Every spec clause, whether a test cites it (harness.spec), and its tests in this run."""
    spec, cited = spec_clauses(), cited_by_tests()
    in_run: dict[str, Counter] = defaultdict(Counter)
    for record in records:
        for clause in record.get("clauses", ()):
            in_run[clause][record["outcome"]] += 1
    return {
        "spec": spec,
        "uncovered": [c for c in spec if c not in cited],
        "in_run": {clause: dict(in_run[clause]) for clause in spec if clause in in_run},
    }


# ---------------------------------------------------------------- terminal


def text_table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]


def terminal_lines(results: dict, cap: int) -> list[str]:
    records = results["tests"]
    all_cells = cells_of(results)
    lines: list[str] = []
    counts = count(records)
    lines.append(
        "totals: "
        + ", ".join(f"{counts[k]} {k}" for k in ("passed", "failed", "error", "skipped", "known-failure") if counts[k])
    )
    flaky = [cell for cell in all_cells if cell["outcome"] == "flaky"]
    if len(all_cells) != len(records) or flaky:
        lines.append(f"cells: {len(all_cells)}, of which flaky: {len(flaky)}")
    lines += diff_lines(results.get("diff"), cap)
    clients, servers, cells = pair_grid(all_cells)
    if clients:
        lines.append("clients x servers (passed/failed/skipped; +Nk = known failures), all pair tests:")
        lines += [
            "  " + line
            for line in text_table(
                ["client \\ server", *[f"{s}-server" for s in servers]],
                [[f"{c}-client", *[cell_text(cells[(c, s)]) for s in servers]] for c in clients],
            )
        ]
    for condition in conditions(all_cells):
        c, s, g = pair_grid(all_cells, condition)
        lines.append(f"condition {condition}: clients x servers (k/N = failed repeats; ~ = flaky):")
        lines += [
            "  " + line
            for line in text_table(
                ["client \\ server", *[f"{x}-server" for x in s]],
                [[f"{y}-client", *[cell_text(g[(y, x)]) for x in s]] for y in c],
            )
        ]
    roles = role_table(all_cells)
    if roles:
        lines.append("single roles (passed/failed/skipped): server alone, client vs fake servers, no peer:")
        lines += [
            "  " + line
            for line in text_table(
                ["implementation", "as server", "as client", "alone"],
                [[name, *[cell_text(roles[name][k]) for k in ("server", "client", "alone")]] for name in sorted(roles)],
            )
        ]
    bad = failing(results)
    if bad:
        lines.append(f"failing cells ({len(bad)}), each with its repro:")
        for record in bad[:cap]:
            lines.append(f"  {record['cell_outcome'].upper()} {label(record)}")
            lines.append(f"      {record['repro']}")
        if len(bad) > cap:
            lines.append(f"  ... and {len(bad) - cap} more (all in --report-dir's report.html / results.json)")
    known = [r for r in records if r["outcome"] == "known-failure"]
    for record in known:
        lines.append(f"  known failure {label(record)}: {record.get('known_failure', '')}")
    for problem in results["ledger"]["problems"]:
        lines.append(f"known-failures ledger: {problem}")
    history = results.get("history")
    if history:
        proposals = history["proposals"]
        lines.append(
            f"history: last {history['window']} runs; {len(history['strips'])} cells did not pass in all of them; "
            f"ledger proposals: {len(proposals['add'])} to add, {len(proposals['remove'])} to remove (report.html)"
        )
    uncovered = results["clauses"].get("uncovered", [])
    lines.append(f"spec clauses with no test: {', '.join(uncovered) if uncovered else 'none'}")
    return lines


def diff_lines(diff: dict | None, cap: int) -> list[str]:
    if not diff:
        return []
    base = diff["baseline"]
    counts = diff["counts"]
    lines = [
        f"against baseline {base.get('path')} ({base.get('created')}): "
        + ", ".join(f"{counts[k]} {k}" for k in counts if counts[k])
    ]
    shown = [entry for entry in diff["cells"] if entry.get("blame")]
    for entry in shown[:cap]:
        listed = " (listed in the ledger)" if entry.get("listed") else ""
        lines.append(f"  {entry['kind'].upper()}{listed}: {entry['cell']}  [{entry['before']} -> {entry['after']}]")
        lines.append(f"      changed: {'; '.join(entry['blame'])}")
    if len(shown) > cap:
        lines.append(f"  ... and {len(shown) - cap} more flipped cells (report.html)")
    return lines


# ---------------------------------------------------------------- HTML


def e(text) -> str:
    return html.escape(str(text), quote=True)


def html_grid(
    title: str,
    rows: list[str],
    columns: list[str],
    cells: dict,
    row_suffix: str,
    column_suffix: str,
    anchors: dict[tuple[str, str], str] | None = None,
    history: dict | None = None,
) -> str:
    out = [f"<table class=grid><caption>{e(title)}</caption><tr><th>client \\ server</th>"]
    out += [f"<th>{e(column + column_suffix)}</th>" for column in columns]
    out.append("</tr>")
    for row in rows:
        out.append(f"<tr><th class=row>{e(row + row_suffix)}</th>")
        for column in columns:
            counts = cells.get((row, column), Box())
            text = e(cell_text(counts))
            anchor = (anchors or {}).get((row, column))
            if anchor:
                text = f"<a href='#{anchor}'>{text}</a>"
            tip = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
            if history and counts.cells:
                text += f"<div class=strip>{strip_html(box_strip(counts.cells, history), history['runs'])}</div>"
            out.append(f"<td class={cell_class(counts)} title='{e(tip)}'>{text}</td>")
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def hex_cells(part: dict, offset: int | None, start: int = 0) -> str:
    pieces = []
    for index, byte in enumerate(part["hex"].split(" ") if part["hex"] else []):
        pieces.append(f"<mark>{byte}</mark>" if offset is not None and start + index == offset else byte)
    return " ".join(pieces)


def bytes_block(name: str, value: dict | None, offset: int | None) -> str:
    if not value:
        return ""
    head = value["head"]
    shown = len(head["hex"].split(" ")) if head["hex"] else 0
    more = f" (first {shown} shown)" if shown < value["length"] else ""
    out = [
        f"<tr><th>{e(name)}<br><span class=muted>{value['length']} bytes{more}</span></th>",
        f"<td><pre>{hex_cells(head, offset)}</pre><pre>{e(head['text'])}</pre>",
    ]
    window = value.get("window")
    if window:
        out.append(
            f"<div class=muted>around offset {offset} (from {window['start']}):</div>"
            f"<pre>{hex_cells(window, offset, window['start'])}</pre><pre>{e(window['text'])}</pre>"
        )
    out.append("</td></tr>")
    return "".join(out)


def failure_html(number: int, record: dict) -> str:
    evidence = record.get("evidence") or {}
    offset = evidence.get("first_difference")
    title = record.get("cell_outcome", record["outcome"]).upper()
    out = [
        f"<div class=failure id='f{number}'><h3>{e(title)} {e(record['nodeid'])}</h3>",
        f"<div>repro: <code>{e(record['repro'])}</code></div>",
    ]
    if record.get("flaky"):
        out.append(f"<div><b>flaky: {e(record['cell_outcome'])} repeats failed</b>; the first failure:</div>")
    if record.get("clauses"):
        out.append(f"<div class=muted>clauses: {e(', '.join(record['clauses']))}</div>")
    out.append(f"<pre>{e(record.get('message', ''))}</pre>")
    if offset is not None:
        out.append(f"<div><b>first differing offset: {offset}</b></div>")
    rows = "".join(
        bytes_block(name, evidence.get(name), None if name == "input" else offset)
        for name in ("input", "expected", "actual")
    )
    run = evidence.get("run")
    if run:
        rows += (
            f"<tr><th>client run<br><span class=muted>exit {e(run['exit'])}</span></th><td>"
            f"<pre>{e(' '.join(run['argv']))}</pre><div class=muted>client stderr "
            f"({run['stderr']['length']} bytes, tail):</div><pre>{e(run['stderr']['text']) or '(empty)'}</pre>"
            f"</td></tr>"
        )
    server = evidence.get("server_stderr")
    if server:
        rows += (
            f"<tr><th>server stderr<br><span class=muted>{server['length']} bytes, tail</span></th>"
            f"<td><pre>{e(server['text']) or '(empty)'}</pre></td></tr>"
        )
    if rows:
        out.append(f"<table class=bytes>{rows}</table>")
    if evidence.get("error"):
        out.append(f"<div class=muted>{e(evidence['error'])}</div>")
    if record.get("transcript"):
        out.append(transcript_html(record["transcript"], record.get("condition")))
    out.append("</div>")
    return "".join(out)


ARROWS = {"to-server": "&rarr; server", "to-client": "&larr; client"}


TRANSCRIPT_EVENTS = 400  # events shown of one transcript: the first 300 and the last 100
TRANSCRIPT_HEX = 512  # hex digits shown of one data event (256 bytes)


def display_events(events: list) -> list[dict]:
    """What a page shows of a transcript (results.json keeps it whole, for harness/replay.py): at most
    TRANSCRIPT_EVENTS events, each data event's hex capped."""
    events = [event for event in events if isinstance(event, dict)]
    if len(events) > TRANSCRIPT_EVENTS:
        head, tail = TRANSCRIPT_EVENTS * 3 // 4, TRANSCRIPT_EVENTS // 4
        events = [*events[:head], {"kind": "omitted", "count": len(events) - head - tail}, *events[-tail:]]
    shown = []
    for event in events:
        event = dict(event)
        text = str(event.get("hex", ""))
        if len(text) > TRANSCRIPT_HEX:
            event.update(bytes=len(text) // 2, hex=text[:TRANSCRIPT_HEX], truncated=True)
        shown.append(event)
    return shown


def transcript_html(transcript: dict, condition: str | None = None) -> str:
    """A proxy transcript as a timeline: time, leg, direction, what, who, and the bytes in hex."""
    events = transcript.get("events", [])
    kept = display_events(events)
    out = [
        f"<h4>Transcript{' (' + e(condition) + ')' if condition else ''}: {len(events)} "
        "events</h4><table class=timeline><tr><th>t (ms)</th><th>leg</th><th>direction</th><th>what</th>"
        "<th>by</th><th>bytes</th></tr>"
    ]
    for event in kept:
        if event.get("kind") == "omitted":
            out.append(f"<tr><td colspan=6 class=muted>... {event.get('count')} events omitted ...</td></tr>")
            continue
        hex_text = str(event.get("hex", ""))
        size = event.get("bytes", len(hex_text.replace(" ", "")) // 2)
        more = " (truncated)" if event.get("truncated") else ""
        data = f"<span class=muted>{size} bytes{more}</span><pre>{e(hex_text)}</pre>" if hex_text else ""
        try:
            millis = f"{float(event.get('t', 0)) * 1000:.1f}"
        except (TypeError, ValueError):
            millis = e(event.get("t"))
        kind = str(event.get("kind", ""))
        out.append(
            f"<tr class='{e(event.get('dir', ''))}'><td>{millis}</td><td>{e(event.get('leg', ''))}</td>"
            f"<td>{ARROWS.get(event.get('dir'), e(event.get('dir', '')))}</td><td class='{e(kind)}'>{e(kind)}</td>"
            f"<td>{e(event.get('by', ''))}</td><td>{data}</td></tr>"
        )
    out.append("</table>")
    return "".join(out)


def diff_html(diff: dict) -> str:
    base, counts = diff["baseline"], diff["counts"]
    out = [
        "<h2 id=diff>Against the baseline</h2>",
        f"<p class=muted>Baseline {e(base.get('path'))}, run {e(base.get('created'))}"
        f"{', commit ' + e(str(base.get('commit'))[:12]) if base.get('commit') else ''}: "
        + ", ".join(f"{counts[k]} {e(k)}" for k in counts if counts[k])
        + "</p>",
    ]
    if diff["unexpected"]:
        out.append(f"<p><b>{len(diff['unexpected'])} unexpected change(s): these fail the gate.</b></p>")
    shown = [entry for entry in diff["cells"] if entry["kind"] != "removed"]
    if shown:
        out.append(
            "<table class=diff><tr><th>change</th><th>cell</th><th>before</th><th>now</th><th>what changed</th></tr>"
        )
        for entry in shown[:500]:
            blame = "<br>".join(e(reason) for reason in entry.get("blame", []))
            listed = " <span class=muted>(ledger)</span>" if entry.get("listed") else ""
            out.append(
                f"<tr class='{e(entry['kind'].replace(' ', '-'))}'><td>{e(entry['kind'])}{listed}</td>"
                f"<td><code>{e(entry['cell'])}</code></td><td>{e(entry['before'] or '-')}</td>"
                f"<td>{e(entry['after'] or '-')}</td><td>{blame}</td></tr>"
            )
        out.append("</table>")
    removed = [entry["cell"] for entry in diff["cells"] if entry["kind"] == "removed"]
    if removed:
        out.append(
            f"<p class=muted>{len(removed)} cell(s) of the baseline are not in this run"
            + (": " + ", ".join(f"<code>{e(c)}</code>" for c in removed[:20]) if len(removed) <= 20 else "")
            + ".</p>"
        )
    return "".join(out)


WORST = "fx~kps."  # a box's square per run: its worst cell's code in that run


def box_strip(cells: list[dict], history: dict) -> list[str]:
    """One code per run of the history window for a grid box: its worst cell's (cells not in `strips` passed
    in every run they were in; '.': no cell of the box ran)."""
    strips = history["strips"]
    codes = []
    for index in range(history["window"]):
        present = [strips[c["cell"]][index] for c in cells if c["cell"] in strips]
        if len(present) < len(cells):
            present.append("p")
        codes.append(min(present, key=lambda code: WORST.index(code[:1]) if code[:1] in WORST else 0))
    return codes


STRIP_CLASS = {"p": "q-p", "f": "q-f", "~": "q-x", "k": "q-k", "s": "q-s", ".": "q-n"}
STRIP_WORD = {"p": "passed", "f": "failed", "~": "flaky", "k": "known failure", "s": "skipped", ".": "not run"}


def strip_html(codes: list[str], runs: list[dict]) -> str:
    squares = []
    for code, run in zip(codes, runs, strict=False):
        word = STRIP_WORD.get(code[:1], code) + (f" {code[1:]}" if len(code) > 1 else "")
        squares.append(f"<i class={STRIP_CLASS.get(code[:1], 'q-n')} title='{e(run.get('created'))}: {e(word)}'></i>")
    return "".join(squares)


def history_html(history: dict) -> str:
    runs = history["runs"]
    out = [
        f"<h2 id=history>Pass rate over the last {history['window']} runs</h2>",
        f"<p class=muted>One square per run, oldest first: <i class=q-p></i> passed <i class=q-f></i> failed "
        f"<i class=q-x></i> flaky <i class=q-k></i> known failure <i class=q-s></i> skipped <i class=q-n></i> "
        f"not run. {history['stable']} cell(s) of this run passed in every run they were in; the others:</p>",
    ]
    if history["strips"]:
        out.append("<table class=diff><tr><th>cell</th><th>pass rate</th><th>runs</th></tr>")
        for cell, codes in list(history["strips"].items())[:500]:
            rate = history["rates"].get(cell)
            out.append(
                f"<tr><td><code>{e(cell)}</code></td><td>{'-' if rate is None else f'{rate:.0%}'}</td>"
                f"<td class=strip>{strip_html(codes, runs)}</td></tr>"
            )
        out.append("</table>")
    out.append(proposals_html(history["proposals"]))
    return "".join(out)


def proposals_html(proposals: dict) -> str:
    out = ["<h3>Proposed known-failures ledger changes</h3>"]
    if not proposals["add"] and not proposals["remove"]:
        return out[0] + "<p>None.</p>"
    out.append("<p class=muted>Nothing edits tests/matrix/known_failures.toml by itself: copy what you agree with.</p>")
    if proposals["add"]:
        out.append("<p>Failing in every recent run, so candidates (fill in the reason and link):</p><pre>")
        out.append(e("\n".join(proposal_toml(entry) for entry in proposals["add"])) + "</pre>")
    if proposals["remove"]:
        out.append("<p>Listed, and every cell it matches passed in this run: remove</p><ul>")
        out += [f"<li><code>{e(entry['test'])}</code> ({e(entry['reason'])})</li>" for entry in proposals["remove"]]
        out.append("</ul>")
    return "".join(out)


def proposal_toml(entry: dict) -> str:
    return (
        f'[[failure]]\ntest    = "{entry["test"]}"\nreason  = "{entry["reason"]}"\n'
        f'link    = "{entry["link"]}"\nexpires = {entry["expires"]}\n'
    )


def mutation_html(mutation: dict) -> str:
    out = [
        f"<h2 id=mutants>Suite power: mutation score {mutation['caught']}/{mutation['total']}</h2>",
        f"<p class=muted>Deliberately broken implementations (tests/mutants/), run {e(mutation.get('created', ''))};"
        " a mutant is caught when at least one matrix test fails against it.</p>",
        "<table class=bytes><tr><th>mutant</th><th>role</th><th>breaks</th><th>caught by</th></tr>",
    ]
    for mutant in mutation["mutants"]:
        status = "pass" if mutant["caught"] else "fail"
        catchers = "<br>".join(e(name) for name in mutant["caught_by"][:8])
        if len(mutant["caught_by"]) > 8:
            catchers += f"<br><span class=muted>... {len(mutant['caught_by']) - 8} more</span>"
        out.append(
            f"<tr><td class={status}>{e(mutant['name'])}</td><td>{e(mutant['role'])}</td>"
            f"<td>{e(mutant['breaks'])}</td><td>{catchers or '<b>SURVIVED</b>'}</td></tr>"
        )
    out.append("</table>")
    return "".join(out)


def render_html(results: dict, mutation: dict | None = None) -> str:
    records = results["tests"]
    all_cells = cells_of(results)
    counts = count(records)
    flaky = sum(cell["outcome"] == "flaky" for cell in all_cells)
    bad = failing(results)
    numbers = {record["nodeid"]: n for n, record in enumerate(bad, 1)}
    clients, servers, cells = pair_grid(all_cells)
    anchors = {}
    for record in bad:
        if record.get("client") and record.get("server") and not record.get("condition"):
            anchors.setdefault((record["client"], record["server"]), f"f{numbers[record['nodeid']]}")
    out = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        "<meta name=viewport content='width=device-width, initial-scale=1'>",
        f"<title>upper-echo matrix report</title><style>{STYLE}</style></head><body>",
        "<h1>upper-echo interop matrix</h1>",
        f"<div class=muted>{e(results['created'])} &middot; backend {e(results['backend'])} &middot; "
        f"{results['duration']} s &middot; exit status {results['exit_status']} &middot; "
        f"<code>{e(results['command'])}</code></div>",
        "<p class=summary>",
        f"<span class=s-pass>{counts['passed']} passed</span>",
        f"<span class=s-fail>{counts['failed'] + counts['error']} failed</span>",
        f"<span class=s-skip>{counts['skipped']} skipped</span>",
        f"<span class=s-known>{counts['known-failure']} known failures</span>",
        f"<span class=s-flaky>{flaky} flaky cells</span>" if flaky else "",
    ]
    if results.get("shards"):
        out.insert(5, f"<div class=muted>merged from shards {e(', '.join(map(str, results['shards'])))}</div>")
    if mutation:
        out.append(
            f"<span class=s-{'pass' if mutation['caught'] == mutation['total'] else 'fail'}>"
            f"mutation score {mutation['caught']}/{mutation['total']}</span>"
        )
    out.append("</p>")
    out.append(
        "<table class=legend><tr><td class=pass>all passed</td><td class=fail>a failure</td>"
        "<td class=flaky>flaky (k/N)</td><td class=known>known failures only</td><td class=skip>skipped</td>"
        "<td class=none>no test</td></tr></table><p class=muted>Cells: passed/failed/skipped (+Nk known failures; "
        "~k/N: a repeated test that failed k of its N repeats); a red cell links to its first failure.</p>"
    )
    if results.get("diff"):
        out.append(diff_html(results["diff"]))
    out.append("<h2>Clients x servers</h2>")
    if clients:
        out.append(
            html_grid(
                "every test with a client and a server (vectors through every pair, messages mode)",
                clients,
                servers,
                cells,
                "-client",
                "-server",
                anchors,
                results.get("history"),
            )
        )
    for condition in conditions(all_cells):
        if condition == conditions(all_cells)[0]:
            out.append(
                "<h2 id=conditions>Network conditions</h2><p class=muted>One clients x servers grid per condition "
                "(through the harness's proxy); k/N: failed repeats of N.</p><div class=grids>"
            )
        c, s, g = pair_grid(all_cells, condition)
        condition_anchors = {
            (r["client"], r["server"]): f"f{numbers[r['nodeid']]}"
            for r in reversed(bad)
            if r.get("condition") == condition and r.get("client") and r.get("server")
        }
        grid = html_grid(condition, c, s, g, "-client", "-server", condition_anchors, results.get("history"))
        out.append(f"<div>{grid}</div>")
    if conditions(all_cells):
        out.append("</div>")
    roles = role_table(all_cells)
    if roles:
        out.append(
            "<h3>Single roles</h3><table><tr><th>implementation</th><th>as server (raw sockets)</th>"
            "<th>as client (fake servers)</th><th>alone (transducer, CLI, contract)</th></tr>"
        )
        for name in sorted(roles):
            out.append(
                f"<tr><th class=row>{e(name)}</th>"
                + "".join(
                    f"<td class={cell_class(roles[name][k])}>{e(cell_text(roles[name][k]))}</td>"
                    for k in ("server", "client", "alone")
                )
                + "</tr>"
            )
        out.append("</table>")
    categories = sorted({r["category"] for r in all_cells if r.get("category")})
    if categories:
        out.append(
            "<h2>Per vector category</h2><p class=muted>Vectors through every client x server pair "
            "(test_client_server_pair), one grid per spec/vectors/*.json file.</p><div class=grids>"
        )
        for category in categories:
            subset = [
                r for r in all_cells if r.get("category") == category and r.get("test") == "test_client_server_pair"
            ]
            if subset:
                c, s, g = pair_grid(subset)
                out.append(f"<div>{html_grid(category, c, s, g, '', '')}</div>")
        out.append("</div>")
        alone = [r for r in all_cells if r.get("category") and not (r.get("client") and r.get("server"))]
        if alone:
            rows = sorted({r.get("server") or r.get("implementation") for r in alone})
            tests = sorted({r["test"] for r in alone})
            grid = defaultdict(Box)
            for r in alone:
                grid[(r.get("server") or r.get("implementation"), r["test"])].add(r)
            out.append(
                html_grid(
                    "vectors without a client: server alone, Turkish locale, transducer", rows, tests, grid, "", ""
                ).replace("client \\ server", "implementation \\ test")
            )
    out.append(f"<h2 id=failures>Failures ({len(bad)})</h2>")
    out += [failure_html(numbers[record["nodeid"]], record) for record in bad] or ["<p>None.</p>"]
    known = [r for r in records if r["outcome"] == "known-failure"]
    ledger = results["ledger"]
    out.append(f"<h2>Known failures ledger ({len(ledger['entries'])} entries, {len(known)} matched)</h2>")
    if ledger["problems"]:
        out.append("<ul>" + "".join(f"<li class=fail><b>{e(p)}</b></li>" for p in ledger["problems"]) + "</ul>")
    out += [f"<p>{e(r['nodeid'])}: {e(r.get('known_failure', ''))}</p>" for r in known]
    if not ledger["entries"]:
        out.append("<p>Empty (tests/matrix/known_failures.toml).</p>")
    if results.get("history"):
        out.append(history_html(results["history"]))
    out.append(clauses_html(results["clauses"]))
    if mutation:
        out.append(mutation_html(mutation))
    skipped = Counter(
        r.get("message", "").strip().splitlines()[0] if r.get("message") else ""
        for r in records
        if r["outcome"] == "skipped"
    )
    if skipped:
        out.append(
            "<h2>Skipped</h2><ul>" + "".join(f"<li>{n} x {e(reason)}</li>" for reason, n in skipped.items()) + "</ul>"
        )
    out.append("</body></html>\n")
    return "\n".join(out)


def clauses_html(clauses: dict) -> str:
    uncovered = clauses.get("uncovered", [])
    out = [
        f"<h2>Spec clauses ({len(clauses.get('spec', []))})</h2>",
        f"<p><b>Clauses no test cites:</b> {e(', '.join(uncovered)) if uncovered else 'none'}</p>",
        "<table><tr><th>clause</th><th>tests in this run (passed/failed/skipped)</th></tr>",
    ]
    for clause in clauses.get("spec", []):
        counts = Counter(clauses["in_run"].get(clause, {}))
        out.append(f"<tr><th class=row>{e(clause)}</th><td class={cell_class(counts)}>{e(cell_text(counts))}</td></tr>")
    out.append("</table>")
    return "".join(out)


# ---------------------------------------------------------------- Markdown


MARKS = {"pass": "✅", "fail": "❌", "flaky": "🟪", "known": "⚠️", "skip": "⏭️", "none": ""}


def markdown_grid(clients: list[str], servers: list[str], cells: dict) -> list[str]:
    lines = [
        "| client \\ server | " + " | ".join(f"{s}-server" for s in servers) + " |",
        "|---|" + "---|" * len(servers),
    ]
    for client in clients:
        boxes = [cells.get((client, s), Box()) for s in servers]
        lines.append(
            f"| {client}-client | " + " | ".join(f"{MARKS[cell_class(b)]} {cell_text(b)}" for b in boxes) + " |"
        )
    return lines


def diff_markdown(diff: dict, cap: int) -> list[str]:
    """The unexpected changes only, first: what a PR comment needs."""
    base = diff["baseline"]
    unexpected = [e for e in diff["cells"] if e["kind"] in ("newly failing", "newly flaky") and not e.get("listed")]
    where = f"baseline run {base.get('created')}" + (
        f", commit `{str(base['commit'])[:12]}`" if base.get("commit") else ""
    )
    if not unexpected:
        return [f"### ✅ No unexpected changes against the {where}", ""]
    lines = [f"### ❌ {len(unexpected)} unexpected change(s) against the {where}", ""]
    for entry in unexpected[:cap]:
        lines.append(f"- **{entry['kind']}** `{entry['cell']}` ({entry['before']} → {entry['after']})")
        lines.append(f"  - changed: {'; '.join(entry.get('blame', []))}")
        if entry.get("repro"):
            lines.append(f"  - repro: `{entry['repro']}`")
    if len(unexpected) > cap:
        lines.append(f"- ... and {len(unexpected) - cap} more in report.html")
    return [*lines, ""]


def render_markdown(results: dict, mutation: dict | None = None, cap: int = 50) -> str:
    records = results["tests"]
    all_cells = cells_of(results)
    counts = count(records)
    flaky = sum(cell["outcome"] == "flaky" for cell in all_cells)
    icon = "✅" if results["exit_status"] == 0 else "❌"
    lines = diff_markdown(results["diff"], cap) if results.get("diff") else []
    lines += [
        f"## {icon} upper-echo matrix: {counts['passed']} passed, {counts['failed'] + counts['error']} failed, "
        f"{counts['skipped']} skipped, {counts['known-failure']} known failures"
        + (f", {flaky} flaky cells" if flaky else ""),
        "",
        f"Backend `{results['backend']}`, {results['duration']} s, exit status {results['exit_status']}.",
        "",
    ]
    if results.get("diff"):
        other = [e for e in results["diff"]["cells"] if e["kind"] == "newly passing" or e.get("listed")]
        counts_text = ", ".join(f"{n} {k}" for k, n in results["diff"]["counts"].items() if n)
        lines += [f"Against the baseline: {counts_text}.", ""]
        lines += [f"- {e['kind']} `{e['cell']}`: {'; '.join(e.get('blame', []))}" for e in other[:cap]]
        lines += [""] if other else []
    clients, servers, cells = pair_grid(all_cells)
    if clients:
        lines += markdown_grid(clients, servers, cells)
        lines += ["", "Cells: passed/failed/skipped (~k/N: flaky, k of N repeats failed)."]
    for condition in conditions(all_cells):
        c, s, g = pair_grid(all_cells, condition)
        lines += ["", f"Condition `{condition}` (k/N: failed repeats):", "", *markdown_grid(c, s, g)]
    bad = failing(results)
    if bad:
        lines += ["", f"### Failing ({len(bad)})", ""]
        lines += [
            f"- `{label(r)}`{' (' + r['cell_outcome'] + ')' if r.get('flaky') else ''}: `{r['repro']}`"
            for r in bad[:cap]
        ]
        if len(bad) > cap:
            lines.append(f"- ... and {len(bad) - cap} more in report.html")
    if results["ledger"]["problems"]:
        lines += ["", "### Known-failures ledger problems", ""] + [f"- {p}" for p in results["ledger"]["problems"]]
    history = results.get("history")
    if history and (history["proposals"]["add"] or history["proposals"]["remove"]):
        lines += ["", f"### Proposed ledger changes (from the last {history['window']} runs; apply by hand)", ""]
        if history["proposals"]["add"]:
            lines += ["```toml", *"\n".join(proposal_toml(p) for p in history["proposals"]["add"]).splitlines(), "```"]
        lines += [f"- remove `{p['test']}` (every cell it matches passed)" for p in history["proposals"]["remove"]]
    uncovered = results["clauses"].get("uncovered", [])
    lines += ["", f"Spec clauses with no test: {', '.join(uncovered) if uncovered else 'none'}."]
    if mutation:
        survivors = [m["name"] for m in mutation["mutants"] if not m["caught"]]
        lines += [
            "",
            f"Mutation score: **{mutation['caught']}/{mutation['total']}**"
            + (f" (survivors: {', '.join(survivors)})" if survivors else " (every mutant caught)")
            + ".",
        ]
    return "\n".join(lines) + "\n"


def render_all(report_dir: Path) -> None:
    results_path, mutation_path = report_dir / "results.json", report_dir / "mutation.json"
    results = json.loads(results_path.read_text(encoding="utf-8")) if results_path.exists() else None
    mutation = json.loads(mutation_path.read_text(encoding="utf-8")) if mutation_path.exists() else None
    if results is None:
        results = {
            "tests": [],
            "created": (mutation or {}).get("created", ""),
            "backend": "-",
            "duration": 0,
            "exit_status": 0,
            "command": "",
            "ledger": {"entries": [], "problems": []},
            "clauses": clause_coverage([]),
        }
    (report_dir / "report.html").write_text(render_html(results, mutation), encoding="utf-8")
    (report_dir / "summary.md").write_text(render_markdown(results, mutation), encoding="utf-8")


if __name__ == "__main__":
    render_all(Path(sys.argv[1] if len(sys.argv) > 1 else "reports"))
