"""What `elspeth verify` hands a sink's `read_back`: a ctx outside any run, and the sinks built from settings."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

from attrs import define, field

from elspeth.api import Clock, PayloadStore, Sink, can_read_back
from elspeth.engine.clock import SystemClock
from elspeth.engine.context import CallScope, timed_call
from elspeth.engine.pipeline import instantiate
from elspeth.errors import ElspethError
from elspeth.plugin_manager import PluginRegistry, make_plugin_manager
from elspeth.settings import Settings, read_settings_file, settings_from_raw


@define
class ReadBackContext:
    """A plugin's ctx while verify reads an artifact back. There is no open state to hang calls off, and
    verify does not write the record it checks: calls are kept here, to be counted in the report."""

    run_id: str
    node_id: str
    payloads: PayloadStore
    clock: Clock = field(factory=SystemClock)
    state_id: int = -1
    checkpoint: Mapping[str, Any] | None = None
    work_key: str = "verify"
    calls: list[dict[str, Any]] = field(factory=list)

    def record_call(
        self,
        *,
        call_type: str,
        provider: str,
        request: Any,
        response: Any = None,
        error: Any = None,
        latency_ms: float | None = None,
    ) -> None:
        self.calls.append({"call_type": call_type, "provider": provider, "status": "error" if error else "ok"})

    def call(self, call_type: str, provider: str, request: Any) -> AbstractContextManager[CallScope]:
        return timed_call(self.record_call, call_type, provider, request)


def sink_for_read_back(settings: Settings, registry: PluginRegistry, node_id: str, settings_path: str) -> Sink:
    """The sink of recorded node `node_id` ("sink:NAME") built from `settings`; ElspethError saying why not
    when the settings have no such sink or its plugin cannot read back."""
    name = node_id.removeprefix("sink:")
    spec = settings.sinks.get(name)
    if spec is None:
        raise ElspethError(
            f"the settings {settings_path} have no sink {name!r}; pass the run's settings with --settings"
        )
    _, plugin = instantiate(registry, "sink", spec.plugin, spec.options, f"sinks.{name}", settings_path)
    if not isinstance(plugin, Sink) or not can_read_back(type(plugin)):
        raise ElspethError(f"sink plugin {spec.plugin!r} cannot read its output back (no read_back)")
    return plugin


class SettingsSinks:
    """The sinks of a run, for reading back, built from its settings file: loaded once, when first needed (a
    run with local files only needs none), and the same reason given for every sink when it cannot be."""

    def __init__(self, settings_file: str | None) -> None:
        self.settings_file = settings_file
        self._loaded: tuple[Settings, PluginRegistry] | ElspethError | None = None

    def __call__(self, node_id: str) -> Sink:
        if self._loaded is None:
            self._loaded = self._load()
        if isinstance(self._loaded, ElspethError):
            raise self._loaded
        settings, registry = self._loaded
        assert self.settings_file is not None
        return sink_for_read_back(settings, registry, node_id, self.settings_file)

    def _load(self) -> tuple[Settings, PluginRegistry] | ElspethError:
        if self.settings_file is None:
            return ElspethError("the run recorded no settings file; pass it with --settings FILE")
        try:
            raw = read_settings_file(self.settings_file)
            return settings_from_raw(raw, file=self.settings_file), PluginRegistry(make_plugin_manager())
        except ElspethError as exc:
            return exc
