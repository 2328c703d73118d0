"""Readable matrix reports, as a pytest plugin (registered by tests/conftest.py).

Every run: a clients x servers table in the terminal and the failing cells, each with a one-line repro.
`--report-dir DIR`: junit.xml, results.json, report.html (self-contained) and summary.md (for a CI step summary).
The known-failures ledger (harness/reports/known_failures.py) is applied here too.

The gate across runs (harness/reports/gate.py): results.json records the provenance of every implementation
and of the harness (harness/reports/provenance.py); `--baseline PATH` diffs this run's cells against an
earlier run and blames each flipped cell on what changed; `--history DIR` appends a record of the run and
shows pass-rate strips and ledger proposals; `--shard K/N` runs one deterministic part
(harness/reports/shards.py), and `python3 -m harness.reports.merge` makes one report of the parts.
Repeated tests (`-r{k}of{N}` ids) are grouped into cells, flaky when some repeats fail; condition tests get a
grid per condition, and a failing one's transcript (item.user_properties "transcript") is kept.

Cheap by design: every test carries a few names (its cell); only failures carry evidence (input, expected and
actual bytes, both sides' stderr), captured from the failing frames' locals and capped in size. Workers attach
both to their reports (plain data, so pytest-xdist ships them to the controller), which alone writes the files.
"""

from __future__ import annotations

import datetime
import json
import re
import shlex
import socket
import time
from collections import defaultdict
from pathlib import Path

import pytest

from .. import REPO
from ..bytes_diff import first_difference
from ..reports import provenance
from ..reports.cells import cell_id, condition_of, group_cells, repeat_of
from ..reports.gate import HISTORY_WINDOW, finalize
from ..reports.junit import write_junit
from ..reports.known_failures import LEDGER, Ledger, LedgerError, load_ledger
from ..reports.render import clause_coverage, render_all, terminal_lines
from ..reports.shards import parse_shard, split

BLOB_CAP = 2048  # bytes of each input/expected/actual kept for a failure (plus a window at the first difference)
WINDOW = 128
STDERR_CAP = 2048  # the last bytes of each side's stderr
MESSAGE_CAP = 6000
TERMINAL_FAILURES = 40
TRANSCRIPTS_PER_CELL = 3  # failing repeats of one cell whose transcripts are kept (all with --keep-transcripts)
LEDGER_KEY = pytest.StashKey[Ledger]()
COLLECTOR_KEY = pytest.StashKey["Collector"]()
RESULTS_KEY = pytest.StashKey[dict]()
_collector: Collector | None = None  # this process's collector (the controller's, or the only process's)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("upper-echo reports")
    group.addoption(
        "--report-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="write junit.xml, results.json, report.html and summary.md there at the end of the run",
    )
    group.addoption(
        "--known-failures",
        type=Path,
        default=LEDGER,
        metavar="PATH",
        help="the known-failures ledger (default: tests/matrix/known_failures.toml)",
    )
    group.addoption(
        "--baseline",
        type=Path,
        default=None,
        metavar="PATH",
        help="diff every cell against an earlier results.json (or the newest one in a folder): newly "
        "failing, newly passing, newly flaky, still failing; a flipped cell names what changed. A newly "
        "failing or newly flaky cell the ledger does not list fails the run",
    )
    group.addoption(
        "--no-fail-on-new",
        action="store_true",
        help="with --baseline: show the diff, but do not fail the run for newly failing cells on that account "
        "(a failing test still fails it)",
    )
    group.addoption(
        "--history",
        type=Path,
        default=None,
        metavar="DIR",
        help="append a compact record of this run to DIR and show each unstable cell's pass rate over the "
        "last runs, with proposed known-failures ledger changes (a --shard run writes none: merge does)",
    )
    group.addoption(
        "--history-window",
        type=int,
        default=HISTORY_WINDOW,
        metavar="N",
        help=f"how many recent runs --history shows (default {HISTORY_WINDOW})",
    )
    group.addoption(
        "--shard",
        default=None,
        metavar="K/N",
        help="run only the K-th of N deterministic parts of the selected tests (a server's tests stay "
        "together); merge the parts' --report-dir with python3 -m harness.reports.merge",
    )
    group.addoption(
        "--keep-transcripts",
        action="store_true",
        help="keep every condition test's proxy transcript in results.json, not only the failing ones'",
    )


