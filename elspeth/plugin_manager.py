"""Building a plugin manager and the registry of plugin classes it yields.

Built-in plugins are loaded through the same `elspeth.plugins` entry-point group as everybody else's.
`ELSPETH_LOAD_PLUGINS=name,name` limits which entry points (or distributions) load;
`ELSPETH_TRACE_PLUGINS=1` prints every hook call to stderr.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
import traceback
from collections.abc import Iterable
from typing import Any

import attrs
import pluggy
from attrs import frozen

from elspeth import hookspecs
from elspeth.api import PLUGIN_KINDS, Plugin
from elspeth.errors import PluginError

ENTRY_POINT_GROUP = "elspeth.plugins"
_HOOK_BY_KIND = {
    "source": "register_sources",
    "transform": "register_transforms",
    "aggregate": "register_aggregates",
    "sink": "register_sinks",
}


def make_plugin_manager(extra_plugins: Iterable[Any] = (), *, load_entry_points: bool = True) -> pluggy.PluginManager:
    """A fresh manager: entry-point plugins (subject to ELSPETH_LOAD_PLUGINS), then `extra_plugins`."""
    pm = pluggy.PluginManager("elspeth")
    pm.add_hookspecs(hookspecs)
    if load_entry_points:
        _load_entry_points(pm, os.environ.get("ELSPETH_LOAD_PLUGINS"))
    for plugin in extra_plugins:
        pm.register(plugin)
    pm.check_pending()
    if os.environ.get("ELSPETH_TRACE_PLUGINS"):
        pm.trace.root.setwriter(sys.stderr.write)
        pm.enable_tracing()
    return pm


def _load_entry_points(pm: pluggy.PluginManager, only: str | None) -> None:
    wanted = {name.strip() for name in only.split(",") if name.strip()} if only is not None else None
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist else None
        if wanted is not None and ep.name not in wanted and dist not in wanted:
            continue
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            module = ep.load()
        except Exception as exc:
            raise PluginError(
                f"plugin entry point {ep.name!r} of distribution {dist!r} failed to import: "
                f"{type(exc).__name__}: {exc}{_where(exc, ep.module)}; fix it there, or remove the plugin "
                f"(elspeth uninstall {dist or ep.name})"
            ) from exc
        pm.register(module, name=ep.name)
        pm._plugin_distinfo.append((module, ep.dist))  # type: ignore[attr-defined,arg-type]  # as pluggy does


def _where(exc: BaseException, module: str) -> str:
    """The last line of the plugin package's own code the failed import ran: what its author must fix (the
    exception alone, `'str' object is not callable`, says neither where nor in which file)."""
    package = module.split(".")[0]
    where = ""
    for frame, line in traceback.walk_tb(exc.__traceback__):
        name = frame.f_globals.get("__name__", "")
        if name == package or name.startswith(package + "."):
            where = f" (at {frame.f_code.co_filename}, line {line})"
    return where


@frozen
class PluginInfo:
    name: str
    kind: str
    cls: type[Plugin]
    distribution: str
    version: str
    hook: str


class PluginRegistry:
    """Every plugin class the manager's register hooks produced, by kind and name."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self._by_kind: dict[str, dict[str, PluginInfo]] = {kind: {} for kind in PLUGIN_KINDS}
        dists = _distributions_by_package(pm)
        for kind, hook_name in _HOOK_BY_KIND.items():
            base = PLUGIN_KINDS[kind]

            def register(cls: type[Plugin], kind: str = kind, base: type = base, hook: str = hook_name) -> None:
                self._add(kind, base, cls, hook, dists)

            getattr(pm.hook, hook_name)(register=register)

    def _add(self, kind: str, base: type, cls: type[Plugin], hook: str, dists: dict[str, Any]) -> None:
        name = getattr(cls, "name", None)
        if not isinstance(cls, type) or not issubclass(cls, base):
            raise PluginError(f"{hook} registered {cls!r}, which is not a subclass of elspeth.api.{base.__name__}")
        if not isinstance(name, str) or not name:
            raise PluginError(f"{cls.__module__}.{cls.__qualname__} has no `name`; give it `name = '...'`")
        dist = _distribution_of(cls.__module__, dists)
        info = PluginInfo(
            name=name,
            kind=kind,
            cls=cls,
            distribution=dist.name if dist else "(not installed)",
            version=dist.version if dist else "",
            hook=hook,
        )
        existing = self._by_kind[kind].get(name)
        if existing is not None and existing.cls is not cls:
            raise PluginError(
                f"two {kind} plugins are named {name!r}: {existing.cls.__module__}.{existing.cls.__qualname__} "
                f"from distribution {existing.distribution!r} and {cls.__module__}.{cls.__qualname__} from "
                f"distribution {info.distribution!r}; uninstall one, or limit loading with ELSPETH_LOAD_PLUGINS"
            )
        self._by_kind[kind][name] = info

    def get(self, kind: str, name: str) -> PluginInfo:
        try:
            return self._by_kind[kind][name]
        except KeyError:
            known = ", ".join(sorted(self._by_kind[kind])) or "none"
            raise PluginError(f"no {kind} plugin named {name!r} is installed (installed {kind}s: {known})") from None

    def with_class(self, kind: str, name: str, cls: type[Plugin]) -> PluginRegistry:
        """A copy in which plugin `name` of `kind` is served by `cls` (e.g. a test harness's wrapper around
        it), under the same name, distribution and version."""
        copy = object.__new__(PluginRegistry)
        copy.pm = self.pm
        copy._by_kind = {k: dict(v) for k, v in self._by_kind.items()}
        copy._by_kind[kind][name] = attrs.evolve(self.get(kind, name), cls=cls)
        return copy

    def all(self) -> list[PluginInfo]:
        return [info for kind in PLUGIN_KINDS for info in sorted(self._by_kind[kind].values(), key=_by_name)]


def _by_name(info: PluginInfo) -> str:
    return info.name


def _distributions_by_package(pm: pluggy.PluginManager) -> dict[str, Any]:
    """Module name of each entry-point plugin -> the distribution that installed it."""
    return {getattr(plugin, "__name__", type(plugin).__module__): dist for plugin, dist in pm.list_plugin_distinfo()}


def _distribution_of(module: str, dists: dict[str, Any]) -> Any:
    """The distribution whose plugin module shares the longest dotted prefix with `module`: two
    distributions may share a top-level (namespace) package."""
    parts = module.split(".")

    def shared(name: str) -> int:
        other = name.split(".")
        n = 0
        while n < min(len(parts), len(other)) and parts[n] == other[n]:
            n += 1
        return n

    best = max(dists, key=shared, default=None)
    return dists[best] if best is not None and shared(best) > 0 else None
