"""The implementation registry, implementations.toml (spec I-2): the only way the harness knows languages,
and the only reader of that file (shell scripts ask `python3 -m harness.registry`, see --help).

Every entry is checked when read: an unknown key, a missing `folder` or a value of the wrong type is a
RegistryError naming the file, the entry and the key.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from . import REPO

REGISTRY = REPO / "implementations.toml"
ROLES = ("client", "server", "both")

# The Turkish-locale matrix case (T-5): on top of each entry's own turkish_env.
TURKISH_LOCALE = {"LANG": "tr_TR.UTF-8", "LC_ALL": "tr_TR.UTF-8"}


class RegistryError(ValueError):
    """A registry file that cannot be used: unreadable TOML, an unknown key, a missing or mistyped value."""


@dataclass(frozen=True)
class Implementation:
    name: str
    folder: Path  # absolute
    needs: tuple[str, ...] = ()
    role: str = "both"
    debian_packages: tuple[str, ...] = ()
    image: str | None = None
    service: str | None = None
    host_port: int | None = None
    turkish_env: dict[str, str] = field(default_factory=dict, hash=False)
    version_command: tuple[str, ...] = ()
    system_setup: str | None = None  # relative to folder; scripts/install-deps runs it as root after the packages

    @property
    def is_client(self) -> bool:
        return self.role in ("client", "both")

    @property
    def is_server(self) -> bool:
        return self.role in ("server", "both")

    def plays(self, role: str) -> bool:
        """Whether this implementation provides `role` ("client" or "server"; anything else: yes)."""
        return {"client": self.is_client, "server": self.is_server}.get(role, True)

    @property
    def build_command(self) -> list[str]:
        return [str(self.folder / "bin" / "build")]

    @property
    def command(self) -> list[str]:
        return [str(self.folder / "bin" / "upper-echo")]

    def missing_tools(self) -> list[str]:
        return [tool for tool in self.needs if shutil.which(tool) is None]

    def turkish_environment(self) -> dict[str, str]:
        return {**TURKISH_LOCALE, **self.turkish_env}


def _string(value: object) -> bool:
    return isinstance(value, str) and value != ""


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(_string(item) for item in value)


def _environment(value: object) -> bool:
    return isinstance(value, dict) and all(_string(k) and isinstance(v, str) for k, v in value.items())


def _port(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536


# key -> (check, what a valid value is); only `folder` is required.
KEYS = {
    "folder": (_string, "a folder path relative to the registry file"),
    "needs": (_strings, "a list of command names"),
    "role": (lambda value: value in ROLES, f"one of {', '.join(map(repr, ROLES))}"),
    "debian_packages": (_strings, "a list of Debian package names"),
    "image": (_string, "a container image name"),
    "service": (_string, "a compose service name"),
    "host_port": (_port, "a TCP port number (1-65535)"),
    "turkish_env": (_environment, "a table of environment variables (strings)"),
    "version_command": (_strings, "a command (list of strings) that prints the runtime's version"),
    "system_setup": (_string, "a program in the folder that scripts/install-deps runs as root after the packages"),
}
REQUIRED = ("folder",)


def _display(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def parse_registry(text: str, path: Path) -> dict[str, Implementation]:
    """Parse and check one registry file's text; `path` locates folders and names the file in errors."""
    source = _display(path)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise RegistryError(f"{source}: not valid TOML: {error}") from None
    found = {}
    for name, entry in document.items():
        where = f"{source}: [{name}]"
        if not isinstance(entry, dict):
            raise RegistryError(f"{where}: every top-level item must be an implementation's table, not a value")
        for key, value in entry.items():
            if key not in KEYS:
                raise RegistryError(f"{where}: unknown key {key!r} (known: {', '.join(KEYS)})")
            check, expected = KEYS[key]
            if not check(value):
                raise RegistryError(f"{where}: key {key!r} must be {expected}, not {value!r}")
        for key in REQUIRED:
            if key not in entry:
                raise RegistryError(f"{where}: key {key!r} is required ({KEYS[key][1]})")
        found[name] = Implementation(
            name=name,
            folder=(path.parent / entry["folder"]).resolve(),
            needs=tuple(entry.get("needs", ())),
            role=entry.get("role", "both"),
            debian_packages=tuple(entry.get("debian_packages", ())),
            image=entry.get("image"),
            service=entry.get("service"),
            host_port=entry.get("host_port"),
            turkish_env=dict(entry.get("turkish_env", {})),
            version_command=tuple(entry.get("version_command", ())),
            system_setup=entry.get("system_setup"),
        )
    return found


