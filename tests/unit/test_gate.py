"""The gate across runs and the reports of repeated and condition cells, on synthetic results
(harness/reports/cells.py, gate.py, shards.py, merge.py, render.py), plus one small real sharded run."""

from __future__ import annotations

import copy
import datetime
import json
import random
import re
import subprocess
import sys

import pytest

from harness import REPO
from harness.reports.cells import cell_id, condition_of, group_cells, repeat_of
from harness.reports.gate import (
    STABLE,
    append_history,
    blame,
    classify,
    finalize,
    history_view,
    load_baseline,
    load_history,
)
from harness.reports.known_failures import Ledger, parse_ledger
from harness.reports.merge import MergeError, merge_results
from harness.reports.render import display_events, render_html, render_markdown, terminal_lines
from harness.reports.shards import assign, parse_shard, split

PAIR = "tests/matrix/test_vectors.py::test_client_server_pair"
COND = "tests/matrix/test_conditions.py::test_condition_pair"
NAMES = ("python", "java", "csharp")


def record(nodeid: str, outcome: str = "passed", **extra) -> dict:
    return {
        "nodeid": nodeid,
        "test": nodeid.split("::")[1].split("[")[0],
        "file": nodeid.split("::")[0],
        "id": "",
        "clauses": [],
        "outcome": outcome,
        "when": "call",
        "duration": 0.1,
        "message": "",
        "repro": f"python3 -m pytest '{nodeid}'",
        **extra,
    }


def state(tree: str, version: str = "v1", image: str | None = None) -> dict:
    out = {
        "path": "x",
        "tree": tree,
        "dirty": False,
        "fingerprint": tree,
        "runtime": {"command": [], "version": version},
    }
    if image:
        out["image"] = {"name": "i", "id": image}
    return out


def provenance(**changes) -> dict:
    impls = {name: state(f"{name}-tree") for name in NAMES}
    impls.update(changes.pop("impls", {}))
    return {
        "implementations": impls,
        "harness": {
            "commit": "c0ffee",
            "fingerprint": changes.get("harness", "h1"),
            "parts": {"harness": {"fingerprint": changes.get("harness", "h1")}, "tests": {"fingerprint": "t"}},
        },
        "environment": {"kernel": changes.get("kernel", "6.1"), "cores": 2},
    }


def results(tests: list[dict], created: str = "2026-11-27T10:00:00+00:00", **extra) -> dict:
    return {
        "format": "upper-echo-results/2",
        "created": created,
        "duration": 1.0,
        "hostname": "h",
        "backend": "local",
        "command": "python3 -m pytest tests",
        "exit_status": 1 if any(t["outcome"] in ("failed", "error") for t in tests) else 0,
        "counts": {},
        "ledger": {"entries": [], "problems": []},
        "clauses": {"spec": [], "uncovered": [], "in_run": {}},
        "provenance": provenance(),
        "tests": tests,
        **extra,
    }


def pair(client: str, server: str, vector: str = "v", outcome: str = "passed") -> dict:
    return record(f"{PAIR}[{client}-client->{server}-server[{vector}]]", outcome, client=client, server=server)


def repeated(client: str, server: str, condition: str, failures: set[int], n: int = 5) -> list[dict]:
    return [
        record(
            f"{COND}[{client}-client->[{condition}]->{server}-server-r{k}of{n}]",
            "failed" if k in failures else "passed",
            client=client,
            server=server,
            condition=condition,
        )
        for k in range(1, n + 1)
    ]


# ---------------------------------------------------------------- cells: repeats and conditions


def test_repeats_group_into_one_cell_and_flaky_is_k_of_n() -> None:
    nodeid = f"{COND}[java-client->[split-1]->csharp-server-r3of20]"
    assert cell_id(nodeid) == f"{COND}[java-client->[split-1]->csharp-server]"
    assert repeat_of(nodeid) == (3, 20) and repeat_of(cell_id(nodeid)) is None
    assert condition_of(nodeid) == "split-1"
    assert cell_id(f"{PAIR}[java-client->csharp-server[sharp-s]]") == f"{PAIR}[java-client->csharp-server[sharp-s]]"
    cells = {
        c["cell"]: c
        for c in group_cells(
            repeated("java", "csharp", "split-1", {2, 4})
            + repeated("python", "csharp", "split-1", set())
            + repeated("csharp", "csharp", "split-1", {1, 2, 3, 4, 5})
        )
    }
    flaky = cells[f"{COND}[java-client->[split-1]->csharp-server]"]
    assert (flaky["outcome"], flaky["failures"], flaky["runs"], len(flaky["items"])) == ("flaky", 2, 5, 5)
    assert flaky["provenance"] == {"client": "java", "server": "csharp"} and flaky["condition"] == "split-1"
    assert cells[f"{COND}[python-client->[split-1]->csharp-server]"]["outcome"] == "passed"
    assert cells[f"{COND}[csharp-client->[split-1]->csharp-server]"]["outcome"] == "failed"


