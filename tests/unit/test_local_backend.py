"""The local backend's own duties, with a stand-in implementation (a shell script) instead of a real one."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness.backends.local import LocalBackend
from harness.registry import Implementation

from .processes import ended_within


def stand_in(tmp_path: Path, script: str) -> Implementation:
    """An implementation whose bin/upper-echo is `script` (POSIX sh)."""
    launcher = tmp_path / "stand-in" / "bin" / "upper-echo"
    launcher.parent.mkdir(parents=True)
    launcher.write_text(f"#!/bin/sh\n{script}\n")
    launcher.chmod(0o755)
    return Implementation(name="stand-in", folder=launcher.parent.parent)


@pytest.mark.parametrize("streams", [None, "nonblocking"])
def test_a_timeout_leaves_none_of_the_commands_processes_running(tmp_path: Path, streams: str | None) -> None:
    """A command that outlives its timeout is killed with everything it started: with `streams` it is a
    pipeline under sh, and here it also has a background child of its own."""
    pid_file = tmp_path / "background.pid"
    implementation = stand_in(tmp_path, f'sleep 60 & echo $! > "{pid_file}"; wait')
    backend = LocalBackend(tmp_path, tmp_path)
    with pytest.raises(subprocess.TimeoutExpired):
        backend.run(implementation, "client", timeout=2, streams=streams)
    background = int(pid_file.read_text())
    assert ended_within(background, 5), f"the command's child {background} outlived the timeout"
