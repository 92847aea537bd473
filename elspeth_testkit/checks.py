"""Scenario bodies shared by several plugin kinds: each takes a Harness and fails through it."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from attrs import has

from elspeth.api import Capability, NoConfig
from elspeth.errors import ConfigError
from elspeth.landscape import redaction
from elspeth.landscape.database import upgrade_database
from elspeth.landscape.reading import BatchStatus, StateRecord, StateStatus
from elspeth.settings import is_secret_name, run_secrets, structure
from elspeth_testkit import fault_proxy
from elspeth_testkit.fault_proxy import FaultProxy
from elspeth_testkit.harness import Harness, RunResult
from elspeth_testkit.recovery_wire import PendingBatch, compare_across_resume
from elspeth_testkit.setups import Row, text_rows
from elspeth_testkit.wire_check import compare_wire_with_calls


def contract(h: Harness) -> None:
    """Registered under a usable name; options are attrs fields structured by cattrs; an unknown option is
    a ConfigError that names it."""
    cls = h.plugin.info.cls
    if not h.plugin.info.name.replace("_", "").replace("-", "").isalnum():
        h.fail("contract-name", f"plugin name {h.plugin.info.name!r} is not a plain identifier")
    config_class = cls.config_class
    if config_class is not NoConfig and not has(config_class):
        h.fail("contract-config-class", f"config_class {config_class!r} is not an attrs class")
    try:
        structure({"__not_an_option__": 1}, config_class, where="options")
    except ConfigError as exc:
        if "__not_an_option__" not in str(exc):
            h.fail("contract-config-error", f"an unknown option gave a ConfigError that does not name it: {exc}")
    else:
        h.fail("contract-config-error", "an unknown option `__not_an_option__` was accepted silently")


def artifact_matches_bytes(h: Harness, result: RunResult, sink_node: str, data: bytes) -> None:
    """The recorded artifact of the sink's last flush describes all the stored bytes (bug class 2)."""
    artifacts = [a for a in result.records().artifacts if a.node_id == sink_node]
    if not artifacts:
        h.fail("artifact-missing", f"no artifact was recorded for {sink_node}")
    last = artifacts[-1]  # in artifact_id order
    digest = hashlib.sha256(data).hexdigest()
    if (last.content_hash, last.size) != (digest, len(data)):
        h.fail(
            "artifact-bytes",
            f"the last artifact of {sink_node} records sha256 {last.content_hash[:12]} and {last.size} bytes, "
            f"but the destination holds {len(data)} bytes hashing to {digest[:12]}: the hash must describe the "
            "whole output, not the last batch",
            [last],
        )


def same_rows(
    h: Harness, invariant: str, got: list[Row], expected: list[Row], what: str, *, per_cause: bool = False
) -> None:
    """`got` holds exactly `expected`, in order, each once (compared as text). The message says how they
    differ: rows whose values changed, rows missing, rows duplicated, rows never expected, or only the order.
    With `per_cause` the invariant is `invariant` and the main cause: `-changed`, `-duplicated`, `-missing`,
    `-unexpected` or `-order`."""
    got_text, expected_text = text_rows(got), text_rows(expected)
    if got_text == expected_text:
        return
    want = Counter(_key(r) for r in expected_text)
    have = Counter(_key(r) for r in got_text)
    missing, extra = want - have, have - want
    duplicated = sum(n for k, n in extra.items() if k in want)
    unexpected = sum(n for k, n in extra.items() if k not in want)
    lost = sum(missing.values())
    # As many rows as are both lost and new are the same rows with changed values.
    changed = min(lost, unexpected)
    counts = {
        "changed": changed,
        "duplicated": duplicated,
        "missing": lost - changed,
        "unexpected": unexpected - changed,
    }
    words = {
        "changed": "with values that differ from the expected ones",
        "duplicated": "duplicated",
        "missing": "missing",
        "unexpected": "that were never expected",
    }
    found = [f"{n} {words[cause]}" for cause, n in counts.items() if n]
    cause = next((c for c, n in counts.items() if n), "order")
    detail = ", ".join(found) or "the same rows in a different order"
    first = next(
        (i for i, (a, b) in enumerate(zip(got_text, expected_text, strict=False)) if a != b),
        min(len(got_text), len(expected_text)),
    )
    where = f"; the first difference is at row {first}" + (
        f": expected {_key(expected_text[first])}" if first < len(expected_text) else ": expected no more rows"
    )
    where += f", got {_key(got_text[first])}" if first < len(got_text) else ", got no more rows"
    shown = [{"which": "missing", **r} for r in expected_text if _key(r) in missing][:5]
    shown += [{"which": "extra", **r} for r in got_text if _key(r) in extra][:5]
    h.fail(
        f"{invariant}-{cause}" if per_cause else invariant,
        f"{what}: expected {len(expected)} rows in order, got {len(got)}: {detail}{where}",
        shown or got_text[:10],
    )


def _key(row: dict[str, str]) -> str:
    return json.dumps(row, sort_keys=True)


