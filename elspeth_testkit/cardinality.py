"""How many rows an aggregate gives per batch (bug class 25): the input the kit feeds it, with zero, empty
and false values, what each batch took in and gave out, and the rules a batch may be held to.

An aggregate that declares its `Cardinality` is held to it. One that declares nothing is held to the rule
its outputs on the ordinary rows show, when one does: every batch one output per input, one per batch, or
one per distinct value of one field, two, or all of them, which the outputs carry (each group's values
exactly once). A rule the ordinary
rows merely do not contradict is not enough to judge by: one output per input is not concluded for an
aggregate whose outputs are its own input rows (or parts of them), as a filter's are, since its count may
rightly depend on the values.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest
from attrs import frozen

from elspeth.api import Aggregate, Cardinality, Row, group_key
from elspeth.canonical import dumps
from elspeth.landscape.reading import MemberRecord
from elspeth.settings import structure

if TYPE_CHECKING:
    from elspeth_testkit.harness import Harness, RunResult

FALSY_BY_TYPE: dict[type, Any] = {bool: False, int: 0, float: 0.0, str: "", list: [], dict: {}}
OTHER_FALSY = (0, False, "", [])
"""Falsy values of other types, to put beside a field's own: distinct values a careless key merges."""
MAX_FIELDS = 12
"""Fields given falsy values, in the order the rows first name them (each costs two batches)."""
ORDINARY = "ordinary rows"


@frozen
class Rule:
    cardinality: Cardinality
    fields: tuple[str, ...] = ()

    def expected(self, rows: list[Row]) -> int | None:
        return self.cardinality.expected(rows, self.fields)

    def describe(self) -> str:
        return self.cardinality.describe(self.fields)


@frozen
class SeenBatch:
    """One batch as the Landscape holds it after its last attempt: its input rows and either its outputs
    (completed) or its error (failed)."""

    batch_id: int
    label: str
    ordinary: bool
    inputs: list[Row]
    outputs: list[Row] | None
    error: dict[str, Any] | None

    def describe(self) -> str:
        return f"batch {self.batch_id} ({self.label})"


# ------------------------------------------------------------ the input


def falsy_of(value: Any) -> Any:
    """The zero or empty value of `value`'s own type (None stays None)."""
    return FALSY_BY_TYPE.get(type(value), value)


def truthy(rows: list[Row]) -> list[Row]:
    """`rows` with every false, zero or empty scalar made true of its own type (a new number above the
    field's others, "x", true), so that the ordinary rows show the aggregate's rule on values that are all
    set, and each variant below has a falsy value in one field only."""
    top: dict[str, float] = {}
    for row in rows:
        for k, v in row.items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                top[k] = max(top.get(k, 0), abs(v))
    out = []
    for row in rows:
        changed = dict(row)
        for k, v in row.items():
            if v is False:
                changed[k] = True
            elif v == "" and isinstance(v, str):
                changed[k] = "x"
            elif isinstance(v, int | float) and not isinstance(v, bool) and v == 0:
                top[k] = top.get(k, 0) + 1
                changed[k] = type(v)(top[k])
        out.append(changed)
    return out


