"""A run's verification as `verify` prints it: each artifact re-hashed where it lives, the stored payloads
counted, and every finding that is not a match."""

from __future__ import annotations

from typing import Any

import attrs

from elspeth.console import plural
from elspeth.evidence.verify import Finding, Status, Verification


def render_verification(v: Verification) -> str:
    lines = [f"Run {v.run_id}", "  artifacts"]
    lines += [_finding_line(f) for f in v.artifacts] or ["    none recorded"]
    payloads = [f"{v.payloads_matching:,} match"] + [
        f"{n:,} {_status_text(status)}"
        for status in (Status.MISMATCH, Status.PURGED)
        if (n := sum(1 for f in v.payloads if f.status is status))
    ]
    lines.append("  payloads   " + ", ".join(payloads))
    lines += [_finding_line(f) for f in v.payloads]
    mismatches = v.count(Status.MISMATCH)
    lines.append(f"{plural(mismatches, 'mismatch')}" if mismatches else "Everything checked matches the Landscape.")
    return "\n".join(lines)


def verification_json(v: Verification) -> dict[str, Any]:
    return {
        "run_id": v.run_id,
        "artifacts": [attrs.asdict(f) for f in v.artifacts],
        "payloads_matching": v.payloads_matching,
        "payloads": [attrs.asdict(f) for f in v.payloads],
    }


def _status_text(status: Status) -> str:
    """A mismatch stands out in capitals; the other statuses read as they are."""
    return status.upper() if status is Status.MISMATCH else str(status)


def _finding_line(f: Finding) -> str:
    return f"    {_status_text(f.status):<11}  {f.subject}: {f.detail}"
