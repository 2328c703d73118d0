"""The reports (harness/plugins/reporting.py and harness/reports/): valid JUnit, a self-contained HTML page,
the ledger's rules, and end to end: small real matrix runs with --report-dir, one of them against a mutant."""

from __future__ import annotations

import datetime
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema

from harness import REPO
from harness.reports.junit import write_junit
from harness.reports.known_failures import LEDGER, Ledger, LedgerError, load_ledger, parse_ledger
from harness.reports.render import clause_coverage, render_html, render_markdown, terminal_lines

XSD = REPO / "harness" / "reports" / "junit.xsd"
PAIR = "tests/matrix/test_vectors.py::test_client_server_pair"


def blob(data: bytes) -> dict:
    return {"length": len(data), "head": {"hex": data.hex(" "), "text": data.decode("utf-8", "backslashreplace")}}


def record(nodeid: str, outcome: str, **extra) -> dict:
    return {
        "nodeid": nodeid,
        "test": nodeid.split("::")[1].split("[")[0],
        "id": "",
        "clauses": ["T-1"],
        "outcome": outcome,
        "when": "call",
        "duration": 0.25,
        "message": "",
        "repro": f"python3 -m pytest '{nodeid}'",
        **extra,
    }


def synthetic_results() -> dict:
    tests = [
        record(
            f"{PAIR}[python-client->csharp-server[sharp-s]]",
            "passed",
            client="python",
            server="csharp",
            vector="sharp-s",
            category="latin",
        ),
        record(
            f"{PAIR}[csharp-client->python-server[lone-ff]]",
            "failed",
            client="csharp",
            server="python",
            vector="lone-ff",
            category="invalid-utf8",
            message="AssertionError: bytes differ \x00\x1b[31m at offset 1 <&>\n",
            evidence={
                "first_difference": 1,
                "input": blob(b"a\xff"),
                "expected": blob(b"A\xff"),
                "actual": blob(b"A\xef\xbf\xbd"),
                "run": {"argv": ["csharp/bin/upper-echo", "client"], "exit": 0, "stderr": {"length": 0, "text": ""}},
                "server_stderr": {"length": 20, "text": "open peer=127.0.0.1:1\n"},
            },
        ),
        record(
            "tests/matrix/test_server.py::test_port_0[csharp-server-ipv6]",
            "error",
            server="csharp",
            message="setup failed",
        ),
        record(
            "tests/matrix/test_client.py::test_reset[java-client]",
            "skipped",
            client="java",
            message="java: toolchain missing",
        ),
        record(
            f"{PAIR}[java-client->python-server[sharp-s]]",
            "known-failure",
            client="java",
            server="python",
            vector="sharp-s",
            category="latin",
            known_failure="known failure: reason (https://x/1; expires ...)",
        ),
        record("tests/unit/test_table.py::test_table", "passed"),
    ]
    return {
        "format": "upper-echo-results/1",
        "created": "2026-11-27T06:00:00+00:00",
        "duration": 12.5,
        "hostname": "ci",
        "backend": "local",
        "command": "python3 -m pytest tests",
        "exit_status": 1,
        "counts": {},
        "ledger": {"entries": [], "problems": ["expired on 2026-01-01: x"]},
        "clauses": clause_coverage(tests),
        "tests": tests,
    }


def test_junit_is_valid_against_the_schema(tmp_path) -> None:
    write_junit(synthetic_results(), tmp_path / "junit.xml")
    xmlschema.XMLSchema(XSD).validate(tmp_path / "junit.xml")
    root = ET.parse(tmp_path / "junit.xml").getroot()
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == 6 and root.get("tests") == "6"
    assert (root.get("failures"), root.get("errors"), root.get("skipped")) == ("1", "1", "2")
    failed = next(case for case in cases if case.find("failure") is not None)
    assert failed.get("name") == "test_client_server_pair[csharp-client->python-server[lone-ff]]"
    assert "\\x00" in failed.find("failure").text and "repro: python3 -m pytest" in failed.find("system-out").text


def test_html_is_self_contained_and_shows_grids_and_evidence() -> None:
    page = render_html(
        synthetic_results(),
        {
            "caught": 1,
            "total": 2,
            "created": "",
            "mutants": [
                {
                    "name": "lose-tail",
                    "role": "server",
                    "breaks": "drops the tail",
                    "caught": True,
                    "caught_by": ["t[x]"],
                },
                {"name": "x", "role": "client", "breaks": "y", "caught": False, "caught_by": []},
            ],
        },
    )
    assert not re.search(r"<script|<link|<img|@import|url\(|src=", page), "report.html must need no network"
    assert "csharp-client" in page and "python-server" in page and "invalid-utf8" in page  # grid, category grid
    assert "<mark>ef</mark>" in page and "first differing offset: 1" in page  # actual bytes, highlighted
    assert "open peer=127.0.0.1:1" in page and "mutation score 1/2" in page and "SURVIVED" in page
    assert "&lt;&amp;&gt;" in page  # escaped
    markdown = render_markdown(synthetic_results())
    assert "| csharp-client |" in markdown and "expired on 2026-01-01" in markdown


def test_terminal_table_and_repro_lines() -> None:
    lines = terminal_lines(synthetic_results(), cap=10)
    assert any("python-server" in line and "csharp-server" in line for line in lines)
    assert any(line.strip().startswith("python3 -m pytest 'tests/matrix/test_vectors.py::") for line in lines)


