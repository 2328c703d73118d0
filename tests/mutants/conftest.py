"""The mutant meta-test is slow (it runs the matrix once per mutant): `pytest tests` leaves it out, and it runs
only when asked for by path, e.g. `pytest tests/mutants` (the CI gate does, as its own step)."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path.name != "test_mutants.py":
        return None
    asked = any(
        (config.invocation_params.dir / arg.split("::")[0]).resolve().is_relative_to(HERE) for arg in config.args
    )
    return None if asked else True


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    from .test_mutants import SCORE_KEY

    score = config.stash.get(SCORE_KEY, None)
    if score is None:
        return
    terminalreporter.section(f"mutation score {score['caught']}/{score['total']}")
    for mutant in score["mutants"]:
        verdict = "caught" if mutant["caught"] else "SURVIVED"
        terminalreporter.write_line(
            f"{mutant['name']:<18} {mutant['role']:<6} {verdict:<8} "
            f"{mutant['seconds']:>5.0f} s  by {', '.join(mutant['caught_by']) or '-'}"
        )