def load_registry(path: Path = REGISTRY) -> dict[str, Implementation]:
    path = Path(path).resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise RegistryError(f"{_display(path)}: cannot read the registry: {error.strerror}") from None
    return parse_registry(text, path)


def load_registries(paths: Iterable[Path] | None = None) -> dict[str, Implementation]:
    """Several registry files as one (implementations.toml when none is given); a name may appear once."""
    combined: dict[str, Implementation] = {}
    origin: dict[str, Path] = {}
    for path in paths or [REGISTRY]:
        for name, implementation in load_registry(path).items():
            if name in combined:
                raise RegistryError(
                    f"{_display(Path(path).resolve())}: [{name}] is registered already in {_display(origin[name])}"
                )
            combined[name], origin[name] = implementation, Path(path).resolve()
    return combined


# ---------------------------------------------------------------- command line, for shell scripts


def as_json(implementation: Implementation) -> dict:
    return {
        "name": implementation.name,
        "folder": str(implementation.folder),
        "needs": list(implementation.needs),
        "role": implementation.role,
        "debian_packages": list(implementation.debian_packages),
        "image": implementation.image,
        "service": implementation.service,
        "host_port": implementation.host_port,
        "turkish_env": implementation.turkish_env,
        "version_command": list(implementation.version_command),
        "system_setup": implementation.system_setup,
    }


def _shell_value(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(str(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m harness.registry",
        description="Read the implementation registry (implementations.toml, spec I-2) for shell scripts. "
        "Every entry is validated first; a bad registry exits 1 with the file, entry and key.",
    )
    parser.add_argument(
        "--registry",
        action="append",
        type=Path,
        metavar="PATH",
        help="read this registry file instead of implementations.toml (repeat to combine)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    names = commands.add_parser("names", help="the implementations' names, one a line")
    values = commands.add_parser("values", help="one key of every implementation, one a line (in registry order)")
    values.add_argument("key", choices=[*KEYS, "name"])
    for sub in (names, values):
        sub.add_argument("--role", choices=["client", "server"], help="only the implementations that provide this role")
    one = commands.add_parser("field", help="one key of one implementation (a list: space-separated)")
    one.add_argument("name")
    one.add_argument("key", choices=list(KEYS))
    commands.add_parser(
        "debian-packages", help="every implementation's debian_packages, deduplicated and sorted, one a line"
    )
    commands.add_parser("system-setup", help="every implementation's system_setup program, absolute, one a line")
    commands.add_parser("json", help="the whole registry as JSON (folders absolute, defaults filled in)")
    commands.add_parser("check", help="validate only: exit 0 and say how many implementations there are")
    args = parser.parse_args(argv)

    try:
        registry = load_registries(args.registry)
    except RegistryError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    chosen = [impl for impl in registry.values() if impl.plays(getattr(args, "role", None) or "")]
    if args.command == "names":
        lines = [impl.name for impl in chosen]
    elif args.command == "values":
        missing = [impl.name for impl in chosen if args.key != "name" and getattr(impl, args.key) is None]
        if missing:
            print(f"error: no {args.key!r} for: {', '.join(missing)}", file=sys.stderr)
            return 1
        lines = [_shell_value(getattr(impl, args.key)) for impl in chosen]
    elif args.command == "field":
        if args.name not in registry:
            print(f"error: no implementation {args.name!r} (registered: {', '.join(registry)})", file=sys.stderr)
            return 1
        value = getattr(registry[args.name], args.key)
        if value is None:
            print(f"error: [{args.name}] has no {args.key!r}", file=sys.stderr)
            return 1
        lines = [_shell_value(value)]
    elif args.command == "debian-packages":
        lines = sorted({package for impl in registry.values() for package in impl.debian_packages})
    elif args.command == "system-setup":
        lines = [str(impl.folder / impl.system_setup) for impl in registry.values() if impl.system_setup]
    elif args.command == "json":
        lines = [json.dumps({name: as_json(impl) for name, impl in registry.items()}, indent=1)]
    else:
        lines = [f"{len(registry)} implementations: {', '.join(registry)}"]
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
