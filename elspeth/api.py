"""The plugin author's API: base classes, results and the context a plugin is handed.

Plugins import from here, plus `elspeth.errors` (exceptions), `elspeth.canonical` (hashing and JSON),
`elspeth.options` (option validators), `elspeth.retries` (the retry loop, every attempt recorded) and
`elspeth.hookspecs` (`hookimpl`); nothing else in `elspeth` is theirs to use.
Nothing here touches SQL: the engine implements `Context` on top of the Landscape. `looks_secret`,
`redacted_headers` and `Redactor` are the engine's own redaction, for what a plugin records or logs by itself.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from attrs import field, frozen

from elspeth.canonical import dumps
from elspeth.errors import ServiceUnreachable
from elspeth.landscape.redaction import Redactor, looks_secret, redacted_headers

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

Row = dict[str, Any]


class Capability(enum.StrEnum):
    """What a plugin declares about itself; the conformance kit decides what applies from these."""

    EXTERNAL_CALLS = "external_calls"
    """Talks to something outside the process; every such call must go through `ctx.record_call`."""
    RESUMABLE = "resumable"
    """Sink: can continue an earlier attempt's output from the state its `flush` returned."""
    PENDING = "pending"
    """Aggregate: may answer `Pending` and be called again later, possibly after a resume."""
    DETERMINISTIC = "deterministic"
    """The same input always gives the same output (lets the kit compare a resumed run byte for byte)."""


@frozen
class NoConfig:
    """Config class of a plugin that takes no options."""


@frozen
class Location:
    """A file or object a plugin reads or writes, as `elspeth validate` compares them: two sinks on one
    location, or a sink on what the source reads, are refused. `uri` is `file://` and the absolute,
    symlink-resolved path for a local file, the object's URI otherwise (`s3://bucket/key`); `option` is the
    option that names it, for messages."""

    uri: str
    writes: bool
    option: str

    @classmethod
    def file(cls, path: str, *, writes: bool, option: str = "path") -> Location:
        try:
            resolved = os.path.realpath(path)
        except (OSError, ValueError):  # a NUL in it, a loop of links: validate says what is wrong
            resolved = os.path.abspath(path)
        return cls("file://" + resolved, writes, option)


class Cardinality(enum.StrEnum):
    """How many rows an aggregate's `Success` holds for a batch, as it declares (`Aggregate.cardinality`).
    The engine fails a batch whose outputs break the declaration, and the conformance kit checks it with
    zero, empty and false values in the input: a row dropped because a value was falsy is lost silently."""

    ONE_PER_ROW = "one_per_row"
    """One output per input row (an enrichment, a batched call per row)."""
    ONE_PER_BATCH = "one_per_batch"
    """Exactly one output for the whole batch (a summary)."""
    ONE_PER_GROUP = "one_per_group"
    """One output per group of rows sharing the values of `Aggregate.group_fields()`; values are compared as
    canonical JSON, so 0, 0.0, false, "" and null are five groups and a missing field is one more. No group
    fields: the whole batch is one group."""
    UNCONSTRAINED = "unconstrained"
    """The count depends on the values (a filter, a fan-out): nothing is checked."""

    def expected(self, rows: list[Row], group_fields: tuple[str, ...] = ()) -> int | None:
        """The number of outputs `rows` must give under this rule; None when unconstrained."""
        if self is Cardinality.ONE_PER_ROW:
            return len(rows)
        if self is Cardinality.ONE_PER_BATCH:
            return 1
        if self is Cardinality.ONE_PER_GROUP:
            if len(group_fields) == 1:
                (name,) = group_fields
                return len({_value_key(row.get(name, _MISSING)) for row in rows})
            return len({group_key(row, group_fields) for row in rows}) if group_fields else 1
        return None

    def describe(self, group_fields: tuple[str, ...] = ()) -> str:
        if self is Cardinality.ONE_PER_GROUP and group_fields:
            return "one output per group of rows sharing " + ", ".join(repr(f) for f in group_fields)
        return {
            Cardinality.ONE_PER_ROW: "one output per input row",
            Cardinality.ONE_PER_BATCH: "one output per batch",
            Cardinality.ONE_PER_GROUP: "one output per batch (one group: no group fields)",
            Cardinality.UNCONSTRAINED: "any number of outputs",
        }[self]


_EXACT_TYPES = frozenset({str, int, bool, type(None)})
"""Types whose values are equal exactly when their JSON is: their values stand for themselves in a key
(canonical JSON costs microseconds a value, on the engine's path for every row of a grouped batch)."""
_MISSING = object()