def test_a_flaky_cell_is_listed_by_its_cell_id() -> None:
    ledger = Ledger(
        parse_ledger(
            f'[[failure]]\ntest = "{COND}[java-client->[split-1]->csharp-server]"\nreason = "r"\n'
            'link = "https://example.invalid/1"\nexpires = 2999-01-01\n'
        )
    )
    assert ledger.match(f"{COND}[java-client->[split-1]->csharp-server-r7of20]")
    assert not ledger.match(f"{COND}[java-client->[split-2]->csharp-server-r7of20]")
    assert ledger.problems([f"{COND}[java-client->[split-1]->csharp-server-r1of20]"], narrowed=False) == []


def condition_results() -> dict:
    tests = [pair(c, s) for c in NAMES for s in NAMES]
    tests += repeated("java", "csharp", "split-1", {3})
    tests += repeated("python", "csharp", "split-1", set())
    events = [
        {"t": 0.0, "leg": "client", "dir": "to-server", "kind": "data", "by": "client", "hex": "68 69"},
        {"t": 0.002, "leg": "server", "dir": "to-server", "kind": "data", "by": "proxy", "hex": "68"},
        {"t": 0.004, "leg": "server", "dir": "to-client", "kind": "rst", "by": "server"},
    ]
    failing = record(
        f"{COND}[java-client->[reset-client-sending]->python-server]",
        "failed",
        client="java",
        server="python",
        condition="reset-client-sending",
        transcript={"condition": "reset-client-sending", "events": events},
    )
    tests += [failing, record(f"{COND}[python-client->[jitter]->java-server]", client="python", server="java")]
    return results(tests)


def test_one_grid_per_condition_in_every_report() -> None:
    data = condition_results()
    lines = terminal_lines(data, 10)
    text = "\n".join(lines)
    for condition in ("split-1", "jitter", "reset-client-sending"):
        assert f"condition {condition}:" in text
    main = lines[lines.index(next(line for line in lines if line.startswith("clients x servers"))) + 2]
    assert main.split()[1:] == ["pass"] * 3  # one cell per box here; the main grid leaves condition cells out
    assert "1/5" in text and "0/5" in text and "FLAKY" in text  # k/N in the condition grid, flaky among failures
    page = render_html(data)
    assert page.count("<caption>") >= 4 and "<caption>split-1</caption>" in page
    assert "class=flaky" in page and ">1/5<" in page
    assert "Transcript (reset-client-sending): 3 events" in page and "68 69" in page and "class='rst'" in page
    markdown = render_markdown(data)
    assert "Condition `split-1`" in markdown and "🟪 1/5" in markdown
    assert "flaky 1/5" in markdown
    finalize(data)  # results.json: one grid per condition too
    [box] = data["conditions"]["split-1"]["java"]["csharp"]
    assert (box["outcome"], box["failures"], box["runs"]) == ("flaky", 1, 5)
    assert sorted(data["conditions"]) == ["jitter", "reset-client-sending", "split-1"]


def test_transcripts_are_capped_on_the_page_only() -> None:
    event = {"leg": "client", "dir": "to-server", "kind": "data", "by": "client", "hex": "41" * 2000}
    events = [{**event, "t": i / 1000} for i in range(1000)]
    shown = display_events(events)
    assert len(shown) == 401 and any(e["kind"] == "omitted" and e["count"] == 600 for e in shown)
    assert all(len(e.get("hex", "")) <= 512 for e in shown) and shown[0]["bytes"] == 2000
    assert len(events[0]["hex"]) == 4000  # the transcript itself (results.json) stays whole


# ---------------------------------------------------------------- baseline diff and blame


