"""Every status and outcome the Landscape stores, each an enum stored as its string value.

The CHECK constraints in schema.py are generated from these enums, so the database and the code can never
disagree about which values exist (bug class 15).
"""

import enum


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class StateStatus(enum.StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    FAILED = "failed"


class BatchStatus(enum.StrEnum):
    DRAFT = "draft"
    EXECUTING = "executing"
    COMPLETED = "completed"
    FAILED = "failed"


class TriggerReason(enum.StrEnum):
    COUNT = "count"
    TIMEOUT = "timeout"
    END_OF_SOURCE = "end_of_source"
    RETRY = "retry"
    """A failed or interrupted batch run again with the same members."""


class CallStatus(enum.StrEnum):
    OK = "ok"
    ERROR = "error"


class TokenOutcome(enum.StrEnum):
    """The terminal outcome of a token. A token has at most one (a primary key enforces it); a token with
    none is unfinished work that recovery picks up. There is deliberately no non-terminal member: being
    in flight is the absence of an outcome, so no list of 'terminal' values can drift from this enum."""

    COMPLETED = "completed"
    """Durably written to the pipeline's default sink."""
    ROUTED = "routed"
    """Durably written to a sink a transform routed it to."""
    FAILED = "failed"
    """A node returned an error for it (written to the error sink if one is configured)."""
    QUARANTINED = "quarantined"
    """The source rejected the record (written to the quarantine sink if one is configured)."""
    FILTERED = "filtered"
    """A transform returned no rows for it."""
    EXPANDED = "expanded"
    """A transform fanned it out into child tokens, which carry on."""
    CONSUMED = "consumed"
    """It went into a completed aggregation batch, whose outputs are new tokens."""
