"""The five hooks. Four register plugin classes by kind; one observes every recorded external call."""

import pluggy

hookspec = pluggy.HookspecMarker("elspeth")
hookimpl = pluggy.HookimplMarker("elspeth")


@hookspec
def register_sources(register):
    """Called once when a plugin manager is built. Call `register(SourceClass)` for each source."""


@hookspec
def register_transforms(register):
    """Called once when a plugin manager is built. Call `register(TransformClass)` for each transform."""


@hookspec
def register_aggregates(register):
    """Called once when a plugin manager is built. Call `register(AggregateClass)` for each aggregate."""


@hookspec
def register_sinks(register):
    """Called once when a plugin manager is built. Call `register(SinkClass)` for each sink."""


@hookspec
def record_call(call):
    """Fires after an external call (an `elspeth.landscape.RecordedCall`) is durably in the Landscape.
    Observers only: cassette recorders, telemetry, the conformance kit. Must not raise."""
