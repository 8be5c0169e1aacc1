"""What an engine is, and how the checkpoints it needs are found.

An engine declares its facts once, in its own package: how to build its
stages, how many frames of context they read around each window, which
registry checkpoints it needs (each requirement a list of alternatives, the
first one found wins) and its rank for `--engine auto`. Nothing is loaded
here: `resolve` only finds files, so listing and choosing stay cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Mapping

from lipstream.config import SyncConfig
from lipstream.errors import WeightsError
from lipstream.models._registry import find_file, get, how_to_get, search_dirs

from ..stage import Stage

__all__ = ["Engine", "Found", "find", "missing_requirements", "plain_options", "resolve"]

Requirement = tuple[str, ...]  # registry names that can each fill the need, best first


@dataclass(frozen=True)
class Found:
    """The checkpoints an engine will load: registry name -> the files found for it, in the registry's order."""

    files: Mapping[str, tuple[Path, ...]]
    weights: tuple[Path, ...] = ()  # the user's --weights folders (searched first)

    def name_for(self, requirement: Requirement) -> str:
        """Which of the alternatives was found."""
        return next(name for name in requirement if name in self.files)


def plain_options(config: SyncConfig) -> tuple[SyncConfig, tuple[Requirement, ...]]:
    """Engines whose options add nothing: `--enhance auto` means no enhancement."""
    return (replace(config, enhance="none") if config.enhance == "auto" else config), ()


@dataclass(frozen=True)
class Engine:
    name: str
    description: str
    build: Callable[[SyncConfig, Found], list[Stage]]
    context: int = 0  # frames its stages read around each owned frame: the least window overlap
    checkpoints: tuple[Requirement, ...] = ()
    rank: int | None = None  # `auto` takes the highest-ranked engine whose checkpoints are found; None: never
    faces: bool = True  # runs the face stage (so the face options' checkpoints are needed too)
    enhances: bool = False  # draws a mouth that the enhance stage (--enhance) may restore
    # what the job's options mean for this engine: the configuration with `enhance` resolved
    # (never "auto"), and the checkpoints those options add (retalking's `best`)
    options: Callable[[SyncConfig], tuple[SyncConfig, tuple[Requirement, ...]]] = plain_options


def _files(name: str, dirs: list[Path]) -> tuple[Path, ...] | None:
    paths = [find_file(spec, dirs) for spec in get(name).files]
    return None if None in paths else tuple(p for p in paths if p is not None)


def missing_requirements(engine: Engine, weights: Iterable[str | Path] = ()) -> list[Requirement]:
    """The requirements of `engine` that no alternative fills."""
    dirs = search_dirs(weights)
    return [req for req in engine.checkpoints if all(_files(name, dirs) is None for name in req)]


def resolve(engine: Engine, weights: Iterable[str | Path] = ()) -> Found:
    """The files `engine` will load, or one WeightsError naming every missing file and where to get it."""
    return find(engine.checkpoints, weights, f"the {engine.name} engine")


def find(requirements: Iterable[Requirement], weights: Iterable[str | Path], who: str) -> Found:
    """The files that fill `requirements`, or one WeightsError saying what `who` needs and where to get it."""
    weights = tuple(Path(w) for w in weights)
    dirs = search_dirs(weights)
    chosen: dict[str, tuple[Path, ...]] = {}
    missing: list[Requirement] = []
    for requirement in requirements:
        for name in requirement:
            files = _files(name, dirs)
            if files is not None:
                chosen[name] = files
                break
        else:
            missing.append(requirement)
    if missing:
        raise WeightsError(_missing_message(who, missing, dirs))
    return Found(chosen, weights)


def _missing_message(who: str, missing: list[Requirement], dirs: list[Path]) -> str:
    needs: list[str] = []
    listed: set[str] = set()  # a file two entries share (LNet.pth) is named once
    for requirement in missing:
        absent = {name: [s for s in get(name).files if find_file(s, dirs) is None] for name in requirement}
        names = [" + ".join(s.relpath for s in specs if s.relpath not in listed) for specs in absent.values()]
        listed.update(s.relpath for specs in absent.values() for s in specs)
        if any(names):
            needs.append(" or ".join(dict.fromkeys(n for n in names if n)))
    how = how_to_get([name for requirement in missing for name in requirement[:1]])
    return (
        f"{who} needs {'; '.join(needs)}, not found in {', '.join(map(str, dirs))}; {how} "
        "(or put the files in one of those folders; --weights DIR adds one)"
    )
