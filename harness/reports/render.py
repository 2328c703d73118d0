"""Render a report directory: results.json (and mutation.json when the mutant meta-test wrote one) become
report.html (one self-contained file: inline CSS, no script, no network) and summary.md (a CI step summary).

A pure function of the JSON files, so either run (matrix or mutants) can re-render:
    python3 -m harness.reports.render reports
"""

from __future__ import annotations

import html
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

from ..spec import cited_by_tests, spec_clauses

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


def cell_class(counts: Counter) -> str:
    if counts["failed"] or counts["error"]:
        return "fail"
    if counts["known-failure"]:
        return "known"
    if counts["passed"]:
        return "pass" if not counts["skipped"] else "skip"
    return "skip" if counts["skipped"] else "none"


def cell_text(counts: Counter) -> str:
    if not sum(counts.values()):
        return "-"
    text = f"{counts['passed']}/{counts['failed'] + counts['error']}/{counts['skipped']}"
    return text + (f" +{counts['known-failure']}k" if counts["known-failure"] else "")


def names(records: list[dict], role: str) -> list[str]:
    return sorted({record[role] for record in records if record.get(role)})


def pair_grid(records: list[dict]) -> tuple[list[str], list[str], dict[tuple[str, str], Counter]]:
    """Clients x servers over every test that has both roles."""
    pairs = [r for r in records if r.get("client") and r.get("server")]
    cells: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for record in pairs:
        cells[(record["client"], record["server"])][record["outcome"]] += 1
    return names(pairs, "client"), names(pairs, "server"), cells


def role_table(records: list[dict]) -> dict[str, dict[str, Counter]]:
    """Per implementation: its tests as a server alone, as a client alone, and without a peer."""
    table: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    for record in records:
        client, server, alone = record.get("client"), record.get("server"), record.get("implementation")
        if server and not client:
            table[server]["server"][record["outcome"]] += 1
        elif client and not server:
            table[client]["client"][record["outcome"]] += 1
        elif alone:
            table[alone]["alone"][record["outcome"]] += 1
    return table


