"""What a run reports back to its caller (the CLI, tests, the conformance kit)."""

from __future__ import annotations

from collections.abc import Callable

from attrs import frozen


@frozen
class ArtifactSummary:
    sink: str
    uri: str
    content_hash: str
    size: int
    row_count: int


@frozen
class RunSummary:
    run_id: str
    status: str
    rows_read: int
    """Source rows recorded by the whole run (all attempts)."""
    rows_this_attempt: int
    """Source rows this attempt read (a resume skips those recorded before): what its rows/s counts."""
    outcomes: dict[str, int]
    """Terminal outcome -> number of tokens, for the whole run (all attempts)."""
    artifacts: tuple[ArtifactSummary, ...]
    elapsed_seconds: float
    error: str | None = None


@frozen
class Progress:
    run_id: str
    rows_read: int
    elapsed_seconds: float
    done: bool = False
    calls_in_flight: int = 0
    """External calls under way right now (`ctx.call` blocks open, in every thread)."""
    throttled: int = 0
    """Calls the services answered with "slow down" (HTTP 429) during this run, as the plugins told their
    rate budgets (elspeth.rate_budgets)."""


ProgressCallback = Callable[[Progress], None]
