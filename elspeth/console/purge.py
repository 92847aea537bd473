"""Purges: what `purge` says it keeps, would purge and purged, and a purge record as `explain` shows it."""

from __future__ import annotations

from elspeth.console import plural, when
from elspeth.landscape.retention import Purge, Selection


def render_selection(chosen: Selection, *, dry_run: bool) -> str:
    """What `purge` prints before it changes anything: the runs kept and why, then that there is nothing to
    purge, or (a dry run) what would be purged. Empty when runs are about to be purged and none was kept."""
    lines = [f"kept {candidate.run_id}: {reason}" for candidate, reason in chosen.kept]
    if not chosen.purge:
        lines.append("Nothing to purge.")
    elif dry_run:
        lines += [
            f"would purge {candidate.run_id} ({candidate.status}, ended {when(candidate.ended_at) or '-'})"
            for candidate in chosen.purge
        ]
        lines.append(f"Dry run: {plural(len(chosen.purge), 'run')} would be purged; nothing changed.")
    return "\n".join(lines)


def purged_line(done: Purge) -> str:
    return (
        f"purged {done.run_id}: {plural(done.rows_cleared, 'row')}, {plural(done.tokens_cleared, 'token')}, "
        f"{plural(done.batch_members_cleared, 'batch member')}, {plural(done.calls_cleared, 'call')}, "
        f"{plural(done.payload_files_removed, 'payload file')}"
    )


def purged_total(runs: int) -> str:
    return f"Purged {plural(runs, 'run')}; their records and hashes stay (elspeth explain RUN_ID)."


def purge_record(purge: Purge) -> str:
    """A purged run's purge, on the `purged` line of its overview."""
    return (
        f"{when(purge.purged_at)} by {purge.purged_by} (elspeth {purge.elspeth_version}): row and call bodies "
        f"removed, every hash kept; attributable only ({purge.rows_cleared:,} rows, {purge.calls_cleared:,} "
        f"calls, {purge.payload_files_removed:,} payload files)"
    )
