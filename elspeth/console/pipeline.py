"""The pipeline `validate` checked: each node with its plugin and where it comes from, then the flow."""

from __future__ import annotations

from collections.abc import Mapping

from elspeth.console import table
from elspeth.plugin_manager import PluginInfo
from elspeth.settings import AggregationSettings, Settings, TransformSettings, TriggerSettings


def render_pipeline(settings: Settings, infos: Mapping[str, PluginInfo]) -> str:
    """`infos` holds each node's plugin by where the settings declare it ("source", "transforms[0]",
    "sinks.NAME"), as `preflight.check_plugins` found them."""
    plugins = {where: f"{info.distribution} {info.version}".strip() for where, info in infos.items()}
    rows: list[tuple[str, str, str, str, str]] = []
    source = settings.source
    quarantine = f"quarantine -> {source.on_quarantine}" if source.on_quarantine else ""
    rows.append(("source", source.plugin, source.plugin, plugins["source"], quarantine))
    names = [source.plugin]
    steps: list[tuple[str, str, TransformSettings | AggregationSettings]] = [
        *((f"transforms[{i}]", "transform", step) for i, step in enumerate(settings.transforms)),
        *((f"aggregations[{i}]", "aggregate", step) for i, step in enumerate(settings.aggregations)),
    ]
    for where, kind, step in steps:
        name = step.name or step.plugin
        names.append(name)
        notes = [f"errors -> {step.on_error}"] if step.on_error else []
        if isinstance(step, AggregationSettings):
            notes.append(_describe_trigger(step.trigger))
        rows.append((kind, name, step.plugin, plugins[where], "; ".join(notes)))
    default = settings.default_sink or next(iter(settings.sinks))
    for name, sink in settings.sinks.items():
        roles = [
            role
            for role, target in (
                ("default", default),
                ("errors", settings.on_error),
                ("quarantine", source.on_quarantine),
            )
            if target == name
        ]
        rows.append(("sink", name, sink.plugin, plugins[f"sinks.{name}"], ", ".join(roles)))
    flow = " -> ".join([*names, "{" + ", ".join(settings.sinks) + "}"])
    return table(("KIND", "NAME", "PLUGIN", "FROM", "NOTES"), rows) + f"\n\n{flow}"


def _describe_trigger(trigger: TriggerSettings) -> str:
    when = []
    if trigger.count:
        when.append(f"every {trigger.count} rows")
    if trigger.timeout_seconds:
        when.append(f"after {trigger.timeout_seconds}s")
    return "flush " + " or ".join([*when, "at end of source"])
