"""What `run` and `resume` print when a run ends: its status, speed, outcomes and artifacts."""

from __future__ import annotations

from elspeth.console import duration, plural, rate, short_hash, table
from elspeth.engine.summary import RunSummary


def render_summary(summary: RunSummary) -> str:
    outcomes = ", ".join(f"{name} {count:,}" for name, count in sorted(summary.outcomes.items())) or "none"
    this_attempt = summary.rows_this_attempt
    lines = [
        f"Run {summary.run_id} {summary.status} in {duration(summary.elapsed_seconds)} "
        f"({rate(this_attempt, summary.elapsed_seconds)})",
        f"  rows read  {summary.rows_read:,}"
        + ("" if this_attempt == summary.rows_read else f" ({this_attempt:,} by this attempt)"),
        f"  outcomes   {outcomes}",
    ]
    if summary.artifacts:
        lines.append("  artifacts")
        rows = [
            (
                a.sink,
                a.uri,
                plural(a.row_count, "row"),
                plural(a.size, "byte"),
                f"sha256 {short_hash(a.content_hash)}",
            )
            for a in summary.artifacts
        ]
        lines += ["    " + line for line in table(None, rows).splitlines()]
    return "\n".join(lines)
