"""Suite power: the matrix must catch every deliberately broken implementation of tests/mutants/mutants.toml.

Each mutant runs in its own `pytest tests/matrix` subprocesses with a registry of two entries (the mutant, and the
Python reference as its counterpart). First a sanity selection: the mutant must build, start and (a server) serve
the basic vectors, all passing, or it scores nothing. Then a uniform selection for its role: a server mutant as
server (vectors from the Python client, raw-socket server conformance, differential fuzzing, network conditions),
a client mutant as client (fake servers, vectors against the Python server, network conditions, replays). A mutant
is caught when a test of that selection fails; the run stops after MAXFAIL failures, which name the catching
tests. Mutants mostly wait on sockets, so several run at once. With --report-dir, the score goes to
DIR/mutation.json and into report.html and summary.md.
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

from harness.registry import load_registry

HERE = Path(__file__).parent
REPO = HERE.parents[1]
MUTANTS = tomllib.loads((HERE / "mutants.toml").read_text(encoding="utf-8"))  # the catalogue, not a registry
COUNTERPART = "python"
MAXFAIL = 3
TIMEOUT = 420  # seconds per mutant; a run that hangs past it is reported, not counted as caught
JOBS = int(os.environ.get("UPPER_ECHO_MUTANT_JOBS", "4"))
# role -> (test files, -k expression); {m} is the mutant's name. A mutant must first pass SANITY (it builds,
# starts, and a server serves the basic vectors), so that one that merely crashes scores nothing. A mutant whose
# bug is on that very path names its own basic check in mutants.toml (`sanity`, a -k expression).
SANITY = {
    "server": (
        ["tests/matrix/test_contract.py", "tests/matrix/test_vectors.py", "tests/matrix/test_server.py"],
        "{m} and not {m}-client and (test_folder or test_upper_echo_execs or test_server_alone and "
        "(hello-world or many-lines))",
    ),
    "client": (
        ["tests/matrix/test_cli.py", "tests/matrix/test_client.py"],
        "{m} and (test_help_goes_to_stdout or test_connection_refused)",
    ),
}
SELECTION = {
    "server": (
        [
            "tests/matrix/test_vectors.py",
            "tests/matrix/test_server.py",
            "tests/matrix/test_fuzz.py",
            "tests/matrix/test_conditions.py",
            "tests/matrix/test_hostile.py",
        ],
        "{m}-server and not {m}-client and not 256_mib",
    ),
    "client": (
        [
            "tests/matrix/test_client.py",
            "tests/matrix/test_vectors.py",
            "tests/matrix/test_conditions.py",
            "tests/matrix/test_replays.py",
        ],
        "{m}-client and not {m}-server",
    ),
}
SCORE_KEY = pytest.StashKey[dict]()


def registry_text(name: str, entry: dict) -> str:
    """A registry of two: the mutant, and the reference (harness.registry's entry) as its counterpart."""
    reference = load_registry()[COUNTERPART]
    return (
        f"[{COUNTERPART}]\nfolder = {json.dumps(str(reference.folder))}\nneeds = {json.dumps(list(reference.needs))}\n"
        f"[{name}]\nfolder = {json.dumps(str(HERE / entry['folder']))}\nneeds = {json.dumps(entry['needs'])}\n"
        f"role = {json.dumps(entry['role'])}\n"
    )


def run_selection(registry: Path, files: list[str], keyword: str, report_dir: Path, log: Path) -> tuple[list, bool]:
    """`pytest FILES -k KEYWORD` on the registry: (its test records, whether it hung past TIMEOUT)."""
    command = [
        *(sys.executable, "-m", "pytest", *files, "--registry", str(registry), "-k", keyword),
        *(f"--maxfail={MAXFAIL}", "--report-dir", str(report_dir), "-n", "0", "-p", "no:cacheprovider", "-q"),
    ]
    with open(log, "wb") as output:
        output.write(f"$ {' '.join(command)}\n".encode())
        output.flush()
        process = subprocess.Popen(command, cwd=REPO, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            process.wait(TIMEOUT)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            timed_out = True
    results_file = report_dir / "results.json"
    tests = json.loads(results_file.read_text(encoding="utf-8"))["tests"] if results_file.exists() else []
    return tests, timed_out


def run_mutant(name: str, work: Path) -> dict:
    entry = MUTANTS[name]
    registry = work / f"{name}.toml"
    registry.write_text(registry_text(name, entry), encoding="utf-8")
    started = time.monotonic()
    files, keyword = SANITY[entry["role"]]
    keyword = entry.get("sanity", keyword)
    sane_tests, sanity_hung = run_selection(
        registry, files, keyword.format(m=name), work / f"{name}-sanity", work / f"{name}-sanity.log"
    )
    sane = bool(sane_tests) and not sanity_hung and all(t["outcome"] == "passed" for t in sane_tests)
    tests, timed_out = [], False
    if sane:
        files, keyword = SELECTION[entry["role"]]
        tests, timed_out = run_selection(registry, files, keyword.format(m=name), work / name, work / f"{name}.log")
    return {
        "name": name,
        "role": entry["role"],
        "breaks": entry["breaks"],
        "sane": sane,
        "caught": sane and any(t["outcome"] == "failed" for t in tests),
        "caught_by": [t["nodeid"].split("::", 1)[1] for t in tests if t["outcome"] == "failed"],
        "errors": [t["nodeid"] for t in tests if t["outcome"] == "error"],
        "ran": len(tests),
        "seconds": round(time.monotonic() - started, 1),
        "timed_out": timed_out,
        "log": str(work / (f"{name}.log" if sane else f"{name}-sanity.log")),
    }


@pytest.fixture(scope="session")
def mutation(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("mutants")
    # only the mutants this run selected (`-k swallow`), all of them by default
    selected = [item.callspec.params["name"] for item in request.session.items if hasattr(item, "callspec")]
    with ThreadPoolExecutor(JOBS) as pool:
        runs = list(pool.map(lambda name: run_mutant(name, work), selected))
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
    assert run["sane"], f"{name}: failed its sanity selection (it must build, start and serve the basics)\n{log_tail}"
    assert not run["timed_out"], f"{name}: the matrix run hung past {TIMEOUT} s\n{log_tail}"
    assert run["ran"], f"{name}: no test ran\n{log_tail}"
    assert run["caught"], f"{name} SURVIVED ({run['breaks']}): {run['ran']} tests passed against it\n{log_tail}"


def test_mutants_are_registered_only_in_their_own_registry() -> None:
    assert not set(load_registry()) & set(MUTANTS)
    sys.path.insert(0, str(HERE))
    from mutate import MUTANTS as PATCHES

    patched = {name for name, entry in MUTANTS.items() if (HERE / entry["folder"] / "mutation.patch").exists()}
    assert set(PATCHES) == set(MUTANTS) - patched, "mutate.py and mutants.toml must list the same Python mutants"
    for name, entry in MUTANTS.items():
        assert {"folder", "needs", "role", "breaks"} <= set(entry) <= {"folder", "needs", "role", "breaks", "sanity"}, (
            f"{name}: no other keys (no faked fields)"
        )
        assert entry["role"] in SELECTION and entry["breaks"], name
        assert (HERE / entry["folder"] / "bin" / "upper-echo").exists(), name