def group_key(row: Row, fields: tuple[str, ...]) -> tuple[Any, ...]:
    """The group `row` belongs to under `Cardinality.ONE_PER_GROUP`: its values of `fields` compared as
    canonical JSON (0, 0.0, false and "" apart), a missing field apart from every value."""
    return tuple(_value_key(row.get(f, _MISSING)) for f in fields)


def _value_key(value: Any) -> Any:
    if value is _MISSING:
        return _MISSING
    kind = type(value)
    return (kind, value) if kind in _EXACT_TYPES else dumps(value)


# ---------------------------------------------------------------- results


@frozen(init=False)
class Success:
    """The row(s) a transform or aggregate produced. One row is the common case; zero rows filters the
    input out (recorded as such); several rows fan out into child tokens."""

    rows: tuple[Row, ...]

    def __init__(self, *rows: Row) -> None:
        # Set directly: one Success per row per transform is the engine's hot path.
        object.__setattr__(self, "rows", rows)


@frozen
class Routed:
    """Send this row to the named sink instead of continuing down the pipeline."""

    sink: str
    row: Row


@frozen
class Error:
    """The row's values made processing impossible. `retryable` asks the engine to try again."""

    reason: str
    retryable: bool = False
    details: Mapping[str, Any] | None = None


@frozen
class Pending:
    """Aggregate only: the work was handed to something slow (e.g. a batch API). The engine stores
    `checkpoint` in the Landscape and calls the plugin again later, or after a resume, with it in
    `ctx.checkpoint`."""

    checkpoint: Mapping[str, Any]
    retry_after: float = 30.0


@frozen
class Quarantine:
    """A source record that failed validation. It is recorded with its reason; it never vanishes."""

    raw: Any
    reason: str


@frozen
class Artifact:
    """What a sink's `flush` made durable. `content_hash` (sha256 hex) and `size` describe ALL the bytes
    stored so far, not the last batch. `resume` is the JSON state the sink needs to continue from exactly
    this point after a crash."""

    uri: str
    content_hash: str
    size: int
    row_count: int
    resume: Mapping[str, Any] = field(factory=dict)


TransformResult = Success | Routed | Error
BatchResult = Success | Error | Pending


# ---------------------------------------------------------------- what a plugin is handed


@frozen
class CallRecord:
    """An external call as it stands in the Landscape, secrets already removed: what `record_call`
    observers receive. The same fields a plugin gives `ctx.record_call`, plus where the call hangs."""

    run_id: str
    node_id: str
    state_id: int
    call_index: int
    """The call's place among the calls of its state, from 0."""
    call_type: str
    provider: str
    status: str
    """"ok" or "error"."""
    request: Any
    response: Any
    error: Any
    request_hash: str
    response_hash: str | None
    latency_ms: float | None


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock seconds since the epoch."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (triggers and timeouts)."""

    def sleep(self, seconds: float) -> None: ...


class CallScope(Protocol):
    """Yielded by `ctx.call(...)`: set `response` before the block ends; an exception leaving the block is
    recorded as an ERROR call and re-raised."""

    response: Any
    request: Any


class PayloadStore(Protocol):
    def put(self, data: bytes) -> str:
        """Store bytes; returns their sha256 hex, which is also their address."""

    def get(self, ref: str) -> bytes:
        """Read bytes back, verifying they still hash to `ref`."""


class Context(Protocol):
    """One per node execution. `state_id` is the node_state open right now: every call recorded through
    this context hangs off it."""

    run_id: str
    node_id: str
    state_id: int
    clock: Clock
    payloads: PayloadStore
    checkpoint: Mapping[str, Any] | None
    work_key: str
    """Names the work this context is for (the run, the node, the row's token or the batch's members) the
    same way in every attempt and after a resume. A plugin that starts something outside that must not be
    started twice (a paid batch job) tags it with this key and looks for the tag before starting it again."""

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
        """Record one external call with its FULL request and response (or error). JSON-able values."""

    def call(self, call_type: str, provider: str, request: Any) -> AbstractContextManager[CallScope]:
        """Wrap an external call: `with ctx.call("http", "azure_openai", req) as c: c.response = ...`."""


# ---------------------------------------------------------------- base classes