def deterministic_outputs(h: Harness, first: RunResult, second: RunResult) -> None:
    """Two runs over the same input record the same output hashes, node by node, token by token."""

    def hashes(result: RunResult) -> list[tuple[Any, ...]]:
        return sorted(
            (s.node_id, s.operation, s.token_id, s.input_hash, s.output_hash)
            for s in result.records().states
            if s.operation == "process"
        )

    a, b = hashes(first), hashes(second)
    if a != b:
        diff = [dict(zip(("node", "op", "token", "in", "out"), x, strict=True)) for x in a if x not in b]
        h.fail("deterministic-hashes", "the same input gave different recorded hashes in two runs", diff[:10])


def empty_run(h: Harness, settings: dict[str, Any]) -> RunResult:
    result = h.run(settings)
    h.check(result)
    return result


def encoded_forms(secret: str) -> set[bytes]:
    """The ways a leaked secret shows up in stored bytes: as is, JSON-escaped, percent-encoded, hex, and
    base64 (standard and URL-safe) at each of the three alignments it can take inside a longer value; the
    very forms the engine's Redactor replaces."""
    return {form.encode() for form in redaction.encoded_forms(secret)}


def secret_options(h: Harness, options: dict[str, Any]) -> dict[str, str]:
    """The plugin's options whose names look secret, with the values this scenario gives them."""
    return {k: v for k, v in options.items() if is_secret_name(k) and isinstance(v, str) and len(v) >= 6}


def secrets_stay_out(h: Harness, settings: dict[str, Any], options: dict[str, Any]) -> None:
    """Run with the setup's credentials and look for them, byte for byte, in every Landscape file, every
    stored payload and everything the run printed or logged (bug class 19)."""
    secrets = secret_options(h, options)
    h.require(secrets, "the plugin's setup passes no secret-looking option (api_key, password, sas_token, ...)")
    printed = io.StringIO()
    handler = logging.StreamHandler(printed)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            result = h.run(settings)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    h.check(result, expect_status=None)
    places = [
        p for p in h.workdir.rglob("*") if p.is_file() and (p.name.startswith("landscape.db") or "payloads" in p.parts)
    ]
    stored = {str(p.relative_to(h.workdir)): p.read_bytes() for p in places}
    output = printed.getvalue().encode()
    for name, value in secrets.items():
        forms = encoded_forms(value)
        leaked = [where for where, data in stored.items() if any(form in data for form in forms)]
        if any(form in output for form in forms):
            leaked.append("the run's output or logs")
        if leaked:
            h.fail(
                "secret-leak", f"the value of option {name!r} (or an encoding of it) appears in: {', '.join(leaked)}"
            )


def wire_matches_calls(h: Harness, proxy: FaultProxy, result: RunResult) -> None:
    """Every request on the wire is a calls row under an existing state, with its full body; every failed
    one an ERROR call (classes 3, 4, 6, 7)."""
    proxy.wait_idle()
    exchanges = proxy.exchanges
    if not exchanges:
        h.fail(
            "wire-empty",
            "the plugin declares external calls, but none crossed the endpoint its setup was given; build its "
            "options from the `endpoint` argument of PluginSetup.options",
        )
    found = compare_wire_with_calls(exchanges, result.url, result.run_id, result.payload_dir, result.secrets)
    if found:
        first = found[0]
        more = f" (and {len(found) - 1} more)" if found[1:] else ""
        h.fail(first.invariant, first.message + more, first.rows)


@contextlib.contextmanager
def recovery_proxy(h: Harness) -> Iterator[FaultProxy | None]:
    """The fault proxy in front of the plugin's service for a recovery scenario, when the plugin declares
    external calls and its setup names a service (else None: it reaches its service directly). Its killed
    run, in a child process, and the resume both talk through it."""
    if not (h.plugin.has(Capability.EXTERNAL_CALLS) and h.plugin.setup.service):
        yield None
        return
    with h.proxied() as proxy:
        yield proxy


def wire_across_resume(h: Harness, proxy: FaultProxy | None, settings: dict[str, Any]) -> None:
    """Both attempts' exchanges against the Landscape of the run `h.run_killed` last killed, as it stands
    now (resumed or not): the wire check, but for what the kill cut off, and no job submitted again after
    the resume (`recovery_wire`; classes 3, 26). Call it before anything else crosses the proxy."""
    if proxy is None:
        return
    assert h.killed is not None, "run_killed() first"
    proxy.wait_idle()
    found = compare_across_resume(
        proxy.exchanges, h.url, h.killed, h.workdir / "payloads", frozenset(run_secrets(settings))
    )
    if found:
        first = found[0]
        others = ", ".join(sorted({v.invariant for v in found[1:]}))
        more = f" (and {len(found) - 1} more: {others})" if found[1:] else ""
        h.fail(first.invariant, f"across the SIGKILL and the resume: {first.message}{more}", first.rows)