@pytest.mark.parametrize(
    "old,new,kind",
    [
        ("passed", "failed", "newly failing"),
        ("passed", "error", "newly failing"),
        ("skipped", "failed", "newly failing"),
        ("passed", "flaky", "newly flaky"),
        ("failed", "passed", "newly passing"),
        ("flaky", "passed", "newly passing"),
        ("failed", "failed", "still failing"),
        ("known-failure", "failed", "still failing"),
        ("failed", "flaky", "still failing"),
        ("flaky", "failed", "still failing"),
        ("passed", "passed", "unchanged"),
        ("passed", "skipped", "unchanged"),
        (None, "failed", "new"),
        ("passed", None, "removed"),
    ],
)
def test_classification(old, new, kind) -> None:
    assert classify(old, new) == kind


def test_blame_names_the_side_that_changed() -> None:
    cell = {"client": "java", "server": "python"}
    old = provenance()
    assert blame(cell, old, provenance()) == [STABLE]
    assert blame(cell, old, provenance(kernel="6.2")) == [f"{STABLE} (environment: kernel 6.1 -> 6.2)"]
    changed_server = provenance(impls={"python": state("new-tree")})
    assert blame(cell, old, changed_server) == ["server's folder x/: python-tree -> new-tree"]
    changed_client = provenance(impls={"java": state("java-tree", version="v2")})
    assert blame(cell, old, changed_client) == ["client's runtime (java): v1 -> v2"]
    assert blame({"client": "csharp", "server": "csharp"}, old, changed_server) == [STABLE]  # not this cell's side
    old_image = provenance(impls={"python": state("python-tree", image="sha256:aaaaaaaaaaaaaaaa")})
    new_image = provenance(impls={"python": state("python-tree", image="sha256:bbbbbbbbbbbbbbbb")})
    assert blame(cell, old_image, new_image) == ["server's image (python): aaaaaaaaaaaa -> bbbbbbbbbbbb"]
    assert blame(cell, old, provenance(harness="h2")) == ["the harness: harness/"]
    dirty = provenance(impls={"python": {**state("python-tree"), "dirty": True, "fingerprint": "dirty:" + "f" * 64}})
    assert "uncommitted ffffffffffff" in blame(cell, old, dirty)[0]


def test_diff_classifies_every_cell_and_the_gate_fails_only_on_unexpected_ones(tmp_path) -> None:
    before = results(
        [pair("java", "python", "a"), pair("java", "python", "b", "failed"), pair("python", "python", "gone")]
        + repeated("java", "csharp", "split-1", set())
        + [pair("csharp", "python", "c", "failed")]
    )
    after_tests = [pair("java", "python", "a", "failed"), pair("java", "python", "b"), pair("python", "python", "new")]
    after_tests += repeated("java", "csharp", "split-1", {2}) + [pair("csharp", "python", "c", "failed")]
    after = results(after_tests, created="2026-11-27T11:00:00+00:00")
    after["provenance"] = provenance(impls={"python": state("changed")})
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "results.json").write_text(json.dumps(before))
    older = results([], created="2026-11-01T00:00:00+00:00")
    (tmp_path / "older.json").write_text(json.dumps(older))
    document, where = load_baseline(tmp_path)  # a folder: the newest by recorded time
    assert where == tmp_path / "old" / "results.json"
    assert finalize(after, baseline=tmp_path) is True
    result = after["diff"]
    kinds = {entry["cell"].split("[", 1)[1]: entry["kind"] for entry in result["cells"]}
    assert kinds == {
        "java-client->python-server[a]]": "newly failing",
        "java-client->python-server[b]]": "newly passing",
        "java-client->[split-1]->csharp-server]": "newly flaky",
        "csharp-client->python-server[c]]": "still failing",
        "python-client->python-server[new]]": "new",
        "python-client->python-server[gone]]": "removed",
    }
    assert result["counts"]["newly failing"] == 1 and len(result["unexpected"]) == 2
    flipped = {e["cell"].split("[", 1)[1]: e for e in result["cells"] if "blame" in e}
    assert flipped["java-client->python-server[a]]"]["blame"] == ["server's folder x/: python-tree -> changed"]
    assert flipped["java-client->[split-1]->csharp-server]"]["blame"] == [STABLE]
    assert flipped["java-client->[split-1]->csharp-server]"]["after"] == "flaky 1/5"
    # no newly failing or flaky cell: the gate itself passes (a still-failing cell is the ledger's business)
    calm = results([pair("java", "python", "a"), pair("csharp", "python", "c", "failed")])
    assert finalize(calm, baseline=tmp_path / "old" / "results.json") is False
    # every report shows it; summary.md leads with the unexpected changes
    markdown = render_markdown(after)
    assert markdown.startswith("### ❌ 2 unexpected change(s) against the baseline run 2026-11-27T10:00:00")
    head = markdown.split("\n## ")[0]
    assert "newly failing" in head and "server's folder x/" in head and "newly passing" not in head
    assert "newly passing" in render_html(after) and "flaky or environmental" in render_html(after)
    assert any("NEWLY FAILING" in line for line in terminal_lines(after, 10))
    assert render_markdown(calm).startswith("### ✅ No unexpected changes")