def test_clause_coverage_reuses_the_spec_helpers() -> None:
    coverage = clause_coverage([])
    assert len(coverage["spec"]) > 30 and coverage["uncovered"] == []


def test_the_committed_ledger_is_valid_and_empty() -> None:
    assert load_ledger(LEDGER) == [], "the reference implementations must not need known failures"


def test_ledger_rules() -> None:
    entries = parse_ledger(f'''
[[failure]]
test = "{PAIR}[java-client->*-server[sharp-s]]"
reason = "r"
link = "https://example.invalid/1"
expires = 2026-06-30
''')
    ledger = Ledger(entries, today=datetime.date(2026, 6, 30))
    assert ledger.match(f"{PAIR}[java-client->csharp-server[sharp-s]]")
    assert not ledger.match(f"{PAIR}[java-client->csharp-server[sharp-t]]")  # brackets are literal
    assert ledger.problems([f"{PAIR}[java-client->csharp-server[sharp-s]]"], narrowed=False) == []
    assert "matches no test" in ledger.problems([f"{PAIR}[a]"], narrowed=False)[0]
    assert ledger.problems([f"{PAIR}[a]"], narrowed=True) == []
    assert "expired" in Ledger(entries, today=datetime.date(2026, 7, 1)).problems([], narrowed=True)[0]
    for broken in [
        '[[failure]]\ntest = "x"',
        '[[failure]]\ntest="tests/a.py::b"\nreason="r"\nlink="nope"\nexpires=2026-01-01',
        "oops = 1",
    ]:
        with pytest.raises(LedgerError):
            parse_ledger(broken)


# ---------------------------------------------------------------- end to end, with real (small) runs


def python_registry(tmp_path: Path, *mutants: str) -> Path:
    entries = [("python", REPO / "python")] + [(m, REPO / "tests" / "mutants" / m) for m in mutants]
    registry = tmp_path / "registry.toml"
    registry.write_text(
        "".join(
            f'[{name}]\nfolder = "{folder}"\nneeds = ["python3"]\nimage = "i"\nservice = "{name}-server"\n'
            for name, folder in entries
        )
    )
    return registry


def run_matrix(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, Path]:
    report_dir = tmp_path / "reports"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            *args,
            "--report-dir",
            str(report_dir),
            "-n",
            "0",
            "-p",
            "no:cacheprovider",
            "-q",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result, report_dir


@pytest.mark.slow
def test_a_failing_cell_is_reported_with_evidence_and_repro(tmp_path) -> None:
    nodeid = "tests/matrix/test_vectors.py::test_client_server_pair[python-client->lose-tail-server[truncated-at-eof]]"
    result, reports = run_matrix(tmp_path, nodeid, "--registry", str(python_registry(tmp_path, "lose-tail")))
    assert result.returncode == 1, result.stdout[-3000:]
    assert "python-client" in result.stdout and "57/3/0" not in result.stdout
    assert f"python3 -m pytest '{nodeid}' --registry" in result.stdout  # the repro line
    xmlschema.XMLSchema(XSD).validate(reports / "junit.xml")
    results = json.loads((reports / "results.json").read_text())
    [cell] = results["tests"]
    assert (cell["outcome"], cell["client"], cell["server"], cell["vector"]) == (
        "failed",
        "python",
        "lose-tail",
        "truncated-at-eof",
    )
    evidence = cell["evidence"]
    assert evidence["input"]["length"] > 0 and evidence["actual"]["length"] < evidence["expected"]["length"]
    assert evidence["first_difference"] is not None and "open peer=" in evidence["server_stderr"]["text"]
    assert "first differing offset" in (reports / "report.html").read_text()
    assert (reports / "summary.md").read_text().startswith("## ❌")


@pytest.mark.slow
def test_a_listed_failure_passes_the_run_and_an_unexpected_pass_fails_it(tmp_path) -> None:
    failing = "tests/matrix/test_vectors.py::test_server_alone[lose-tail-server[truncated-at-eof]]"
    passing = "tests/matrix/test_vectors.py::test_server_alone[python-server[truncated-at-eof]]"
    ledger = tmp_path / "ledger.toml"
    ledger.write_text(
        "".join(
            f'[[failure]]\ntest = "{test}"\nreason = "demo"\nlink = "https://example.invalid/1"\nexpires = 2999-01-01\n'
            for test in (failing, passing)
        )
    )
    registry = python_registry(tmp_path, "lose-tail")
    result, reports = run_matrix(
        tmp_path, failing, passing, "--registry", str(registry), "--known-failures", str(ledger)
    )
    outcomes = {t["nodeid"]: t["outcome"] for t in json.loads((reports / "results.json").read_text())["tests"]}
    assert outcomes == {failing: "known-failure", passing: "failed"}, result.stdout[-3000:]
    assert result.returncode == 1


@pytest.mark.slow
def test_an_expired_or_stale_entry_fails_a_green_run(tmp_path) -> None:
    ledger = tmp_path / "ledger.toml"
    ledger.write_text(
        '[[failure]]\ntest = "tests/matrix/test_contract.py::test_gone"\nreason = "stale"\n'
        'link = "https://example.invalid/2"\nexpires = 2999-01-01\n'
    )
    result, _ = run_matrix(
        tmp_path,
        "tests/matrix/test_contract.py",
        "--registry",
        str(python_registry(tmp_path)),
        "--known-failures",
        str(ledger),
    )
    assert result.returncode == 1 and "matches no test: tests/matrix/test_contract.py::test_gone" in result.stdout, (
        result.stdout[-3000:]
    )
