"""The registry (spec I-2): its reader's checks, its command line, and the Dockerfiles agreeing with it."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from harness import REPO
from harness.registry import RegistryError, load_registries, load_registry, parse_registry

REGISTERED = load_registry()
APT_INSTALL = re.compile(r"\bapt-get\s+install\b(?P<arguments>[^&;|]*)")


def apt_packages(dockerfile: Path) -> set[str]:
    """Every package an `apt-get install` of the Dockerfile names, in any stage."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text(encoding="utf-8"))  # join continuation lines
    packages: set[str] = set()
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        for match in APT_INSTALL.finditer(line):
            words = [word for word in shlex.split(match["arguments"]) if not word.startswith("-")]
            assert all("$" not in word for word in words), f"{dockerfile}: a package named by a variable: {words}"
            packages.update(words)
    return packages


@pytest.mark.clause("I-2")
@pytest.mark.parametrize("name", [name for name, impl in REGISTERED.items() if (impl.folder / "Dockerfile").exists()])
def test_dockerfile_installs_exactly_the_registered_debian_packages(name: str) -> None:
    implementation = REGISTERED[name]
    dockerfile = implementation.folder / "Dockerfile"
    installed, registered = apt_packages(dockerfile), set(implementation.debian_packages)
    assert installed == registered, (
        f"{dockerfile.relative_to(REPO)} installs {sorted(installed)}, implementations.toml [{name}] "
        f"debian_packages lists {sorted(registered)}: only in the Dockerfile {sorted(installed - registered)}, "
        f"only in the registry {sorted(registered - installed)}"
    )


def test_apt_packages_reads_every_stage(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "FROM a AS build\n# RUN apt-get install commented-out\n"
        "RUN apt-get update \\\n && apt-get install -y --no-install-recommends one \\\n      two \\\n"
        " && rm -rf /var/lib/apt/lists/*\nFROM a\nRUN apt-get install -y three; echo done\n"
    )
    assert apt_packages(dockerfile) == {"one", "two", "three"}


@pytest.mark.clause("I-2")
@pytest.mark.parametrize(
    "entry,complaint",
    [
        ('needs = ["x"]', "key 'folder' is required"),
        ('folder = "python"\nimgae = "x"', "unknown key 'imgae'"),
        ('folder = "python"\nneeds = "python3"', "key 'needs' must be a list of command names"),
        ('folder = "python"\nhost_port = "7001"', "key 'host_port' must be a TCP port number"),
        ('folder = "python"\nhost_port = true', "key 'host_port' must be a TCP port number"),
        ('folder = "python"\nrole = "peer"', "key 'role' must be one of 'client', 'server', 'both'"),
        ('folder = "python"\nturkish_env = { A = 1 }', "key 'turkish_env' must be a table"),
        ('folder = "python"\nversion_command = "python3 -V"', "key 'version_command' must be a command"),
    ],
    ids=[
        "no-folder",
        "unknown-key",
        "needs-not-a-list",
        "port-a-string",
        "port-a-bool",
        "unknown-role",
        "env-not-text",
        "version-command-a-string",
    ],
)
def test_a_bad_entry_names_the_file_the_entry_and_the_key(entry: str, complaint: str) -> None:
    with pytest.raises(RegistryError) as error:
        parse_registry(f"[broken]\n{entry}\n", REPO / "extra.toml")
    assert str(error.value).startswith("extra.toml: [broken]: ") and complaint in str(error.value)


def test_role_defaults_to_both_and_limits_what_an_entry_plays() -> None:
    registry = parse_registry('[a]\nfolder = "python"\n[b]\nfolder = "python"\nrole = "client"\n', REPO / "r.toml")
    assert registry["a"].role == "both" and registry["a"].plays("client") and registry["a"].plays("server")
    assert registry["b"].plays("client") and not registry["b"].plays("server") and registry["b"].image is None
    assert registry["b"].folder == REPO / "python"


def test_a_name_registered_twice_across_files_is_an_error(tmp_path: Path) -> None:
    extra = tmp_path / "extra.toml"
    extra.write_text(f'[python]\nfolder = "{REPO / "python"}"\n', encoding="utf-8")
    with pytest.raises(RegistryError, match=r"\[python\] is registered already in implementations.toml"):
        load_registries([REPO / "implementations.toml", extra])


def test_command_line_for_shell_scripts() -> None:
    def registry(*args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "harness.registry", *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout

    assert registry("names").split() == list(REGISTERED)
    assert registry("values", "host_port", "--role", "server").split() == [
        str(impl.host_port) for impl in REGISTERED.values() if impl.is_server
    ]
    assert set(registry("debian-packages").split()) == {p for i in REGISTERED.values() for p in i.debian_packages}
    setups = registry("system-setup").split()
    assert setups == [str(i.folder / i.system_setup) for i in REGISTERED.values() if i.system_setup]
    assert setups and all(os.access(setup, os.X_OK) for setup in setups)  # install-deps runs each one as is
    assert registry("field", "java", "needs").split() == list(REGISTERED["java"].needs)
