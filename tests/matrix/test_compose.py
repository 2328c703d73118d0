"""docker-compose.yml is derived from the registry (I-2): adding a language needs no hand edit there."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness import REPO


@pytest.mark.clause("I-2")
def test_compose_file_matches_the_registry() -> None:
    generated = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen-compose"), "--output", "-"],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    committed = (REPO / "docker-compose.yml").read_text()
    assert committed == generated, "docker-compose.yml is stale: run scripts/gen-compose"