class Plugin:
    """Common to every kind. `name` is what settings refer to; `config_class` is an attrs class that the
    engine structures the settings' `options` into (cattrs), so bad options name their field."""

    name: ClassVar[str]
    config_class: ClassVar[type] = NoConfig
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.DETERMINISTIC})

    def __init__(self, config: Any) -> None:
        self.config = config

    @classmethod
    def locations(cls, config: Any) -> Iterable[Location]:
        """What this plugin reads (a source, a transform) or writes (a sink) with `config`, so `validate`
        can refuse two sinks on one file and a sink on its own input. By default: the config's `uri`
        attribute, if it has one, else its `path` option as a local file. Override it when a plugin names
        its target otherwise."""
        writes = issubclass(cls, Sink)
        uri = getattr(config, "uri", None)
        if isinstance(uri, str) and uri:
            return [Location(uri, writes, "path" if hasattr(config, "path") else "uri")]
        path = getattr(config, "path", None)
        if isinstance(path, str) and path:
            return [Location.file(path, writes=writes)]
        return []

    def close(self) -> None:
        """Release resources. Called once, whether the run succeeded or not."""


class Source(Plugin):
    """Yields rows (dicts of JSON-able values) or `Quarantine` records, in a stable order: a resumed run
    reads the source again and skips what the Landscape already holds."""

    def load(self, ctx: Context) -> Iterator[Row | Quarantine]:
        raise NotImplementedError


class Transform(Plugin):
    default_concurrency: ClassVar[int] = 1
    """Rows in flight at once when the settings do not say (`concurrency:`). Above 1 only for a plugin that
    declares EXTERNAL_CALLS and whose `process` may run in several threads at once."""

    def process(self, row: Row, ctx: Context) -> TransformResult:
        raise NotImplementedError


class Aggregate(Plugin):
    """Receives a whole batch; the engine owns buffering, triggers and batch status."""

    cardinality: ClassVar[Cardinality] = Cardinality.UNCONSTRAINED
    """How many outputs a batch gives (see `Cardinality`); the engine fails a batch that breaks it."""

    def group_fields(self) -> tuple[str, ...]:
        """The fields whose values make a group, for `Cardinality.ONE_PER_GROUP`; typically from the
        options. Called once per run."""
        return ()

    def process_batch(self, rows: list[Row], ctx: Context) -> BatchResult:
        raise NotImplementedError


class Sink(Plugin):
    """`write` may be called many times per run; `flush` makes everything written so far durable."""

    def open(self, ctx: Context, resume: Mapping[str, Any] | None) -> None:
        """`resume` is None for a fresh run. On a resumed run it is the `resume` state of the last
        artifact this sink flushed ({} if it never flushed): continue from exactly there, discarding
        anything a crashed attempt wrote after it, and never truncating what it made durable."""

    def write(self, rows: list[Row], ctx: Context) -> None:
        raise NotImplementedError

    def flush(self, ctx: Context) -> Artifact:
        raise NotImplementedError

    def read_back(self, uri: str, ctx: Context) -> Iterator[bytes]:
        """Optional: the bytes stored now at `uri` (the uri of an artifact this sink, configured as it is,
        made), in order, in chunks of bounded size, for `elspeth verify` to hash. Called outside any run on a
        sink that was never opened: `ctx` has no open state (`state_id` is -1) and keeps the calls recorded
        through it for verify's report, not in the Landscape. Raise ElspethError saying why when the bytes
        cannot be read. Sinks that do not override it are listed by verify as "not checked"; `file://`
        artifacts are read by verify itself."""
        raise NotImplementedError


def can_read_back(cls: type[Sink]) -> bool:
    """Whether sink class `cls` implements the optional `read_back`."""
    return cls.read_back is not Sink.read_back


PLUGIN_KINDS: dict[str, type[Plugin]] = {
    "source": Source,
    "transform": Transform,
    "aggregate": Aggregate,
    "sink": Sink,
}


class Register(Protocol):
    def __call__(self, plugin_class: type[Plugin]) -> None: ...


__all__ = [
    "PLUGIN_KINDS",
    "Aggregate",
    "Artifact",
    "BatchResult",
    "CallRecord",
    "CallScope",
    "Capability",
    "Cardinality",
    "Clock",
    "Context",
    "Error",
    "Location",
    "NoConfig",
    "PayloadStore",
    "Pending",
    "Plugin",
    "Quarantine",
    "Redactor",
    "Register",
    "Routed",
    "Row",
    "ServiceUnreachable",
    "Sink",
    "Source",
    "Success",
    "Transform",
    "TransformResult",
    "can_read_back",
    "group_key",
    "looks_secret",
    "redacted_headers",
]
