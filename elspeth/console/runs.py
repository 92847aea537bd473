"""The runs of a Landscape: the list `runs` prints, and one run's overview from `explain RUN_ID`."""

from __future__ import annotations

from typing import Any

import attrs

from elspeth.console import indent, short_hash, table, when
from elspeth.console.purge import purge_record
from elspeth.evidence.grade import Grade
from elspeth.landscape.lineage import RunInfo, RunOverview


def render_runs(found: list[RunInfo], grades: dict[str, str]) -> str:
    """`grades` holds the grade level of each run, by run id."""
    if not found:
        return "No runs yet; start one with: elspeth run SETTINGS.yaml"
    rows = [
        (r.run_id, _status(r), when(r.started_at), when(r.ended_at), r.attempt, f"{r.rows:,}", grades[r.run_id])
        for r in found
    ]
    return table(("RUN", "STATUS", "STARTED", "ENDED", "ATTEMPTS", "ROWS", "GRADE"), rows)


def runs_json(found: list[RunInfo], grades: dict[str, str]) -> list[dict[str, Any]]:
    return [{**attrs.asdict(r), "grade": grades[r.run_id]} for r in found]


def render_overview(o: RunOverview, landscape_hint: str, run_grade: Grade) -> str:
    """`landscape_hint` is what the `explain --row` hint at the end needs to name the Landscape."""
    run = o.run
    outcomes = ", ".join(f"{name} {count:,}" for name, count in o.outcomes.items()) or "none"
    lines = [
        f"Run {run.run_id}: {_status(run)}",
        f"  started    {when(run.started_at)}",
        f"  ended      {when(run.ended_at) or '-'}",
        f"  attempts   {run.attempt}",
        f"  settings   {run.settings_path or '-'} (sha256 {short_hash(run.settings_hash)})",
        f"  elspeth    {run.elspeth_version}",
        f"  rows       {run.rows:,} read, {o.quarantined:,} quarantined",
        f"  outcomes   {outcomes}",
        f"  calls      {o.calls:,}",
        f"  grade      {run_grade.level}" + "".join(f"\n             {reason}" for reason in run_grade.reasons),
    ]
    if run.error:
        lines.append(f"  error      {run.error}")
    if o.purge is not None:
        lines.append(f"  purged     {purge_record(o.purge)}")
    lines += ["", "Nodes"]
    node_rows = [(n.position, n.node_id, n.kind, n.plugin, n.distribution, n.plugin_version) for n in o.nodes]
    lines += indent(table(("#", "NODE", "KIND", "PLUGIN", "DISTRIBUTION", "VERSION"), node_rows))
    lines += ["", f"Artifacts (latest of {o.flushes:,} flushes)"]
    artifact_rows = [
        (a.node_id, a.uri, f"{a.row_count:,}", f"{a.size:,}", short_hash(a.content_hash)) for a in o.artifacts
    ]
    lines += indent(table(("SINK", "URI", "ROWS", "BYTES", "SHA256"), artifact_rows))
    lines += ["", trace_hint(run.run_id, landscape_hint)]
    return "\n".join(lines)


def trace_hint(run_id: str, landscape_hint: str) -> str:
    """The command that explains a row of the run, which a completed run and a run's overview end with."""
    return f"Trace a row: elspeth explain {run_id} --row N{landscape_hint}"


def overview_json(o: RunOverview, run_grade: Grade) -> dict[str, Any]:
    return {**attrs.asdict(o), "grade": {"level": run_grade.level.value, "reasons": list(run_grade.reasons)}}


def _status(run: RunInfo) -> str:
    return f"{run.status}, purged" if run.purged_at is not None else run.status
