"""A row's lineage as `explain RUN_ID --row N` shows it: payload, tokens, every state with the values its
step changed and the calls it made, the batches it joined, and its outcomes."""

from __future__ import annotations

import json
from typing import Any

import attrs

from elspeth.console import indent, printable, short_hash, table
from elspeth.landscape.lineage import RowLineage
from elspeth.landscape.row_values import StepValues

VALUE_CHARS = 60
"""A step's value longer than this, as JSON, is shortened in the text; the JSON output keeps it whole."""
_PAYLOAD_INLINE_CHARS = 100
_CHANGE_MARK = {"added": "+", "removed": "-", "changed": "~"}


def render_lineage(r: RowLineage, values: dict[int, StepValues]) -> str:
    """`values` holds the step values of the row's states, by state id (`row_values.step_values`)."""
    lines = [f"Run {r.run_id}, row {r.row_id} (rows count from 0)"]
    shortened = False
    payload = _compact(r.payload)
    if r.purged:
        lines.append("  payload    (purged: attributable by its sha256 only)")
    elif len(payload) <= _PAYLOAD_INLINE_CHARS:
        lines.append(f"  payload    {payload}")
    else:
        lines += ["  payload", *indent(json.dumps(r.payload, indent=2, ensure_ascii=False), 4)]
    lines.append(f"  sha256     {r.payload_hash or '-'}")
    if r.quarantined:
        lines.append(f"  quarantined: {_reason_text(r.quarantine_reason)}")
    lines += ["", "Tokens"]
    token_rows = [(k.token_id, k.parent_token_id, k.origin_node_id, k.origin_batch_id) for k in r.tokens]
    lines += indent(table(("TOKEN", "PARENT", "FROM NODE", "FROM BATCH"), token_rows))
    lines += ["", "Node states, in order"]
    for s in r.states:
        token = f"token {s.token_id}, " if s.token_id is not None else ""
        lines.append(
            f"  #{s.state_id} {s.node_id} {s.operation} ({token}attempt {s.attempt}): {s.status}  "
            f"in {short_hash(s.input_hash) or '-'} out {short_hash(s.output_hash) or '-'}"
        )
        step = values.get(s.state_id)
        if step is not None:
            step_lines, cut = _render_step(step)
            lines += step_lines
            shortened = shortened or cut
        if s.error is not None:
            lines.append(f"      error: {_compact(s.error)}")
        for c in s.calls:
            latency = f" {c.latency_ms:.0f}ms" if c.latency_ms is not None else ""
            lines.append(f"      call {c.call_index}: {c.call_type} {c.provider} {c.status}{latency}")
            lines.append(f"        request  {short_hash(c.request_hash)}  {c.request_preview}")
            if c.response_hash or c.response_preview:
                lines.append(f"        response {short_hash(c.response_hash)}  {c.response_preview or ''}")
            if c.error is not None:
                lines.append(f"        error    {_compact(c.error)}")
    if r.batches:
        lines += ["", "Batches it joined"]
        batch_rows = [
            (b.batch_id, b.node_id, b.status, b.trigger, b.flush_state_id, f"{len(b.row_tokens)}/{b.members}")
            for b in r.batches
        ]
        lines += indent(table(("BATCH", "NODE", "STATUS", "TRIGGER", "FLUSH STATE", "ITS TOKENS"), batch_rows))
    lines += ["", "Outcomes"]
    outcome_rows = [
        (
            o.token_id,
            o.outcome,
            o.node_id,
            o.sink_node_id,
            o.artifact.uri if o.artifact else None,
            short_hash(o.artifact.content_hash) if o.artifact else None,
            _reason_text(o.reason) if o.reason is not None else None,
        )
        for o in r.outcomes
    ]
    if outcome_rows:
        headers = ("TOKEN", "OUTCOME", "DECIDED AT", "SINK", "ARTIFACT", "SHA256", "REASON")
        lines += indent(table(headers, outcome_rows))
    else:
        lines.append("  none yet: the run has unfinished work for this row (elspeth resume finishes it)")
    if shortened:
        lines += ["", f"Values longer than {VALUE_CHARS} characters are shortened (…); --json shows them whole."]
    return "\n".join(lines)


def lineage_json(r: RowLineage, values: dict[int, StepValues]) -> dict[str, Any]:
    return {**attrs.asdict(r), "values": [attrs.asdict(v) for v in values.values()]}


def _render_step(step: StepValues) -> tuple[list[str], bool]:
    """A transform step's values under its state line: each changed field, or why there is nothing to show;
    and whether a value was shortened."""
    if step.note != "changed":
        note = {"failed": "no output (failed)"}.get(step.note, step.note)
        return [f"      values: {note}"], False
    lines, cut = [], False
    for change in step.changes:
        name = printable(change.field, one_line=True) or "value"
        before, cut_before = _short(change.before)
        after, cut_after = _short(change.after)
        cut = cut or cut_before or cut_after
        shown = {"added": after, "removed": before}.get(change.change, f"{before} -> {after}")
        lines.append(f"      {_CHANGE_MARK[change.change]} {name}: {shown}")
    return lines, cut


def _short(value: Any) -> tuple[str, bool]:
    """A value as JSON (a string in quotes: "1" is not 1), cut to VALUE_CHARS."""
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    if len(text) <= VALUE_CHARS:
        return text, False
    return text[: VALUE_CHARS - 1] + "…", True


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return printable(value, one_line=True)
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def _reason_text(reason: Any) -> str:
    """A recorded reason is often just {"reason": "..."}: show the sentence, not the JSON around it."""
    if isinstance(reason, dict) and set(reason) == {"reason"}:
        return printable(str(reason["reason"]), one_line=True)
    return _compact(reason)
