"""Turning settings into a pipeline of plugin instances with stable node ids."""

from __future__ import annotations

from typing import Any

from attrs import define, frozen

from elspeth import canonical
from elspeth.api import Aggregate, Capability, Plugin, Sink, Source, Transform
from elspeth.errors import ConfigError
from elspeth.landscape.redaction import Redactor
from elspeth.plugin_manager import PluginInfo, PluginRegistry
from elspeth.preflight import concurrency_problem
from elspeth.settings import Settings, TriggerSettings, redacted, structure


@define
class Node:
    node_id: str
    kind: str
    info: PluginInfo
    plugin: Any
    options: dict[str, Any]
    position: int
    on_error: str | None = None
    trigger: TriggerSettings | None = None
    concurrency: int = 1


@frozen
class Pipeline:
    source: Node
    transforms: tuple[Node, ...]
    aggregations: tuple[Node, ...]
    sinks: dict[str, Node]
    default_sink: str
    on_quarantine: str | None

    def nodes(self) -> list[Node]:
        return [self.source, *self.transforms, *self.aggregations, *self.sinks.values()]

    def close(self) -> None:
        for node in self.nodes():
            node.plugin.close()


def instantiate(
    registry: PluginRegistry, kind: str, name: str, options: dict[str, Any], where: str, file: str | None
) -> tuple[PluginInfo, Plugin]:
    info = registry.get(kind, name)
    config: Any = structure(options, info.cls.config_class, where=f"{where}.options", file=file)
    return info, info.cls(config)


def _unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    for name in names:
        seen[name] = seen.get(name, 0) + 1
    counters: dict[str, int] = {}
    result = []
    for name in names:
        if seen[name] > 1:
            counters[name] = counters.get(name, 0) + 1
            result.append(f"{name}_{counters[name]}")
        else:
            result.append(name)
    return result


def build_pipeline(settings: Settings, registry: PluginRegistry, settings_path: str | None = None) -> Pipeline:
    """Plugin instances for every node; raises ConfigError naming the key of any bad option."""
    if not settings.sinks:
        raise ConfigError("sinks: at least one sink is required")
    default_sink = settings.default_sink
    if default_sink is None:
        if len(settings.sinks) > 1:
            raise ConfigError(f"default_sink: required with several sinks; one of {sorted(settings.sinks)}")
        default_sink = next(iter(settings.sinks))
    position = 0
    info, plugin = instantiate(
        registry, "source", settings.source.plugin, settings.source.options, "source", settings_path
    )
    source = Node(f"source:{info.name}", "source", info, plugin, settings.source.options, position)
    _check_kind(plugin, Source, "source")
    transforms = []
    names = _unique_names([t.name or t.plugin for t in settings.transforms])
    for i, (t, name) in enumerate(zip(settings.transforms, names, strict=True)):
        position += 1
        info, plugin = instantiate(registry, "transform", t.plugin, t.options, f"transforms[{i}]", settings_path)
        _check_kind(plugin, Transform, f"transforms[{i}]")
        transforms.append(
            Node(
                f"transform:{name}",
                "transform",
                info,
                plugin,
                t.options,
                position,
                on_error=t.on_error or settings.on_error,
                concurrency=_concurrency(plugin, t.concurrency, f"transforms[{i}].concurrency"),
            )
        )
    aggregations = []
    names = _unique_names([a.name or a.plugin for a in settings.aggregations])
    for i, (a, name) in enumerate(zip(settings.aggregations, names, strict=True)):
        position += 1
        info, plugin = instantiate(registry, "aggregate", a.plugin, a.options, f"aggregations[{i}]", settings_path)
        _check_kind(plugin, Aggregate, f"aggregations[{i}]")
        aggregations.append(
            Node(
                f"aggregate:{name}",
                "aggregate",
                info,
                plugin,
                a.options,
                position,
                on_error=a.on_error or settings.on_error,
                trigger=a.trigger,
            )
        )
    sinks = {}
    for name, s in settings.sinks.items():
        position += 1
        info, plugin = instantiate(registry, "sink", s.plugin, s.options, f"sinks.{name}", settings_path)
        _check_kind(plugin, Sink, f"sinks.{name}")
        sinks[name] = Node(f"sink:{name}", "sink", info, plugin, s.options, position)
    pipeline = Pipeline(
        source, tuple(transforms), tuple(aggregations), sinks, default_sink, settings.source.on_quarantine
    )
    _check_sink_names(pipeline, settings)
    return pipeline


def _check_kind(plugin: Plugin, base: type, where: str) -> None:
    if not isinstance(plugin, base):
        raise ConfigError(f"{where}.plugin: {type(plugin).__name__} is not a {base.__name__}")


def _concurrency(plugin: Any, configured: int | None, where: str) -> int:
    problem = concurrency_problem(type(plugin), configured)
    if problem is not None:
        raise ConfigError(f"{where}: {problem}")
    if configured is None:
        return plugin.default_concurrency if Capability.EXTERNAL_CALLS in plugin.capabilities else 1
    return configured


def _check_sink_names(pipeline: Pipeline, settings: Settings) -> None:
    named = [("default_sink", pipeline.default_sink), ("source.on_quarantine", pipeline.on_quarantine)]
    named += [(f"{n.kind} {n.node_id}: on_error", n.on_error) for n in (*pipeline.transforms, *pipeline.aggregations)]
    for where, sink in named:
        if sink is not None and sink not in pipeline.sinks:
            raise ConfigError(f"{where}: no sink named {sink!r}; define it under sinks (have {sorted(pipeline.sinks)})")


def settings_document(settings: Settings, secrets: frozenset[str]) -> dict[str, Any]:
    """The settings as recorded in the Landscape: secrets replaced, landscape location left out (the same
    run may be resumed against a copied database)."""
    document = redacted(settings, secrets)
    document.pop("landscape", None)
    return document


def node_config_record(node: Node, redactor: Redactor) -> tuple[str, str]:
    document = redactor(node.options)
    return canonical.dumps_and_hash(document)
