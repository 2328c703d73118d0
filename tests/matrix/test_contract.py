"""How an implementation plugs in (spec section 8): the folder, its two commands and the registry entry."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.registry import REGISTRY, load_registry

SHELLS = {"sh", "bash", "dash"}


def snapshot(folder: Path) -> dict[str, float]:
    return {str(path): path.stat().st_mtime for path in folder.rglob("*") if path.is_file()}


@pytest.mark.clause("I-1")
def test_folder_has_executable_build_and_upper_echo(implementation) -> None:
    for command in (implementation.build_command[0], implementation.command[0]):
        assert os.access(command, os.X_OK), f"{command} is not an executable file"


@pytest.mark.clause("I-1")
def test_build_is_idempotent(backend, implementation) -> None:
    before = snapshot(implementation.folder)  # the autouse fixture has built it already
    backend.build(implementation)
    assert snapshot(implementation.folder) == before, "a second bin/build changed files"


@pytest.mark.clause("I-1", "S-4")
def test_upper_echo_execs_the_runtime(servers, server) -> None:
    comm = servers.get(server).process_name()
    assert comm not in SHELLS, f"bin/upper-echo left a {comm} process in front of the server: signals miss it"


@pytest.mark.clause("I-2")
def test_registry_entries_are_complete() -> None:
    raw = REGISTRY.read_text(encoding="utf-8")
    for name, implementation in load_registry().items():
        assert implementation.folder.is_dir(), f"{name}: folder {implementation.folder} missing"
        assert implementation.needs, f"{name}: `needs` must name the toolchain's commands"
        assert implementation.image, f"{name}: `image` (the docker backend and compose run it)"
        if implementation.is_server:
            assert implementation.service and implementation.service.endswith("-server"), name
            assert implementation.host_port, f"{name}: `host_port` (compose publishes the server there)"
        assert f"[{name}]" in raw
