"""Sink scenarios: many writes per run, artifacts that describe every byte, exact recovery."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from elspeth.api import Capability, Sink, can_read_back
from elspeth.evidence.read_back import ReadBackContext
from elspeth.evidence.verify import Status, verify_landscape
from elspeth.landscape.reading import open_landscape
from elspeth.settings import structure
from elspeth_testkit import checks
from elspeth_testkit.harness import Harness, generic_rows
from elspeth_testkit.setups import Options, Row

pytestmark = pytest.mark.elspeth_kind("sink")
SINK = "sink:out"


def _pipeline(h: Harness, rows: list, subdir: str = "", **engine: int) -> tuple[dict, dict]:
    options = h.options(subdir)
    settings = h.pipeline(
        rows,
        sinks={"out": {"plugin": h.plugin.info.name, "options": options}},
        engine=engine,
    )
    return settings, options


def _readable(h: Harness) -> tuple[Callable[[Options], bytes], Callable[[bytes], list[Row]]]:
    """The setup's read_output and parse_output; the scenario skips when it gives none."""
    read, parse = h.plugin.setup.read_output, h.plugin.setup.parse_output
    h.require(
        read and parse, "the setup gives no read_output/parse_output to read the destination back", author_can_fix=True
    )
    assert read is not None and parse is not None
    return read, parse


def test_sink_contract(h: Harness, plugin_info) -> None:
    checks.contract(h)


def test_sink_empty_input(h: Harness, plugin_info) -> None:
    read, parse = _readable(h)
    settings, options = _pipeline(h, [])
    result = checks.empty_run(h, settings)
    data = read(options)
    checks.artifact_matches_bytes(h, result, SINK, data)
    checks.same_rows(h, "sink-empty", parse(data), [], "an empty run's output")


def test_sink_multi_write(h: Harness, plugin_info) -> None:
    """3+ write() calls and several flushes in one run: the destination holds the union, in order, once
    (bug class 1), and the last artifact's hash and size are those of all the stored bytes (class 2)."""
    read, parse = _readable(h)
    rows = generic_rows(23)
    settings, options = _pipeline(h, rows, write_batch_rows=4, checkpoint_every_rows=9)
    result = h.run(settings)
    h.check(result)
    states = [s for s in result.records().states if s.node_id == SINK]
    writes = [s for s in states if s.operation == "write"]
    flushes = [s for s in states if s.operation == "flush"]
    if len(writes) < 3 or len(flushes) < 2:
        h.fail("multi-write-exercised", f"expected 3+ writes and 2+ flushes, saw {len(writes)} and {len(flushes)}")
    data = read(options)
    checks.same_rows(h, "sink-overwrites", parse(data), rows, "after 6 writes and 3 flushes")
    checks.artifact_matches_bytes(h, result, SINK, data)


def test_sink_read_back(h: Harness, plugin_info) -> None:
    """A sink that implements the optional `read_back` (how `elspeth verify` re-hashes artifacts that are not
    local files): after several writes and flushes, `elspeth verify`'s check finds the last artifact matching,
    and the bytes read back are those the destination holds."""
    cls = h.plugin.info.cls
    h.require(
        issubclass(cls, Sink) and can_read_back(cls),
        "the sink does not implement the optional read_back (elspeth verify re-hashes file:// artifacts itself, and "
        "lists any other as not checked)",
    )
    settings, options = _pipeline(h, generic_rows(23), "read-back", write_batch_rows=4, checkpoint_every_rows=9)
    result = h.run(settings)
    h.check(result)

    def sink_for(_node_id: str) -> Sink:
        return cls(structure(options, cls.config_class, where="read_back"))

    with open_landscape(result.url, result.payload_dir) as landscape:
        findings = verify_landscape(landscape, result.run_id, sink_for).artifacts
        uri = [a for a in landscape.run(result.run_id).artifacts if a.node_id == SINK][-1].uri
        ctx = ReadBackContext(result.run_id, SINK, landscape.payloads)
    mine = [f for f in findings if f.subject.startswith(f"{SINK} ")]
    if [f.status for f in mine] != [Status.MATCHES]:
        h.fail("read-back", f"elspeth verify of the run's artifact: {[(f.status, f.detail) for f in mine]}")
    read = h.plugin.setup.read_output
    if read is not None and b"".join(sink_for(SINK).read_back(uri, ctx)) != read(options):
        h.fail("read-back", "read_back yields other bytes than the destination holds")