def pytest_configure(config: pytest.Config) -> None:
    baseline = config.getoption("--baseline")
    if baseline is not None and not baseline.exists():
        raise pytest.UsageError(f"--baseline {baseline}: no such file or folder")
    if config.getoption("--shard"):
        try:
            parse_shard(config.getoption("--shard"))
        except ValueError as error:
            raise pytest.UsageError(str(error)) from None
    try:
        config.stash[LEDGER_KEY] = Ledger(load_ledger(config.getoption("--known-failures")))
    except LedgerError as error:
        raise pytest.UsageError(f"known-failures ledger: {error}") from None
    global _collector
    if not hasattr(config, "workerinput"):
        config.stash[COLLECTOR_KEY] = _collector = Collector(config)


@pytest.hookimpl(trylast=True)  # after -k, -m and --deselect: the shard is a part of the selection
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--shard"):
        return
    shard, count = parse_shard(config.getoption("--shard"))
    records = [{**cell_of(item), "nodeid": item.nodeid, "item": item} for item in items]
    kept, dropped = split(records, shard, count)
    if dropped:
        config.hook.pytest_deselected(items=[record["item"] for record in dropped])
    items[:] = [record["item"] for record in kept]


# ---------------------------------------------------------------- worker side: what each report carries


def cell_of(item: pytest.Item) -> dict:
    """The names a report groups a test by: its roles, its vector, the clauses it cites."""
    params = getattr(item, "callspec", None)
    params = params.params if params else {}
    name = getattr(item, "originalname", None) or item.name
    cell: dict = {
        "test": name,
        "file": item.nodeid.split("::", 1)[0],
        "id": item.name[len(name) + 1 : -1] if item.name.startswith(name + "[") else "",
        "clauses": sorted({c for mark in item.iter_markers("clause") for c in mark.args}),
    }
    for role in ("client", "server", "implementation"):
        if role in params:
            cell[role] = getattr(params[role], "name", str(params[role]))
    condition = params.get("condition") or dict(_properties(item)).get("condition") or condition_of(item.nodeid)
    if condition:
        cell["condition"] = str(getattr(condition, "name", condition))
    vector = params.get("vector")
    if vector is not None:
        cell["vector"], cell["category"] = vector.id, vector.category
    return cell


def _properties(item) -> list:
    return [p for p in getattr(item, "user_properties", []) if isinstance(p, tuple) and len(p) == 2]


def blob(data: bytes, around: int | None = None) -> dict:
    """Capped bytes for a report: the head, and a window at `around` if that lies beyond the head."""
    kept = {"length": len(data), "head": _hex_and_text(data[:BLOB_CAP])}
    if around is not None and around >= BLOB_CAP - WINDOW // 2 and around < len(data):
        start = max(0, around - WINDOW)
        kept["window"] = {"start": start, **_hex_and_text(data[start : around + WINDOW])}
    return kept


def _hex_and_text(data: bytes) -> dict:
    return {"hex": data.hex(" "), "text": data.decode("utf-8", "backslashreplace")}


def tail(data: bytes) -> dict:
    return {"length": len(data), "text": data[-STDERR_CAP:].decode("utf-8", "backslashreplace")}


def _frames_locals(excinfo) -> list[dict]:
    """The locals of every frame of the failure, innermost first."""
    if excinfo is None:
        return []
    return [dict(entry.frame.f_locals) for entry in reversed(excinfo.traceback)]