# ---------------------------------------------------------------- history


def test_history_strips_and_ledger_proposals(tmp_path) -> None:
    always = pair("csharp", "java", "x", "failed")
    for day in range(1, 5):
        run = results(
            [pair("java", "python", "a", "failed" if day == 2 else "passed"), always, pair("java", "java", "l")],
            created=f"2026-11-0{day}T00:00:00+00:00",
        )
        run["cells"] = group_cells(run["tests"])
        append_history(tmp_path, run)
    (tmp_path / "junk.json").write_text("{")
    current = results(
        [pair("java", "python", "a"), always, pair("java", "java", "l")], created="2026-11-05T00:00:00+00:00"
    )
    current["ledger"]["entries"] = [
        {"test": f"{PAIR}[java-client->java-server[l]]", "reason": "r", "link": "https://x/1", "expires": "2999-01-01"}
    ]
    finalize(current, history=tmp_path, window=4)
    records = load_history(tmp_path, 10)
    assert len(records) == 5 and len(load_history(tmp_path, 4)) == 4
    view = current["history"]
    assert view["window"] == 4 and view["stable"] == 1
    strips = {cell.split("[", 1)[1]: codes for cell, codes in view["strips"].items()}
    assert strips["java-client->python-server[a]]"] == ["f", "p", "p", "p"]  # the last 4 of 5 runs
    assert (
        strips["java-client->python-server[a]]"][-1] == "p"
        and view["rates"][f"{PAIR}[java-client->python-server[a]]"] == 0.75
    )
    assert strips["csharp-client->java-server[x]]"] == ["f"] * 4
    [add] = view["proposals"]["add"]
    assert add["test"] == f"{PAIR}[csharp-client->java-server[x]]"
    assert add["expires"] == (datetime.date.today() + datetime.timedelta(days=30)).isoformat()
    assert [r["test"] for r in view["proposals"]["remove"]] == [f"{PAIR}[java-client->java-server[l]]"]
    page = render_html(current)
    assert page.count("<i class=q-f") >= 5 and "75%" in page and "[[failure]]" in page
    assert "<div class=strip>" in page  # every grid box has its strip too
    assert "Proposed ledger changes" in render_markdown(current)
    assert view == history_view(load_history(tmp_path, 4), current)  # a pure function of the folder


# ---------------------------------------------------------------- shards and merge


def big_run() -> dict:
    tests = [
        pair(c, s, v, "failed" if (c, s, v) == ("java", "csharp", "v2") else "passed")
        for c in NAMES
        for s in NAMES
        for v in ("v1", "v2", "v3")
    ]
    tests += [record(f"tests/matrix/test_server.py::test_port_0[{s}-server]", server=s) for s in NAMES]
    tests += [record(f"tests/matrix/test_client.py::test_reset[{c}-client]", client=c) for c in NAMES]
    tests += [record(f"tests/matrix/test_vectors.py::test_transducer_alone[{i}[v1]]", implementation=i) for i in NAMES]
    tests += repeated("java", "csharp", "split-1", {1}) + [record("tests/unit/test_table.py::test_table")]
    return results(sorted(tests, key=lambda t: t["nodeid"]))


def test_shards_are_deterministic_disjoint_and_keep_a_server_together() -> None:
    assert parse_shard("2/3") == (2, 3)
    for bad in ("0/2", "3/2", "x", "1/0"):
        with pytest.raises(ValueError):
            parse_shard(bad)
    tests = big_run()["tests"]
    shuffled = tests[:]
    random.Random(7).shuffle(shuffled)
    for count in (1, 2, 3, 4):
        parts = [split(tests, k, count)[0] for k in range(1, count + 1)]
        again = [split(shuffled, k, count)[0] for k in range(1, count + 1)]
        assert [sorted(r["nodeid"] for r in p) for p in parts] == [sorted(r["nodeid"] for r in p) for p in again]
        assert sorted(r["nodeid"] for p in parts for r in p) == sorted(r["nodeid"] for r in tests)
        for server in NAMES:
            holders = {i for i, p in enumerate(parts) if any(r.get("server") == server for r in p)}
            assert len(holders) == 1, (count, server)
    assert assign({"a": 5, "b": 5, "c": 1}, 2) == {"a": 1, "b": 2, "c": 1}


