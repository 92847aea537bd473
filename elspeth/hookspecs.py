"""The five hooks. Four register plugin classes by kind; one observes every recorded external call."""

import pluggy

from elspeth.api import CallRecord, Register

hookspec = pluggy.HookspecMarker("elspeth")
hookimpl = pluggy.HookimplMarker("elspeth")


@hookspec
def register_sources(register: Register) -> None:
    """Called once when a plugin manager is built. Call `register(SourceClass)` for each source."""


@hookspec
def register_transforms(register: Register) -> None:
    """Called once when a plugin manager is built. Call `register(TransformClass)` for each transform."""


@hookspec
def register_aggregates(register: Register) -> None:
    """Called once when a plugin manager is built. Call `register(AggregateClass)` for each aggregate."""


@hookspec
def register_sinks(register: Register) -> None:
    """Called once when a plugin manager is built. Call `register(SinkClass)` for each sink."""


@hookspec
def record_call(call: CallRecord) -> None:
    """Fires after an external call (an `elspeth.api.CallRecord`) is durably in the Landscape. Observers
    only: cassette recorders, telemetry, the conformance kit. An exception raised here fails the run."""


__all__ = ["hookimpl", "hookspec"]