def evidence_of(item: pytest.Item, call: pytest.CallInfo) -> dict:
    """Input, expected and actual bytes and both sides' stderr of a failure, from its frames and parameters."""
    found: dict = {}
    params = getattr(item, "callspec", None)
    params = params.params if params else {}
    vector = params.get("vector")
    if vector is not None:
        found["input"], found["expected"] = vector.input, vector.expected
    frames = _frames_locals(call.excinfo)
    for local in frames:  # the innermost comparison of two byte strings
        if isinstance(local.get("actual"), bytes) and isinstance(local.get("expected"), bytes):
            found.setdefault("actual", local["actual"])
            found["expected"] = local["expected"]
            break
    for local in frames:
        for value in local.values():
            if all(hasattr(value, name) for name in ("argv", "returncode", "stdout", "stderr")):  # a Completed
                found.setdefault("actual", value.stdout)
                found.setdefault(
                    "run",
                    {"argv": [str(arg) for arg in value.argv], "exit": value.returncode, "stderr": tail(value.stderr)},
                )
            elif (
                callable(getattr(value, "stderr", None))
                and hasattr(value, "ready_line")
                and "server_stderr" not in found
            ):  # a server the test started itself
                found["server_stderr"] = _safe_stderr(value)
        if "input" not in found:
            for name in ("data", "text", "lines"):
                if isinstance(local.get(name), bytes):
                    found["input"] = local[name]
                    break
    server = params.get("server")
    pool = item.funcargs.get("servers") if hasattr(item, "funcargs") else None
    if server is not None and pool is not None and "server_stderr" not in found:
        turkish = "turkish" in item.name
        running = getattr(pool, "running", {}).get((server.name, turkish))
        if running is not None:
            found["server_stderr"] = _safe_stderr(running)
    offset = (
        first_difference(found["actual"], found["expected"])
        if isinstance(found.get("actual"), bytes) and isinstance(found.get("expected"), bytes)
        else None
    )
    result: dict = {"first_difference": offset}
    for name in ("input", "expected", "actual"):
        if isinstance(found.get(name), bytes):
            result[name] = blob(found[name], offset if name != "input" else None)
    for name in ("run", "server_stderr"):
        if name in found:
            result[name] = found[name]
    return result


def _safe_stderr(server) -> dict:
    try:
        return tail(server.stderr())
    except Exception as error:  # a container gone, a file closed: the report must not fail the test
        return {"length": 0, "text": f"(stderr unavailable: {error})"}


@pytest.hookimpl(hookwrapper=True, tryfirst=True)  # outermost: sees the report after tests/conftest.py's changes
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    report.upper_echo_cell = cell_of(item)
    transcript = dict(_properties(item)).get("transcript")
    keep = report.failed or item.config.getoption("--keep-transcripts")
    if transcript is not None and report.when == "call" and keep:
        report.upper_echo_transcript = transcript  # whole, so that harness/replay.py can play it back
    ledger = item.config.stash.get(LEDGER_KEY, None)
    entry = ledger.match(item.nodeid) if ledger else None
    if entry is not None and not entry.expired(ledger.today) and not hasattr(report, "wasxfail"):
        if report.passed and repeat_of(item.nodeid) is not None:
            return  # a listed flaky cell's passing repeat passes; the cell is stale only if all of them pass
        if report.failed and report.when in ("setup", "call"):
            report.upper_echo_evidence = evidence_of(item, call)
            report.outcome = "skipped"
            report.wasxfail = f"known failure: {entry.describe()}"
            return
        if report.passed and report.when == "call":
            report.outcome = "failed"
            report.longrepr = (
                f"listed in tests/matrix/known_failures.toml but passed: remove the entry "
                f"{entry.test!r} ({entry.describe()})"
            )
            return
    if report.failed and report.when in ("setup", "call"):
        try:
            report.upper_echo_evidence = evidence_of(item, call)
        except Exception as error:  # never let reporting turn into a test error
            report.upper_echo_evidence = {"error": f"evidence unavailable: {error!r}"}


# ---------------------------------------------------------------- controller side: collect, summarize, write