def test_merged_shards_equal_the_unsharded_run_cell_for_cell(tmp_path) -> None:
    whole = big_run()
    parts = []
    for k in (1, 2, 3):
        part = copy.deepcopy(whole)
        part["tests"] = split(whole["tests"], k, 3)[0]
        part["shard"] = f"{k}/3"
        part["exit_status"] = (
            1 if any(t["outcome"] == "failed" for t in part["tests"]) else (5 if not part["tests"] else 0)
        )
        parts.append(part)
    merged = merge_results(parts)
    finalize(merged)
    finalize(whole)
    assert merged["cells"] == whole["cells"] and merged["tests"] == whole["tests"]
    assert merged["exit_status"] == 1 and merged["shards"] == ["1/3", "2/3", "3/3"]
    with pytest.raises(MergeError):
        merge_results([parts[0], parts[0]])
    other = copy.deepcopy(parts[1])
    other["provenance"]["harness"]["fingerprint"] = "different"
    with pytest.raises(MergeError):
        merge_results([parts[0], other])
    # the command line: one report, one diff, one history record
    for k, part in enumerate(parts, 1):
        (tmp_path / f"s{k}").mkdir()
        (tmp_path / f"s{k}" / "results.json").write_text(json.dumps(part))
    (tmp_path / "base.json").write_text(json.dumps(whole))
    command = [sys.executable, "-m", "harness.reports.merge", str(tmp_path / "out")]
    command += [str(tmp_path / f"s{k}") for k in (1, 2, 3)]
    command += ["--baseline", str(tmp_path / "base.json"), "--history", str(tmp_path / "hist")]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr  # a failing cell in a shard fails the merged run
    assert "java-client" in result.stdout and "unchanged" in result.stdout
    out = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [c["cell"] for c in out["cells"]] == [c["cell"] for c in whole["cells"]]
    assert len(list((tmp_path / "hist").glob("*.json"))) == 1
    for name in ("report.html", "summary.md", "junit.xml"):
        assert (tmp_path / "out" / name).exists()
    assert (
        "--baseline"
        in subprocess.run(
            [sys.executable, "-m", "harness.reports.merge", "--help"], cwd=REPO, capture_output=True, text=True
        ).stdout
    )


@pytest.mark.slow
def test_two_real_shards_merge_to_the_unsharded_run(tmp_path) -> None:
    """One small real selection, unsharded and as 2 shards: the same cells, outcome for outcome."""
    selection = [
        "tests/matrix/test_vectors.py",
        "-k",
        "python and (sharp or ascii) and not turkish",
        "-p",
        "no:cacheprovider",
    ]
    registry = tmp_path / "registry.toml"
    registry.write_text(
        f'[python]\nfolder = "{REPO / "python"}"\nneeds = ["python3"]\nversion_command = ["python3", "-V"]\n'
    )

    def run(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "pytest", *selection, "--registry", str(registry), "-n", "0", "-q", *extra],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )

    whole = run("--report-dir", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stdout[-2000:]
    for k in (1, 2):
        shard = run("--shard", f"{k}/2", "--report-dir", str(tmp_path / f"s{k}"))
        assert shard.returncode == 0, shard.stdout[-2000:]
    merge = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.reports.merge",
            str(tmp_path / "m"),
            str(tmp_path / "s1"),
            str(tmp_path / "s2"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert merge.returncode == 0, merge.stderr
    one = json.loads((tmp_path / "whole" / "results.json").read_text())
    merged = json.loads((tmp_path / "m" / "results.json").read_text())
    shards = [json.loads((tmp_path / f"s{k}" / "results.json").read_text()) for k in (1, 2)]
    assert all(s["tests"] for s in shards), "both shards should have tests for this selection"
    assert merged["cells"] == one["cells"] and len(one["cells"]) == sum(len(s["cells"]) for s in shards)
    assert re.search(r"python", json.dumps(one["provenance"]["implementations"]["python"]["runtime"]))