def failing(results: dict) -> list[dict]:
    return [record for record in results["tests"] if record["outcome"] in FAILING]


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
    lines: list[str] = []
    counts = count(records)
    lines.append(
        "totals: "
        + ", ".join(f"{counts[k]} {k}" for k in ("passed", "failed", "error", "skipped", "known-failure") if counts[k])
    )
    clients, servers, cells = pair_grid(records)
    if clients:
        lines.append("clients x servers (passed/failed/skipped; +Nk = known failures), all pair tests:")
        lines += [
            "  " + line
            for line in text_table(
                ["client \\ server", *[f"{s}-server" for s in servers]],
                [[f"{c}-client", *[cell_text(cells[(c, s)]) for s in servers]] for c in clients],
            )
        ]
    roles = role_table(records)
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
            lines.append(f"  {record['outcome'].upper()} {label(record)}")
            lines.append(f"      {record['repro']}")
        if len(bad) > cap:
            lines.append(f"  ... and {len(bad) - cap} more (all in --report-dir's report.html / results.json)")
    known = [r for r in records if r["outcome"] == "known-failure"]
    for record in known:
        lines.append(f"  known failure {label(record)}: {record.get('known_failure', '')}")
    for problem in results["ledger"]["problems"]:
        lines.append(f"known-failures ledger: {problem}")
    uncovered = results["clauses"].get("uncovered", [])
    lines.append(f"spec clauses with no test: {', '.join(uncovered) if uncovered else 'none'}")
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
) -> str:
    out = [f"<table class=grid><caption>{e(title)}</caption><tr><th>client \\ server</th>"]
    out += [f"<th>{e(column + column_suffix)}</th>" for column in columns]
    out.append("</tr>")
    for row in rows:
        out.append(f"<tr><th class=row>{e(row + row_suffix)}</th>")
        for column in columns:
            counts = cells.get((row, column), Counter())
            text = e(cell_text(counts))
            anchor = (anchors or {}).get((row, column))
            if anchor:
                text = f"<a href='#{anchor}'>{text}</a>"
            tip = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
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
    out = [
        f"<div class=failure id='f{number}'><h3>{e(record['outcome'].upper())} {e(record['nodeid'])}</h3>",
        f"<div>repro: <code>{e(record['repro'])}</code></div>",
    ]
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
    out.append("</div>")
    return "".join(out)


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
    counts = count(records)
    bad = failing(results)
    numbers = {record["nodeid"]: n for n, record in enumerate(bad, 1)}
    clients, servers, cells = pair_grid(records)
    anchors = {}
    for record in bad:
        if record.get("client") and record.get("server"):
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
    ]
    if mutation:
        out.append(
            f"<span class=s-{'pass' if mutation['caught'] == mutation['total'] else 'fail'}>"
            f"mutation score {mutation['caught']}/{mutation['total']}</span>"
        )
    out.append("</p>")
    out.append(
        "<table class=legend><tr><td class=pass>all passed</td><td class=fail>a failure</td>"
        "<td class=known>known failures only</td><td class=skip>skipped</td><td class=none>no test</td>"
        "</tr></table><p class=muted>Cells: passed/failed/skipped (+Nk known failures); a red cell links "
        "to its first failure.</p>"
    )
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
            )
        )
    roles = role_table(records)
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
    categories = sorted({r["category"] for r in records if r.get("category")})
    if categories:
        out.append(
            "<h2>Per vector category</h2><p class=muted>Vectors through every client x server pair "
            "(test_client_server_pair), one grid per spec/vectors/*.json file.</p><div class=grids>"
        )
        for category in categories:
            subset = [
                r for r in records if r.get("category") == category and r.get("test") == "test_client_server_pair"
            ]
            if subset:
                c, s, g = pair_grid(subset)
                out.append(f"<div>{html_grid(category, c, s, g, '', '')}</div>")
        out.append("</div>")
        alone = [r for r in records if r.get("category") and not (r.get("client") and r.get("server"))]
        if alone:
            rows = sorted({r.get("server") or r.get("implementation") for r in alone})
            tests = sorted({r["test"] for r in alone})
            grid = defaultdict(Counter)
            for r in alone:
                grid[(r.get("server") or r.get("implementation"), r["test"])][r["outcome"]] += 1
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


def render_markdown(results: dict, mutation: dict | None = None, cap: int = 50) -> str:
    records = results["tests"]
    counts = count(records)
    icon = "✅" if results["exit_status"] == 0 else "❌"
    lines = [
        f"## {icon} upper-echo matrix: {counts['passed']} passed, {counts['failed'] + counts['error']} failed, "
        f"{counts['skipped']} skipped, {counts['known-failure']} known failures",
        "",
        f"Backend `{results['backend']}`, {results['duration']} s, exit status {results['exit_status']}.",
        "",
    ]
    clients, servers, cells = pair_grid(records)
    if clients:
        lines += [
            "| client \\ server | " + " | ".join(f"{s}-server" for s in servers) + " |",
            "|---|" + "---|" * len(servers),
        ]
        marks = {"pass": "✅", "fail": "❌", "known": "⚠️", "skip": "⏭️", "none": ""}
        for client in clients:
            lines.append(
                f"| {client}-client | "
                + " | ".join(
                    f"{marks[cell_class(cells[(client, s)])]} {cell_text(cells[(client, s)])}" for s in servers
                )
                + " |"
            )
        lines += ["", "Cells: passed/failed/skipped."]
    bad = failing(results)
    if bad:
        lines += ["", f"### Failing ({len(bad)})", ""]
        lines += [f"- `{label(r)}`: `{r['repro']}`" for r in bad[:cap]]
        if len(bad) > cap:
            lines.append(f"- ... and {len(bad) - cap} more in report.html")
    if results["ledger"]["problems"]:
        lines += ["", "### Known-failures ledger problems", ""] + [f"- {p}" for p in results["ledger"]["problems"]]
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