class Collector:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.records: dict[str, dict] = {}
        self.started = time.time()

    def add(self, report: pytest.TestReport) -> None:
        record = self.records.get(report.nodeid)
        if record is None:
            record = self.records[report.nodeid] = {
                "nodeid": report.nodeid,
                **getattr(report, "upper_echo_cell", {}),
                "outcome": "passed",
                "when": "call",
                "duration": 0.0,
                "message": "",
                "repro": self.repro(report.nodeid),
            }
        for key, value in getattr(report, "upper_echo_cell", {}).items():
            record.setdefault(key, value)  # a condition the test named in its user_properties during the call
        if hasattr(report, "upper_echo_transcript"):
            record["transcript"] = report.upper_echo_transcript
        record["duration"] = round(record["duration"] + report.duration, 3)
        outcome = phase_outcome(report)
        if outcome is None or record["outcome"] not in ("passed",):
            return
        record["outcome"], record["when"] = outcome, report.when
        if outcome in ("failed", "error", "known-failure", "skipped"):
            record["message"] = message_of(report)
        if hasattr(report, "upper_echo_evidence"):
            record["evidence"] = report.upper_echo_evidence
        if outcome == "known-failure":
            record["known_failure"] = report.wasxfail

    def repro(self, nodeid: str) -> str:
        command = ["python3", "-m", "pytest", nodeid]
        if self.config.getoption("--backend", "local") == "docker":
            command += ["--backend", "docker"]
        for registry in self.config.getoption("--registry", None) or []:
            path = Path(registry).resolve()
            command += ["--registry", str(path.relative_to(REPO) if path.is_relative_to(REPO) else path)]
        return shlex.join(command)


def phase_outcome(report: pytest.TestReport) -> str | None:
    """What one phase says about the test, or None when it says nothing new (a passed setup or teardown)."""
    if hasattr(report, "wasxfail"):
        return "known-failure" if report.skipped else "passed"
    if report.when == "call":
        return report.outcome
    if report.failed:
        return "error"
    if report.skipped and report.when == "setup":
        return "skipped"
    return None