def _recovery(h: Harness, kill: dict) -> None:
    read, parse = _readable(h)
    rows = generic_rows(30)
    run_id = f"kill-{h.scenario}"
    with checks.recovery_proxy(h) as proxy:
        settings, options = _pipeline(h, rows, "killed", write_batch_rows=4, checkpoint_every_rows=10)
        if h.run_killed(settings, {"kind": "sink", "name": h.plugin.info.name, **kill}, run_id) == 0:
            h.fail("kill-point", f"the pipeline never reached the kill point {kill}")
        if not h.plugin.has(Capability.RESUMABLE):
            checks.wire_across_resume(h, proxy, settings)
            _resume_refused(h, run_id, settings, lambda: read(options))
            return
        resumed = h.resume(run_id, settings)
        h.check(resumed)
        checks.wire_across_resume(h, proxy, settings)
        data = read(options)
    reference_settings, reference_options = _pipeline(
        h, rows, "reference", write_batch_rows=4, checkpoint_every_rows=10
    )
    h.check(h.run(reference_settings))
    checks.same_rows(h, "resume", parse(data), rows, "the destination after a SIGKILL and resume", per_cause=True)
    checks.artifact_matches_bytes(h, resumed, SINK, data)
    if h.plugin.has(Capability.DETERMINISTIC) and data != read(reference_options):
        h.fail("resume-bytes", "the resumed output's bytes differ from an uninterrupted run's")


def _resume_refused(h: Harness, run_id: str, settings: dict, read_output: Callable[[], bytes]) -> None:
    """A sink that does not declare 'resumable' cannot continue a crashed run's output: the engine refuses the
    resume up front, saying why, and leaves the run and the destination as the crash left them (class 14)."""
    before = h.snapshot(run_id), read_output()
    reason = h.resume_refused(run_id, settings, "its sink does not declare 'resumable'")
    if "resumable" not in reason:
        h.fail("resume-refused", f"the resume was refused, but not because the sink is not resumable: {reason}")
    if h.snapshot(run_id) != before[0]:
        h.fail("resume-refused", "the refused resume changed what the Landscape holds of the run")
    if read_output() != before[1]:
        h.fail("resume-refused", "the refused resume changed the sink's destination")


def test_sink_recovery_mid_write(h: Harness, plugin_info) -> None:
    """Killed right after its 5th write(), rows written but not flushed: resume delivers them exactly once
    (classes 11, 14)."""
    _recovery(h, {"method": "write", "n": 5, "when": "after"})


def test_sink_recovery_after_flush(h: Harness, plugin_info) -> None:
    """Killed right after flush() returned, before the engine recorded it: durable but unrecorded rows must
    not appear twice after resume (class 14)."""
    _recovery(h, {"method": "flush", "n": 2, "when": "after"})


def test_sink_call_linkage(h: Harness, plugin_info) -> None:
    checks.call_linkage(h, lambda hh: _pipeline(hh, generic_rows(9), write_batch_rows=4, checkpoint_every_rows=5)[0])


def test_sink_sdk_failure(h: Harness, plugin_info) -> None:
    checks.sdk_failure(h, lambda hh: _pipeline(hh, generic_rows(9), write_batch_rows=4, checkpoint_every_rows=5)[0])


def test_sink_audit_refused(h: Harness, plugin_info) -> None:
    checks.audit_refused(h, lambda hh: _pipeline(hh, generic_rows(9), write_batch_rows=4, checkpoint_every_rows=5)[0])


def test_sink_secrets(h: Harness, plugin_info) -> None:
    settings, options = _pipeline(h, generic_rows(5))
    checks.secrets_stay_out(h, settings, options)