def cardinality_input(base: list[Row], batch: int) -> tuple[list[Row], list[str]]:
    """Rows for one run with a count trigger of `batch`, and a label per row naming its batch's variant:
    the ordinary rows made truthy (at least two batches, whole batches) and a batch of them each twice,
    then per field a batch in which every row has that field's zero or empty value of its own type (a total
    of 0, a key of ""), then per field a batch mixing an ordinary row, that value and falsy values of other
    types (0, false and "" side by side). The mixed batches come last: an aggregate that cannot take a value
    of another type may fail on them."""
    base = truthy(base)
    size = -(-max(len(base), 2 * batch) // batch) * batch
    # The batch of doubled rows has fewer distinct values in every field than rows, which tells a rule of
    # one output per group from a count that matched the groups of the other batches by chance (the last
    # three rows of each batch of the generic rows are always three groups).
    ordinary = [base[i % len(base)] for i in range(size)] + [base[i // 2 % len(base)] for i in range(batch)]
    rows, labels = list(ordinary), [ORDINARY] * len(ordinary)
    fields = list(dict.fromkeys(k for r in base for k in r))[:MAX_FIELDS]
    first = [base[i % len(base)] for i in range(batch)]
    for name in fields:
        own = falsy_of(next(r[name] for r in base if name in r))
        rows += [{**r, name: falsy_of(r.get(name, own))} for r in first]
        labels += [f"{name!r} {json.dumps(own)} in every row"] * batch
    for name in fields:
        own = falsy_of(next(r[name] for r in base if name in r))
        others = [v for v in OTHER_FALSY if dumps(v) != dumps(own) and type(v) is not type(own)][:2]
        values = [first[0].get(name, own), own, *others]
        mixed = [{**r, name: values[i]} if i < len(values) else r for i, r in enumerate(first)]
        rows += mixed
        labels += [f"{name!r} " + ", ".join(json.dumps(v) for v in values[1:]) + " among ordinary values"] * batch
    return rows, labels


# ------------------------------------------------------------ judging


def fits(rule: Rule, batch: SeenBatch, *, labelled: bool = False) -> bool:
    """Whether a completed batch's outputs obey `rule`. `labelled` (an inferred group rule) also wants each
    group's values carried by exactly one output."""
    assert batch.outputs is not None
    if rule.expected(batch.inputs) != len(batch.outputs):
        return False
    if not (labelled and rule.fields):
        return True
    if any(f not in out for out in batch.outputs for f in rule.fields):
        return False
    carried = Counter(group_key(out, rule.fields) for out in batch.outputs)
    return set(carried) == {group_key(r, rule.fields) for r in batch.inputs} and max(carried.values()) == 1


def candidates(batches: list[SeenBatch]) -> list[Rule]:
    """The rules the kit can infer, simplest first: per row, per batch, per distinct value of one field, of
    two, of all of them (a dedupe of whole rows)."""
    fields = list(dict.fromkeys(k for b in batches for r in b.inputs for k in r))
    groups = [(f,) for f in fields] + list(itertools.combinations(fields, 2))
    if len(fields) > 2:
        groups.append(tuple(fields))
    return [
        Rule(Cardinality.ONE_PER_ROW),
        Rule(Cardinality.ONE_PER_BATCH),
        *(Rule(Cardinality.ONE_PER_GROUP, g) for g in groups),
    ]


def passes_rows_through(batches: list[SeenBatch]) -> bool:
    """Every output is one of its batch's input rows, or a part of one (same fields, same values): a filter
    or a pass-through, whose count may depend on the values."""
    for batch in batches:
        assert batch.outputs is not None
        items = [{(k, dumps(v)) for k, v in r.items()} for r in batch.inputs]
        for out in batch.outputs:
            part = {(k, dumps(v)) for k, v in out.items()}
            if not any(part <= whole for whole in items):
                return False
    return True


def infer(ordinary: list[SeenBatch]) -> tuple[list[Rule], str]:
    """The rules every completed ordinary batch obeys, simplest first, and a note when one was set aside."""
    rules = [r for r in candidates(ordinary) if all(fits(r, b, labelled=True) for b in ordinary)]
    if not passes_rows_through(ordinary):
        return rules, ""
    # A filter that happened to keep every ordinary row looks like one output per input (or per distinct
    # id); only a rule that merged rows somewhere is evidence against a filter.
    kept = [r for r in rules if any(r.expected(b.inputs) != len(b.inputs) for b in ordinary)]
    note = (
        "its outputs are its own input rows (or parts of them), as a filter's are, and it kept every ordinary "
        "row, which does not show that its count never depends on the values"
        if len(kept) < len(rules)
        else ""
    )
    return kept, note


def lost_rows(rule: Rule, batch: SeenBatch) -> list[Row]:
    """The batch's inputs no output speaks for: under a group rule, the rows of groups no output carries;
    otherwise the inputs no output contains (all fields, same values); [] when nothing can tell."""
    assert batch.outputs is not None
    if rule.fields and all(f in out for out in batch.outputs for f in rule.fields):
        carried = {group_key(out, rule.fields) for out in batch.outputs}
        return [r for r in batch.inputs if group_key(r, rule.fields) not in carried]
    outs = [{(k, dumps(v)) for k, v in out.items()} for out in batch.outputs]
    lost = [r for r in batch.inputs if not any({(k, dumps(v)) for k, v in r.items()} <= o for o in outs)]
    return [] if len(lost) == len(batch.inputs) and batch.outputs else lost


def shown_rows(rule: Rule, batch: SeenBatch) -> list[dict[str, Any]]:
    """What a failure shows of a batch: the rows lost, else its inputs, then its outputs."""
    lost = lost_rows(rule, batch)
    rows = [{"which": "lost", **r} for r in lost] or [{"which": "input", **r} for r in batch.inputs]
    return rows + [{"which": "output", **r} for r in batch.outputs or []]


# ------------------------------------------------------------ reading the Landscape


def seen_batches(result: RunResult, node_id: str, labels: list[str]) -> list[SeenBatch]:
    """The batches of `node_id`, each after its last attempt (a retry replaces the batch it retries), with
    the label of the input row its first member came from."""
    records = result.records()
    batches = {b.batch_id: b for b in records.batches if b.node_id == node_id}
    retried = {b.retry_of: b.batch_id for b in batches.values() if b.retry_of is not None}
    members: dict[int, list[MemberRecord]] = {}
    for m in records.members:  # in (batch_id, ordinal) order
        members.setdefault(m.batch_id, []).append(m)
    tokens = records.tokens
    position = {r: i for i, r in enumerate(sorted({t.row_id for t in tokens if t.row_id is not None}))}
    row_of = {t.token_id: t.row_id for t in tokens}
    outputs: dict[int, list[Row]] = {}
    for t in tokens:  # in token_id order
        if t.origin_batch_id is not None:
            outputs.setdefault(t.origin_batch_id, []).append(json.loads(t.payload_json or "null"))
    seen = []
    for first in sorted(b for b, batch in batches.items() if batch.retry_of is None):
        last = first
        while last in retried:
            last = retried[last]
        batch, rows = batches[last], members.get(last, [])
        if not rows or batch.status not in ("completed", "failed"):
            continue
        index = position.get(row_of.get(rows[0].token_id), 0)
        label = labels[index] if index < len(labels) else "rows"
        seen.append(
            SeenBatch(
                last,
                label,
                label == ORDINARY,
                [json.loads(m.payload_json or "null") for m in rows],
                outputs.get(last, []) if batch.status == "completed" else None,
                json.loads(batch.error_json) if batch.error_json else None,
            )
        )
    return seen


# ------------------------------------------------------------ the scenario's verdict


def declared_rule(h: Harness, options: dict[str, Any]) -> Rule | None:
    """The rule the aggregate declares; None when it declares nothing (the default)."""
    cls = h.plugin.info.cls
    if not any("cardinality" in vars(c) for c in cls.__mro__ if c is not Aggregate and issubclass(c, Aggregate)):
        return None
    declared: Cardinality = cls.cardinality
    if declared is not Cardinality.ONE_PER_GROUP:
        return Rule(declared)
    plugin = cls(structure(options, cls.config_class, where="options"))
    try:
        return Rule(declared, tuple(plugin.group_fields()))
    finally:
        plugin.close()


def check_cardinality(h: Harness, batches: list[SeenBatch], declared: Rule | None, fed: int) -> None:
    """Every row fed is in a batch that completed or failed with a recorded error (an honest Error is no
    loss); no batch failed for breaking the declared cardinality; every completed batch gives the outputs
    the declared rule, or the rule the ordinary rows show, asks for."""
    members = sum(len(b.inputs) for b in batches)
    if members != fed:
        h.fail(
            "aggregate-rows-unaccounted",
            f"{fed} rows were fed to the aggregate, but its completed and failed batches hold {members}",
        )
    for batch in batches:
        details = (batch.error or {}).get("details") or {}
        if details.get("invariant") == "aggregate-cardinality":
            h.fail(
                "aggregate-cardinality",
                f"{batch.describe()}: the engine failed the batch, {batch.error and batch.error['reason']}",
                [{"which": "input", **r} for r in batch.inputs],
            )
    completed = [b for b in batches if b.outputs is not None]
    if declared is not None:
        if declared.cardinality is Cardinality.UNCONSTRAINED:
            pytest.skip("the aggregate declares its output count unconstrained (Cardinality.UNCONSTRAINED)")
        _hold(h, f"declares {declared.describe()}", [declared], completed)
        return
    ordinary = [b for b in completed if b.ordinary]
    h.require(
        ordinary,
        "no batch of the ordinary rows completed, so they show no rule to hold the others to: give rows it "
        "accepts in PluginSetup.input_rows (docs/conformance.md)",
        author_can_fix=True,
        invariant="aggregate-cardinality-undeclared",
    )
    rules, note = infer(ordinary)
    counts = ", ".join(f"{len(b.inputs)} -> {len(b.outputs or [])}" for b in ordinary)
    h.require(
        rules,
        "the aggregate declares no cardinality and no simple rule (one output per input row, one per batch, one "
        "per group of rows sharing a field the outputs carry) explains its outputs on the ordinary rows "
        f"(inputs -> outputs per batch: {counts})" + (f"; {note}" if note else "") + ": declare "
        "`cardinality` (elspeth.api.Cardinality, docs/writing-plugins.md) so that rows lost on zero, empty or "
        "false values can be caught",
        author_can_fix=True,
        invariant="aggregate-cardinality-undeclared",
    )
    shown = " or ".join(r.describe() for r in rules)
    _hold(
        h,
        f"declares no cardinality; its {len(ordinary)} batches of ordinary rows show {shown}",
        rules,
        [b for b in completed if not b.ordinary],
    )


def _hold(h: Harness, what: str, rules: list[Rule], batches: list[SeenBatch]) -> None:
    """Fail unless one of `rules` fits every batch; the failure shows the first rule's first broken batch."""
    if any(all(fits(rule, b) for b in batches) for rule in rules):
        return
    rule = rules[0]
    bad = next(b for b in batches if not fits(rule, b))
    assert bad.outputs is not None
    lost = lost_rows(rule, bad)
    h.fail(
        "aggregate-cardinality",
        f"the aggregate {what}, but {bad.describe()}: its {len(bad.inputs)} input rows should give "
        f"{rule.expected(bad.inputs)} output(s) under {rule.describe()}, and it gave {len(bad.outputs)}"
        + (f"; {len(lost)} input row(s) no output accounts for" if lost else "")
        + (
            " (a row dropped, or two groups merged, because a value is 0, empty or false is lost without a record)"
            if len(bad.outputs) < (rule.expected(bad.inputs) or 0)
            else " (more outputs than the rule allows)"
        ),
        shown_rows(rule, bad),
        "the batch's rows",
    )