def message_of(report: pytest.TestReport) -> str:
    if isinstance(report.longrepr, tuple):  # a skip: (file, line, reason)
        text = report.longrepr[2]
    else:
        text = getattr(report, "longreprtext", "") or str(report.longrepr or "")
    return text if len(text) <= MESSAGE_CAP else text[: MESSAGE_CAP // 2] + "\n[...]\n" + text[-MESSAGE_CAP // 2 :]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    collector = _collector
    if collector is not None:
        collector.add(report)


def narrowed(config: pytest.Config) -> bool:
    """A run that cannot tell whether a ledger entry is stale: selected by keyword, marker or deselection."""
    option = config.option
    return bool(
        getattr(option, "keyword", "")
        or getattr(option, "markexpr", "")
        or getattr(option, "deselect", None)
        or getattr(option, "lf", False)
        or any("::" in str(arg) for arg in config.args)
    )


def stale_repeated(ledger: Ledger, records: list[dict]) -> list[str]:
    """Listed repeated cells whose every repeat passed: the entry is stale."""
    problems = []
    for cell in group_cells(records):
        if "items" not in cell or cell["outcome"] != "passed":
            continue
        entry = ledger.match(cell["items"][0])
        if entry is not None:
            problems.append(
                f"listed but passed all {cell['runs']} repeats: {cell['cell']}: remove the entry {entry.test!r}"
            )
    return problems


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    collector = session.config.stash.get(COLLECTOR_KEY, None)
    if collector is None:
        return
    config = session.config
    sharded = bool(config.getoption("--shard"))
    if sharded and session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.OK  # an empty shard: the other shards have the tests
    ledger = config.stash[LEDGER_KEY]
    problems = ledger.problems(list(collector.records), narrowed(config) or sharded)
    problems += stale_repeated(ledger, list(collector.records.values()))
    if problems and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    results = build_results(collector, session, problems)
    try:
        gate_failed = finalize(
            results,
            baseline=config.getoption("--baseline"),
            history=config.getoption("--history"),
            window=config.getoption("--history-window"),
            fail_on_new=not config.getoption("--no-fail-on-new"),
            # shards: the merge writes the one record; an interrupted run is no record of the cells
            write_history=not sharded and session.exitstatus != pytest.ExitCode.INTERRUPTED,
        )
    except (OSError, ValueError) as error:
        raise pytest.UsageError(f"--baseline/--history: {error}") from None
    if gate_failed and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    results["exit_status"] = int(session.exitstatus)
    config.stash[RESULTS_KEY] = results
    report_dir = config.getoption("--report-dir")
    if report_dir is not None:
        # A run without matrix tests (the mutant meta-test) keeps the matrix's results.json and re-renders.
        write_reports(
            results if any(r["nodeid"].startswith("tests/matrix/") for r in results["tests"]) else None, report_dir
        )


def build_results(collector: Collector, session: pytest.Session, problems: list[str]) -> dict:
    records = sorted(collector.records.values(), key=lambda r: r["nodeid"])
    if not session.config.getoption("--keep-transcripts"):
        kept: dict[str, int] = defaultdict(int)
        for record in records:
            if "transcript" in record:
                kept[cell_id(record["nodeid"])] += 1
                if kept[cell_id(record["nodeid"])] > TRANSCRIPTS_PER_CELL:
                    record["transcript"] = {"events": [], "dropped": True}
    counts = defaultdict(int)
    for record in records:
        counts[record["outcome"]] += 1
    config = session.config
    from .session import implementations

    try:
        plugins = provenance.pytest_plugins(config)
    except Exception:  # provenance must never fail a run
        plugins = {}
    return {
        "format": "upper-echo-results/2",
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "duration": round(time.time() - collector.started, 1),
        "hostname": socket.gethostname(),
        "backend": config.getoption("--backend", "local"),
        "command": shlex.join(["python3", "-m", "pytest", *config.invocation_params.args]),
        "exit_status": int(session.exitstatus),
        "shard": config.getoption("--shard"),
        "narrowed": narrowed(config),
        "counts": dict(counts),
        "ledger": {"entries": [entry.as_dict() for entry in config.stash[LEDGER_KEY].entries], "problems": problems},
        "clauses": clause_coverage(records),
        "provenance": provenance.collect(implementations(), config.getoption("--backend", "local"), plugins),
        "tests": records,
    }


def write_reports(results: dict | None, report_dir: Path) -> None:
    report_dir.mkdir(parents=True, exist_ok=True)
    if results is not None:
        (report_dir / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
        write_junit(results, report_dir / "junit.xml")
    render_all(report_dir)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    results = config.stash.get(RESULTS_KEY, None)
    if results is None or not any(r["nodeid"].startswith("tests/matrix/") for r in results["tests"]):
        return
    terminalreporter.section("upper-echo matrix")
    writer = terminalreporter._tw
    for line in terminal_lines(results, TERMINAL_FAILURES):
        terminalreporter.write_line(coloured(line, writer) if writer.hasmarkup else line)
    report_dir = config.getoption("--report-dir")
    if report_dir is not None:
        terminalreporter.write_line(f"reports: {report_dir}/report.html, summary.md, results.json, junit.xml")


_FRACTION = re.compile(r"(?<![\w/~])(~?)(\d+)/(\d+)(?![\w/])")
_WORDS = re.compile(r"\b(NEWLY FAILING|NEWLY FLAKY|NEWLY PASSING|FAILED|FAIL|ERROR|FLAKY)\b")
_WORD_COLOUR = {"NEWLY PASSING": "green"}


def coloured(line: str, writer) -> str:
    """The terminal table with flaky k/N in purple, failures in red, all-passed repeats in green."""

    def fraction(match: re.Match) -> str:
        failed, runs = int(match[2]), int(match[3])
        colour = "purple" if match[1] or 0 < failed < runs else ("red" if failed else "green")
        return writer.markup(match[0], **{colour: True, "bold": colour != "green"})

    def word(match: re.Match) -> str:
        colour = _WORD_COLOUR.get(match[1], "purple" if "FLAKY" in match[1] else "red")
        return writer.markup(match[0], **{colour: True, "bold": True})

    return _WORDS.sub(word, _FRACTION.sub(fraction, line))