def pending_completed(h: Harness, resumed: RunResult, pending: Iterable[PendingBatch]) -> None:
    """Each batch the kill left pending completed after the resume, polled with its checkpoint; when one did
    not, the message says how it ended instead, and why."""
    batches = {b.batch_id: b for b in resumed.records().batches}
    for batch in pending:
        final = batches[batch.batch_id]
        if final.status == BatchStatus.COMPLETED:
            continue
        error = json.loads(final.error_json or "{}")
        reason = error.get("reason") or error.get("message") or final.error_json
        again = [b.batch_id for b in batches.values() if b.retry_of == batch.batch_id]
        rerun = f"; the engine ran its rows again as batch {again[0]}" if again else ""
        h.fail(
            "pending-resumed",
            f"batch {batch.batch_id} of {batch.node_id}, pending at the kill with checkpoint {batch.checkpoint}, "
            f"ended '{final.status}' after the resume, not completed: its poll with that checkpoint answered "
            f"{reason}{rerun}",
            [final],
        )


def call_linkage(h: Harness, build: Callable[[Harness], dict[str, Any]]) -> None:
    h.require(h.plugin.has(Capability.EXTERNAL_CALLS), f"the {h.plugin.info.kind} declares no external calls")
    with h.proxied() as proxy:
        settings = build(h)
        proxy.clear()  # what setting up the input sent is not the plugin's
        result = h.run(settings)
        h.check(result)
        wire_matches_calls(h, proxy, result)


FAULTS: dict[str, Any] = {
    "http-500": fault_proxy.status(500),
    "http-429": fault_proxy.status(429, retry_after=0),
    "timeout": fault_proxy.timeout(1.5),
    "reset": fault_proxy.reset(),
    "malformed": fault_proxy.malformed(),
}


def sdk_failure(h: Harness, build: Callable[[Harness], dict[str, Any]]) -> None:
    """Each fault on the first request the plugin makes: an ERROR call, then a controlled error or a retry;
    never an unrecorded crash, never a lost row (class 7)."""
    h.require(h.plugin.has(Capability.EXTERNAL_CALLS), f"the {h.plugin.info.kind} declares no external calls")
    for name, fault in FAULTS.items():
        with h.proxied() as proxy:
            run_dir = h.workdir / name
            run_dir.mkdir()
            scenario = Harness(h.plugin, f"{h.scenario}[{name}]", run_dir, h.registry, proxy.url, h.strict)
            settings = build(scenario)
            proxy.clear()
            proxy.script(fault, first=1)
            result = scenario.run(settings)
            scenario.check(result, expect_status=None)
            wire_matches_calls(scenario, proxy, result)
            if result.summary.status not in ("completed", "failed"):
                scenario.fail("sdk-failure", f"the run ended {result.summary.status!r} after a {name} fault")


REFUSAL = "the conformance kit made the Landscape refuse this call record"
REFUSE_CALLS = (
    f"CREATE TRIGGER elspeth_kit_refuse_calls BEFORE INSERT ON calls BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END"
)


def audit_refused(h: Harness, build: Callable[[Harness], dict[str, Any]]) -> None:
    """The Landscape refuses every call record (as a full disk or a lost database would): the plugin must let
    that failure stop it, so the run ends failed for that refusal, never completed, and the engine fails the
    state the refusal reached (class 22). A plugin that records inside `try/except` and carries on leaves
    requests that crossed the wire with no record, under states that say all went well."""
    h.require(h.plugin.has(Capability.EXTERNAL_CALLS), f"the {h.plugin.info.kind} declares no external calls")
    with h.proxied() as proxy:
        settings = build(h)
        proxy.clear()
        _refuse_call_records(h)
        result = h.run(settings)
        proxy.wait_idle()
        h.check(result, expect_status=None)
        if not proxy.exchanges:
            h.fail(
                "wire-empty",
                "the plugin declares external calls, but none crossed the endpoint its setup was given; build its "
                "options from the `endpoint` argument of PluginSetup.options",
            )
        error = result.summary.error or ""
        if result.summary.status != "failed" or REFUSAL not in error:
            ended = f"ended {result.summary.status!r}" + (f" ({error})" if error else "")
            h.fail(
                "audit-failure-ignored",
                f"the Landscape refused to record any call, yet after {len(proxy.exchanges)} request(s) on the wire "
                f"the run {ended}, not failed for the refused record: a failed record_call (or ctx.call) must "
                "propagate out of the plugin, never be caught and carried on from",
                _completed_states(result, h.plugin.info.name)[-10:],
            )


def _completed_states(result: RunResult, plugin: str) -> list[StateRecord]:
    records = result.records()
    own = {n.node_id for n in records.nodes if n.plugin == plugin}
    return [s for s in records.states if s.node_id in own and s.status == StateStatus.COMPLETED]


def _refuse_call_records(h: Harness) -> None:
    """Create the scenario's Landscape, at the schema a run would create, with a trigger that aborts every
    insert into `calls`."""
    upgrade_database(h.url)
    with contextlib.closing(sqlite3.connect(h.database)) as db:
        db.execute(REFUSE_CALLS)
        db.commit()
