"""The implementation registry, implementations.toml (spec I-2): the only way the harness knows languages."""
from __future__ import annotations

import shutil
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REGISTRY = REPO / "implementations.toml"

# The Turkish-locale matrix case (T-5): on top of each entry's own turkish_env.
TURKISH_LOCALE = {"LANG": "tr_TR.UTF-8", "LC_ALL": "tr_TR.UTF-8"}


@dataclass(frozen=True)
class Implementation:
    name: str
    folder: Path
    needs: tuple[str, ...]
    image: str
    service: str
    host_port: int | None = None
    debian_packages: tuple[str, ...] = ()
    turkish_env: dict[str, str] = field(default_factory=dict)

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


def load_registry(path: Path = REGISTRY) -> dict[str, Implementation]:
    with path.open("rb") as file:
        entries = tomllib.load(file)
    return {
        name: Implementation(
            name=name,
            folder=(path.parent / entry["folder"]).resolve(),
            needs=tuple(entry.get("needs", ())),
            image=entry["image"],
            service=entry["service"],
            host_port=entry.get("host_port"),
            debian_packages=tuple(entry.get("debian_packages", ())),
            turkish_env=dict(entry.get("turkish_env", {})),
        )
        for name, entry in entries.items()
    }
