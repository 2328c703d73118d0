"""The matrix's run-wide part, a plugin registered from tests/conftest.py so that its options work whichever
folder pytest is pointed at: which registry and backend, and the session id that names shared containers.
"""

from __future__ import annotations

import resource
import signal
import uuid
from pathlib import Path

import pytest

from ..registry import Implementation, RegistryError, load_registries

SESSION_ID = pytest.StashKey[str]()
_implementations: dict[str, Implementation] = load_registries()


def implementations(role: str | None = None) -> dict[str, Implementation]:
    """The registered implementations of this run (--registry may replace implementations.toml); with a
    role ("client" or "server"), only those that provide it."""
    return {name: impl for name, impl in _implementations.items() if role is None or impl.plays(role)}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("upper-echo matrix")
    group.addoption(
        "--backend",
        choices=["local", "docker"],
        default="local",
        help="where implementations run: 'local' processes (default: needs no Docker) or 'docker' "
        "containers on a private network made for the session",
    )
    group.addoption(
        "--docker-network",
        metavar="NAME",
        help="docker backend: use this existing network instead of making one for the session",
    )
    group.addoption(
        "--compose-servers",
        action="store_true",
        help="docker backend: test the servers of the compose services (implementations.toml "
        "`service`) running on --docker-network instead of starting them",
    )
    group.addoption(
        "--registry",
        action="append",
        type=Path,
        metavar="PATH",
        help="read implementations from this registry instead of implementations.toml; repeat to "
        "combine several (tests/mutants/mutants.toml registers the deliberately broken ones)",
    )


def pytest_configure(config: pytest.Config) -> None:
    global _implementations
    if config.getoption("--registry"):
        try:
            _implementations = load_registries(config.getoption("--registry"))
        except RegistryError as error:
            raise pytest.UsageError(str(error)) from None
    # Hundreds of test connections at once (S-1) need more than a small default limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # One id per run, made by the controller and handed to xdist workers: shared containers are named by it.
    workerinput = getattr(config, "workerinput", None)
    config.stash[SESSION_ID] = workerinput["upper_echo_session"] if workerinput else uuid.uuid4().hex[:10]
    if workerinput is None and config.getoption("--backend") == "docker":
        # A CI job cancelled with SIGTERM must still reach pytest_unconfigure and remove the containers.
        signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    node.workerinput["upper_echo_session"] = node.config.stash[SESSION_ID]


def pytest_unconfigure(config: pytest.Config) -> None:
    # The controller (or a run without xdist) removes the session's containers, whatever the outcome.
    if config.getoption("--backend") == "docker" and not hasattr(config, "workerinput"):
        from ..backends.docker import remove_session

        remove_session(config.stash[SESSION_ID])


def pytest_report_header(config: pytest.Config) -> list[str]:
    names = ", ".join(_implementations)
    return [
        f"upper-echo backend: {config.getoption('--backend')}; implementations: {names}"
        + ("; --require-all" if config.getoption("--require-all") else "")
    ]
