"""Suite power: the matrix must catch every deliberately broken implementation of tests/mutants/mutants.toml.

Each mutant runs in its own `pytest tests/matrix` subprocess with a registry of two entries (the mutant and the
Python reference as its counterpart) and a uniform selection for its role: a server mutant as server (vectors
from the Python client, raw-socket server conformance, differential fuzzing), a client mutant as client (fake
servers, vectors against the Python server). A mutant is caught when a test fails against it; the run stops
after MAXFAIL failures, which name the catching tests. Mutants mostly wait on sockets, so several run at once.
With --report-dir, the score goes to DIR/mutation.json and into report.html and summary.md.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

HERE = Path(__file__).parent
REPO = HERE.parents[1]
MUTANTS = tomllib.loads((HERE / "mutants.toml").read_text(encoding="utf-8"))
COUNTERPART = "python"
MAXFAIL = 3
TIMEOUT = 420  # seconds per mutant; a run that hangs past it is reported, not counted as caught
JOBS = int(os.environ.get("UPPER_ECHO_MUTANT_JOBS", "4"))
SELECTION = {  # role -> (test files, -k expression); {m} is the mutant's name
    "server": (
        ["tests/matrix/test_vectors.py", "tests/matrix/test_server.py", "tests/matrix/test_fuzz.py"],
        "{m}-server and not {m}-client and not 256_mib",
    ),
    "client": (["tests/matrix/test_client.py", "tests/matrix/test_vectors.py"], "{m}-client and not {m}-server"),
}
SCORE_KEY = pytest.StashKey[dict]()


def toml_entry(name: str, entry: dict, folder: Path) -> str:
    lines = [f"[{name}]", f"folder = {json.dumps(str(folder))}"]
    lines += [f"{key} = {json.dumps(entry[key])}" for key in ("needs", "image", "service") if key in entry]
    return "\n".join(lines) + "\n"


def run_mutant(name: str, work: Path) -> dict:
    entry = MUTANTS[name]
    reference = tomllib.loads((REPO / "implementations.toml").read_text(encoding="utf-8"))[COUNTERPART]
    registry = work / f"{name}.toml"
    registry.write_text(
        toml_entry(COUNTERPART, reference, REPO / reference["folder"])
        + toml_entry(name, entry, HERE / entry["folder"]),
        encoding="utf-8",
    )
    files, keyword = SELECTION[entry["role"]]
    report_dir = work / name
    command = [
        sys.executable,
        "-m",
        "pytest",
        *files,
        "--registry",
        str(registry),
        "-k",
        keyword.format(m=name),
        f"--maxfail={MAXFAIL}",
        "--report-dir",
        str(report_dir),
        "-n",
        "0",
        "-p",
        "no:cacheprovider",
        "-q",
    ]
    started = time.monotonic()
    with open(work / f"{name}.log", "wb") as log:
        process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            process.wait(TIMEOUT)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            timed_out = True
    results_file = report_dir / "results.json"
    tests = json.loads(results_file.read_text(encoding="utf-8"))["tests"] if results_file.exists() else []
    return {
        "name": name,
        "role": entry["role"],
        "breaks": entry["breaks"],
        "caught": any(t["outcome"] == "failed" for t in tests),
        "caught_by": [t["nodeid"].split("::", 1)[1] for t in tests if t["outcome"] == "failed"],
        "errors": [t["nodeid"] for t in tests if t["outcome"] == "error"],
        "ran": len(tests),
        "seconds": round(time.monotonic() - started, 1),
        "timed_out": timed_out,
        "command": " ".join(command),
        "log": str(work / f"{name}.log"),
    }


@pytest.fixture(scope="session")
def mutation(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("mutants")
    with ThreadPoolExecutor(JOBS) as pool:
        runs = list(pool.map(lambda name: run_mutant(name, work), MUTANTS))
    score = {
        "format": "upper-echo-mutation/1",
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "caught": sum(run["caught"] for run in runs),
        "total": len(runs),
        "maxfail": MAXFAIL,
        "mutants": runs,
    }
    request.config.stash[SCORE_KEY] = score
    report_dir = request.config.getoption("--report-dir")
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        (report_dir / "mutation.json").write_text(json.dumps(score, indent=1), encoding="utf-8")
    return {run["name"]: run for run in runs}


@pytest.mark.parametrize("name", list(MUTANTS))
def test_mutant_is_caught(mutation, name: str) -> None:
    run = mutation[name]
    log_tail = Path(run["log"]).read_text(errors="replace")[-3000:]
    assert not run["timed_out"], f"{name}: the matrix run hung past {TIMEOUT} s\n{log_tail}"
    assert run["ran"], f"{name}: no test ran: {run['command']}\n{log_tail}"
    assert run["caught"], f"{name} SURVIVED ({run['breaks']}): {run['ran']} tests passed against it\n{log_tail}"


def test_mutants_are_registered_only_in_their_own_registry() -> None:
    main = tomllib.loads((REPO / "implementations.toml").read_text(encoding="utf-8"))
    assert not set(main) & set(MUTANTS)
    sys.path.insert(0, str(HERE))
    from mutate import MUTANTS as PATCHES

    assert set(PATCHES) == set(MUTANTS), "mutate.py and mutants.toml must list the same mutants"
    for name, entry in MUTANTS.items():
        assert entry["role"] in SELECTION and entry["breaks"], name
        assert (HERE / entry["folder"] / "bin" / "upper-echo").exists(), name
