"""scripts/bisect-cell: git bisect with one cell as the test, in a throwaway repository with six commits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import REPO

SCRIPT = REPO / "scripts" / "bisect-cell"
NODEID = "test_cell.py::test_cell[python-client->python-server]"
TEST = """import pytest
from pathlib import Path

@pytest.mark.parametrize("x", [1], ids=["python-client->python-server"])
def test_cell(x):
    assert Path("python/value").read_text().strip() == "good"
"""


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@localhost"
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env).stdout


@pytest.mark.slow
def test_bisect_finds_the_commit_that_broke_the_cell_and_skips_unbuildable_ones(tmp_path) -> None:
    repo = tmp_path / "repo"
    (repo / "python" / "bin").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "test_cell.py").write_text(TEST)
    (repo / "python" / "bin" / "upper-echo").write_text("#!/bin/sh\n")
    build = repo / "python" / "bin" / "build"
    commits = []
    for number, (value, builds) in enumerate(
        [("good", True), ("good", True), ("good", False), ("good", True), ("bad", True), ("bad", True)], 1
    ):
        (repo / "python" / "value").write_text(value + "\n")
        build.write_text("#!/bin/sh\nexit 0\n" if builds else "#!/bin/sh\necho broken >&2\nexit 1\n")
        build.chmod(0o755)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "--allow-empty", "-m", f"commit {number}: {value}{'' if builds else ', unbuildable'}")
        commits.append(git(repo, "rev-parse", "HEAD").strip())
    result = subprocess.run(
        [sys.executable, str(SCRIPT), NODEID, commits[0], commits[-1]],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{commits[4]} is the first bad commit" in result.stdout
    # commit 3 cannot be built: if bisect's path visits it (git's midpoint choice varies), it is skipped
    assert commits[2] not in result.stdout or f"# skip: [{commits[2]}]" in result.stdout, result.stdout
    assert git(repo, "worktree", "list").count("\n") == 1 and git(repo, "rev-parse", "HEAD").strip() == commits[-1]


def test_help() -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "NODEID" in result.stdout and "GOOD" in result.stdout
