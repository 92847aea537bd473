"""The pipeline settings as attrs classes: what a settings file may say, and its defaults."""

from __future__ import annotations

from typing import Any

from attrs import define, field

from elspeth.retries import RetryPolicy

MAX_CONCURRENCY = 256
"""Rows in flight in one node: each is a thread and a connection, and a reorder buffer slot."""


@define
class SourceSettings:
    plugin: str
    options: dict[str, Any] = field(factory=dict)
    on_quarantine: str | None = None
    """Sink that receives quarantined records (they are recorded in the Landscape either way)."""


@define
class TransformSettings:
    plugin: str
    options: dict[str, Any] = field(factory=dict)
    name: str | None = None
    on_error: str | None = None
    """Sink for rows this node returns an Error for; falls back to the pipeline's `on_error`."""
    concurrency: int | None = None
    """Rows in flight at once in this node (plugins with external calls only); the plugin's default if unset."""


@define
class TriggerSettings:
    count: int | None = None
    timeout_seconds: float | None = None


@define
class AggregationSettings:
    plugin: str
    options: dict[str, Any] = field(factory=dict)
    name: str | None = None
    on_error: str | None = None
    trigger: TriggerSettings = field(factory=TriggerSettings)


@define
class SinkSettings:
    plugin: str
    options: dict[str, Any] = field(factory=dict)


@define
class RetrySettings:
    """The engine's retries of a row (or batch) whose plugin answered a retryable Error."""

    max_attempts: int = 3
    backoff_seconds: float = 1.0

    def policy(self) -> RetryPolicy:
        return RetryPolicy(max_attempts=self.max_attempts, backoff_seconds=self.backoff_seconds)


@define
class EngineSettings:
    write_batch_rows: int = 1000
    """Rows handed to a sink's write() at a time."""
    checkpoint_every_rows: int = 20_000
    """Sinks are flushed and a checkpoint taken after this many source rows..."""
    checkpoint_every_seconds: float = 30.0
    """...or this many seconds, whichever comes first."""
    retry: RetrySettings = field(factory=RetrySettings)


@define
class LandscapeSettings:
    url: str | None = None
    """SQLAlchemy URL; default sqlite:///.elspeth/landscape.db beside the current directory."""
    payload_dir: str | None = None
    """Content-addressed payload store; default .elspeth/payloads."""


@define
class Settings:
    source: SourceSettings
    sinks: dict[str, SinkSettings]
    transforms: list[TransformSettings] = field(factory=list)
    aggregations: list[AggregationSettings] = field(factory=list)
    default_sink: str | None = None
    """Where rows that finish the pipeline go; may be omitted when there is only one sink."""
    on_error: str | None = None
    landscape: LandscapeSettings = field(factory=LandscapeSettings)
    engine: EngineSettings = field(factory=EngineSettings)
