"""Provenance: what a run tested, so that two runs can be compared and a flipped cell blamed on what changed.

For each implementation: the git tree hash of its folder (`git rev-parse HEAD:folder`), whether the folder
has uncommitted changes and then a content hash of it (tracked and untracked-not-ignored files), its
runtime's version (the registry's `version_command`, first line of its output) and, in the docker backend,
its image id. The same folder state for the harness (harness/, tests/, spec/), plus pytest and plugin
versions, the kernel and the core count. Each state has a `fingerprint`: the tree hash when clean, else
`dirty:<content hash>`.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import subprocess
import sys
from pathlib import Path

from .. import REPO

HARNESS_PARTS = ("harness", "tests", "spec")
VERSION_TIMEOUT = 20.0


def _git(*args: str, cwd: Path = REPO) -> str | None:
    try:
        result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.decode("utf-8", "surrogateescape") if result.returncode == 0 else None


def content_hash(folder: Path, top: Path | None) -> str:
    """sha256 over the folder's files (path and bytes): git's tracked and untracked-not-ignored files when
    the folder is in a work tree, else every file under it."""
    digest = hashlib.sha256()
    if top is not None:
        listed = _git("ls-files", "-z", "-c", "-o", "--exclude-standard", "--", str(folder), cwd=top) or ""
        paths = sorted({top / name for name in listed.split("\0") if name})
    else:
        paths = sorted(path for path in folder.rglob("*") if path.is_file() or path.is_symlink())
    for path in paths:
        digest.update(str(path.relative_to(folder)).encode("utf-8", "surrogateescape") + b"\0")
        if path.is_symlink():
            digest.update(b"link:" + os.readlink(path).encode("utf-8", "surrogateescape"))
        elif path.is_file():
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        else:
            digest.update(b"(deleted)")
        digest.update(b"\0")
    return digest.hexdigest()


def folder_state(folder: Path) -> dict:
    """{"path", "tree", "dirty", "content" (when dirty), "fingerprint"} of one folder."""
    folder = Path(folder).resolve()
    top_text = _git("rev-parse", "--show-toplevel", cwd=folder) if folder.is_dir() else None
    top = Path(top_text.strip()).resolve() if top_text else None
    if top is None:
        content = content_hash(folder, None) if folder.is_dir() else "missing"
        return {"path": str(folder), "tree": None, "dirty": True, "content": content, "fingerprint": f"dirty:{content}"}
    rel = folder.relative_to(top).as_posix()
    tree = _git("rev-parse", "--verify", "-q", f"HEAD:{rel}" if rel != "." else "HEAD^{tree}", cwd=top)
    tree = tree.strip() if tree else None
    changes = _git("status", "--porcelain", "--untracked-files=all", "--", rel, cwd=top)
    state: dict = {"path": rel, "tree": tree, "dirty": bool(changes) or tree is None}
    if state["dirty"]:
        state["content"] = content_hash(folder, top)
    state["fingerprint"] = f"dirty:{state['content']}" if state["dirty"] else tree
    return state


@functools.cache
def runtime_version(command: tuple[str, ...]) -> str:
    """The first non-empty line a runtime's version command prints (stdout, else stderr: `java -version`)."""
    try:
        result = subprocess.run(list(command), capture_output=True, timeout=VERSION_TIMEOUT, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"(unavailable: {error.__class__.__name__})"
    for stream in (result.stdout, result.stderr):
        line = next((line.strip() for line in stream.decode("utf-8", "replace").splitlines() if line.strip()), "")
        if line:
            return line
    return f"(no output, exit {result.returncode})"


def image_id(image: str | None) -> str | None:
    if not image:
        return None
    try:
        import docker

        return docker.from_env(timeout=30).images.get(image).id
    except Exception:  # no engine, no image: provenance says so instead of failing the run
        return None


def implementation_provenance(implementation, backend: str) -> dict:
    state = folder_state(implementation.folder)
    command = getattr(implementation, "version_command", ()) or ()
    state["runtime"] = {"command": list(command), "version": runtime_version(tuple(command)) if command else None}
    if backend == "docker":
        state["image"] = {"name": implementation.image, "id": image_id(implementation.image)}
    return state


def harness_provenance() -> dict:
    parts = {part: folder_state(REPO / part) for part in HARNESS_PARTS}
    fingerprint = hashlib.sha256(
        "\n".join(f"{part}={state['fingerprint']}" for part, state in parts.items()).encode()
    ).hexdigest()
    head = _git("rev-parse", "HEAD")
    return {"commit": head.strip() if head else None, "parts": parts, "fingerprint": fingerprint}


def environment(plugins: dict[str, str] | None = None) -> dict:
    import pytest

    return {
        "python": sys.version.split()[0],
        "pytest": pytest.__version__,
        "plugins": dict(sorted((plugins or {}).items())),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
    }


def pytest_plugins(config) -> dict[str, str]:
    """name -> version of the installed pytest plugins this run loaded."""
    found = {}
    for _plugin, dist in config.pluginmanager.list_plugin_distinfo():
        found[dist.project_name if hasattr(dist, "project_name") else dist.metadata["name"]] = dist.version
    return found


def collect(implementations: dict, backend: str, plugins: dict[str, str] | None = None) -> dict:
    """The whole provenance block of results.json."""
    return {
        "implementations": {
            name: implementation_provenance(impl, backend) for name, impl in sorted(implementations.items())
        },
        "harness": harness_provenance(),
        "environment": environment(plugins),
    }
