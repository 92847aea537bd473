"""The checks `validate` makes with the plugins loaded: each step's options structured by its plugin's config
class, the inputs there to read, and no two plugins writing one location nor a sink writing what is read.

Locations come from each plugin's `locations(config)` (a `uri` or a `path` option by default), so a
third-party sink is checked like the built-in ones. Every message names the file, the key and the fix.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from typing import Any

from attrs import frozen

from elspeth.api import Capability, Location, Source
from elspeth.errors import ConfigError, PluginError
from elspeth.plugin_manager import PluginInfo, PluginRegistry
from elspeth.settings import Settings, structure


@frozen
class _Step:
    where: str
    """Its key path: `source`, `transforms[0]`, `sinks.out`."""
    info: PluginInfo
    config: Any


def check_plugins(
    settings: Settings, registry: PluginRegistry, file: str, *, files_now: bool = True
) -> dict[str, PluginInfo]:
    """The plugin of every step by key path; a ConfigError listing every problem found otherwise. Without
    `files_now`, what the files are right now is left alone (a missing input, a directory where a file
    should be): a run reports those as a failure it can resume once they are fixed."""
    problems: list[str] = []
    steps: list[_Step] = []
    for where, kind, plugin, options in pipeline_steps(settings):
        try:
            info = registry.get(kind, plugin)
        except PluginError as exc:
            problems.append(f"{file}: {where}.plugin: {exc}; see 'elspeth plugins'")
            continue
        try:
            config: Any = structure(options, info.cls.config_class, where=f"{where}.options", file=file)
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        steps.append(_Step(where, info, config))
    by_where = {step.where: step for step in steps}
    for i, t in enumerate(settings.transforms):
        step = by_where.get(f"transforms[{i}]")  # missing: its plugin or options are already a problem
        problem = None if step is None else concurrency_problem(step.info.cls, t.concurrency)
        if problem is not None:
            problems.append(f"{file}: transforms[{i}].concurrency: {problem}")
    problems += [f"{file}: {where}: {message}" for where, message in _location_problems(steps, files_now)]
    if problems:
        raise ConfigError("\n".join(problems))
    return {step.where: step.info for step in steps}


def concurrency_problem(cls: type, configured: int | None) -> str | None:
    """Why a transform of class `cls` cannot have `configured` rows in flight, or None."""
    capabilities: frozenset[Capability] = getattr(cls, "capabilities", frozenset())
    if configured is not None and configured > 1 and Capability.EXTERNAL_CALLS not in capabilities:
        return (
            f"{cls.__name__} declares no external calls, so rows in flight would only wait on each other; remove "
            "the key (it applies to plugins that call a service)"
        )
    return None


def pipeline_steps(settings: Settings) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(key path, plugin kind, plugin name, options) of every node, in pipeline order."""
    yield "source", "source", settings.source.plugin, settings.source.options
    for i, t in enumerate(settings.transforms):
        yield f"transforms[{i}]", "transform", t.plugin, t.options
    for i, a in enumerate(settings.aggregations):
        yield f"aggregations[{i}]", "aggregate", a.plugin, a.options
    for name, s in settings.sinks.items():
        yield f"sinks.{name}", "sink", s.plugin, s.options


def _location_problems(steps: list[_Step], files_now: bool) -> Iterator[tuple[str, str]]:
    read: dict[str, str] = {}
    written: dict[str, str] = {}
    for step in steps:
        try:
            locations = list(step.info.cls.locations(step.config))
        except Exception as exc:  # a third-party plugin's override: its failure is the user's to see
            yield step.where, f"plugin {step.info.name!r} could not say what it reads and writes: {exc}"
            continue
        for location in locations:
            at = f"{step.where}.options.{location.option}"
            names = _identities(location)
            writer = next((written[n] for n in names if n in written), None)
            reader = next((read[n] for n in names if n in read), None)
            if location.writes and writer:
                yield (
                    at,
                    (
                        f"{_show(location)} is also written by {writer}; two writers of one location overwrite each "
                        "other: give each its own"
                    ),
                )
            elif location.writes and reader:
                yield (
                    at,
                    f"{_show(location)} is what {reader} reads; writing it would destroy the input: write elsewhere",
                )
            elif writer:
                yield at, f"{_show(location)} is written by {writer}; that would destroy this input: write elsewhere"
            for name in names:
                (written if location.writes else read).setdefault(name, at)
            must_exist = not location.writes and issubclass(step.info.cls, Source)
            yield from _path_problems(at, location, files_now=files_now, must_exist=must_exist)


def _identities(location: Location) -> list[str]:
    """The names under which two locations are one: the URI, and for an existing file its device and inode
    (a hard link has another path but is the same file)."""
    if not location.uri.startswith("file://"):
        return [location.uri]
    try:
        found = os.stat(location.uri.removeprefix("file://"))
    except (OSError, ValueError):
        return [location.uri]
    return [location.uri, f"inode:{found.st_dev}:{found.st_ino}"]


def _path_problems(at: str, location: Location, *, files_now: bool, must_exist: bool) -> Iterator[tuple[str, str]]:
    """A local path that can never be a file (a NUL in it, too long), or with `files_now`, is not one now
    (a directory, under a file; for an input, missing)."""
    if not location.uri.startswith("file://"):
        return
    path = location.uri.removeprefix("file://")
    if "\x00" in path:
        yield at, f"{path!r} holds a NUL character, which no file name can; fix the path"
        return
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if must_exist and files_now:
            yield at, f"{path} does not exist; set it to an existing file, or create it"
        return
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            yield at, f"{path[:80]}... is too long a path for this system; use a shorter one"
        elif not files_now:
            return
        elif exc.errno == errno.ENOTDIR:
            yield at, f"{path}: a directory in this path is a file; fix the path"
        else:
            yield at, f"{path} cannot be used: {exc.strerror}; fix the path or its permissions"
        return
    if files_now and stat.S_ISDIR(mode):
        yield at, f"{path} is a directory; set it to a file"
    elif files_now and location.writes and not stat.S_ISREG(mode):
        yield at, f"{path} is a device or a pipe, not a file; write to a file"


def _show(location: Location) -> str:
    return location.uri.removeprefix("file://") if location.uri.startswith("file://") else location.uri
