"""`azure_batch_llm` through the Batch API of the emulator: the whole JSONL recorded (seed 001), a scripted
lifecycle for every ending (completed with missing, malformed and failed lines; failed; expired;
cancelled) with every row accounted for, faults on every operation, and a SIGKILL while pending."""

from __future__ import annotations

import hashlib
import json
import time

import attrs
import openai
import pytest

from elspeth import canonical
from elspeth.landscape.recorder import INLINE_LIMIT
from elspeth_testkit import fault_proxy
from elspeth_testkit.azure_openai_emulator import BatchScript, EmulatedError

from .conftest import API_KEY, CLASSIFY, rows

NODE = "aggregate:batch"


def batch(bench, count=4, **options):
    options = bench.options(prompt=CLASSIFY, poll_interval_seconds=0.05, **options)
    return {"plugin": "azure_batch_llm", "name": "batch", "options": options, "trigger": {"count": count}}


def run(bench, data, count=4, **options):
    summary = bench.run(bench.settings(data, aggregations=[batch(bench, count, **options)]))
    assert summary.status == "completed", summary.error
    return summary


def operations(calls):
    return [(c["request"]["operation"], c["status"]) for c in calls]


def upload_of(calls):
    (upload,) = [c for c in calls if c["request"]["operation"] == "files.create"]
    return upload


def submissions(bench):
    return len(bench.emulator.requests_to("POST", r"^/openai/batches$"))


def test_rows_come_back_in_order_with_their_answers_and_every_call_is_recorded(bench):
    summary = run(bench, rows(7))
    out = bench.lines("main")
    assert [r["id"] for r in out] == list(range(7))
    assert all(r["llm_status"] == "ok" and r["llm_error"] is None for r in out)
    assert all(r["llm_response"] in ("positive", "negative", "neutral") for r in out)
    assert len({r["llm_custom_id"] for r in out}) == 7
    assert all(r["llm_custom_id"].endswith(f"-row-{r['id'] % 4}") for r in out)

    calls = bench.calls(summary.run_id)
    assert all((c["call_type"], c["provider"]) == ("llm_batch", "azure_openai") for c in calls)
    per_batch = [
        ("batches.list", "ok"),  # no batch an earlier attempt created for these rows
        ("files.create", "ok"),
        ("batches.create", "ok"),
        ("batches.retrieve", "ok"),  # validating: pending
        ("batches.retrieve", "ok"),  # completed
        ("files.content", "ok"),
    ]
    assert sorted(operations(calls)) == sorted(per_batch * 2)
    states = bench.query(
        "SELECT s.state_id, s.operation FROM node_states s WHERE s.run_id = :r AND s.node_id = :n",
        r=summary.run_id,
        n=NODE,
    )
    operation_of = {s["state_id"]: s["operation"] for s in states}
    for call in calls:
        submitting = ("batches.list", "files.create", "batches.create")
        expected = "flush" if call["request"]["operation"] in submitting else "poll"
        assert operation_of[call["state_id"]] == expected
    batches = bench.query("SELECT status, trigger, checkpoint_json FROM batches WHERE run_id = :r", r=summary.run_id)
    assert [(b["status"], b["trigger"], b["checkpoint_json"]) for b in batches] == [
        ("completed", "count", None),
        ("completed", "end_of_source", None),
    ]
    bench.check(summary.run_id)


def test_seed_001_the_whole_jsonl_is_recorded_both_ways_and_big_bodies_hash_back_from_the_payload_store(bench):
    long = [{"id": i, "text": f"review {i}: " + "this product is quite something. " * 40} for i in range(40)]
    summary = run(bench, long, count=40, temperature=0)
    calls = {c["request"]["operation"]: c for c in bench.calls(summary.run_id)}

    upload = calls["files.create"]
    input_file = bench.emulator.files[upload["response"]["id"]]
    assert upload["request"]["file"] == input_file.data.decode(), "the recorded request holds the JSONL uploaded"
    lines = [json.loads(line) for line in upload["request"]["file"].splitlines()]
    assert len(lines) == 40 and lines[0]["body"]["messages"][0]["content"].startswith("Classify")
    assert lines[0]["body"]["temperature"] == 0 and lines[0]["url"] == "/chat/completions"

    download = calls["files.content"]
    output_file = bench.emulator.files[download["request"]["file_id"]]
    assert download["response"]["content"] == output_file.data.decode(), "the recorded response holds the output"

    for call, side in ((upload, "request"), (download, "response")):
        ref = call[f"{side}_ref"]
        assert ref is not None and call[f"{side}_json"] is None, f"a {side} this big lives in the payload store"
        stored = bench.payload(ref)
        assert len(stored) > INLINE_LIMIT
        assert hashlib.sha256(stored).hexdigest() == ref
        assert canonical.stable_hash(json.loads(stored)) == call[f"{side}_hash"]
    bench.check(summary.run_id)


@pytest.mark.parametrize("style", ["response", "error"])
def test_completed_with_missing_malformed_and_failed_lines_every_row_is_accounted_for(bench, style):
    bench.emulator.script_batches(
        BatchScript(
            polls=3,
            drop_lines={1},
            malformed_lines={2},
            error_lines={4},
            line_error=EmulatedError(400, "content_filter", "filtered by policy"),
            error_style=style,
        )
    )
    summary = run(bench, rows(6), count=6)
    out = bench.lines("main")
    assert [r["id"] for r in out] == list(range(6)), "nothing lost: one row out per row in"
    assert [r["llm_status"] for r in out] == ["ok", "missing", "malformed", "ok", "error", "ok"]
    assert out[1]["llm_response"] is None and "no line for this row" in out[1]["llm_error"]
    assert "could not be parsed" in out[2]["llm_error"]
    assert "content_filter: filtered by policy" in out[4]["llm_error"]
    assert bench.lines("errors") == []

    calls = bench.calls(summary.run_id)
    uploaded = [json.loads(line)["custom_id"] for line in upload_of(calls)["request"]["file"].splitlines()]
    assert [r["llm_custom_id"] for r in out] == uploaded, "each row traceable to its line by custom_id"
    downloads = [c for c in calls if c["request"]["operation"] == "files.content"]
    assert len(downloads) == 2, "the output file and the error file"
    assert custom_id_in(downloads, out[4]["llm_custom_id"])
    bench.check(summary.run_id)


def custom_id_in(downloads, custom_id):
    return any(custom_id in d["response"]["content"] for d in downloads)


@pytest.mark.parametrize("final", ["failed", "cancelled"])
def test_a_failed_or_cancelled_batch_sends_every_row_to_the_error_sink_without_resubmitting(bench, final):
    errors = ({"code": "invalid_request", "message": "the deployment is not a batch deployment", "line": 1},)
    bench.emulator.script_batches(BatchScript(polls=2, final=final, errors=errors))
    summary = run(bench, rows(3), count=3)
    assert bench.lines("main") == []
    failed = bench.lines("errors")
    assert [r["id"] for r in failed] == [0, 1, 2]
    assert f"ended {final}" in failed[0]["_error"]
    if final == "failed":
        assert "not a batch deployment (line 1)" in failed[0]["_error"]
    assert submissions(bench) == 1
    batches = bench.query("SELECT status, error_json FROM batches WHERE run_id = :r", r=summary.run_id)
    assert [b["status"] for b in batches] == ["failed"]
    assert json.loads(batches[0]["error_json"])["details"]["status"] == final
    bench.check(summary.run_id)


def test_an_expired_batch_is_submitted_again_and_completes(bench):
    bench.emulator.script_batches(BatchScript(polls=1, final="expired"), BatchScript(polls=1))
    summary = run(bench, rows(3), count=3)
    assert [r["llm_status"] for r in bench.lines("main")] == ["ok", "ok", "ok"]
    assert submissions(bench) == 2
    batches = bench.query("SELECT status, trigger, retry_of FROM batches WHERE run_id = :r", r=summary.run_id)
    assert [(b["status"], b["trigger"]) for b in batches] == [("failed", "count"), ("completed", "retry")]
    bench.check(summary.run_id)


def test_a_row_that_does_not_fit_the_prompt_is_not_submitted_and_says_why(bench):
    data = rows(3)
    del data[0]["text"]
    summary = run(bench, data, count=3)
    out = bench.lines("main")
    assert [r["llm_status"] for r in out] == ["error", "ok", "ok"]
    assert (
        out[0]["llm_custom_id"] is None and "not submitted" in out[0]["llm_error"] and "'text'" in out[0]["llm_error"]
    )
    jsonl = upload_of(bench.calls(summary.run_id))["request"]["file"]
    assert len(jsonl.splitlines()) == 2
    bench.check(summary.run_id)


FAULTS = {
    "upload-500": (fault_proxy.status(500), "POST", r"^/openai/files\?"),
    "create-429": (fault_proxy.status(429, retry_after=0), "POST", r"^/openai/batches\?"),
    "upload-malformed": (fault_proxy.malformed(), "POST", r"^/openai/files\?"),
    # The service creates the batch, its answer is lost: the next attempt finds it by its tag, creates none.
    "create-malformed": (fault_proxy.malformed(), "POST", r"^/openai/batches\?"),
    "retrieve-reset": (fault_proxy.reset(), "GET", r"^/openai/batches/"),
    "retrieve-malformed": (fault_proxy.malformed(), "GET", r"^/openai/batches/"),
    "content-timeout": (fault_proxy.timeout(1.5), "GET", r"/content\?"),
    "content-503": (fault_proxy.status(503), "GET", r"/content\?"),
}


@pytest.mark.parametrize("fault", list(FAULTS.values()), ids=list(FAULTS))
def test_a_fault_on_any_operation_is_an_error_call_then_a_retry_and_nothing_is_lost(bench, fault):
    kind, method, path = fault  # a rule's path is searched in the target: path and query
    bench.proxy.script(kind, method=method, path=path, nth=1)
    summary = run(bench, rows(4), count=4)
    assert [r["llm_status"] for r in bench.lines("main")] == ["ok"] * 4
    assert submissions(bench) == 1
    calls = bench.calls(summary.run_id)
    assert [c["status"] for c in calls].count("error") == 1
    assert all(c["error"]["type"] for c in calls if c["status"] == "error")
    bench.check(summary.run_id)


def test_polls_that_keep_failing_give_the_batch_up_as_an_error_without_resubmitting(bench):
    bench.proxy.script(fault_proxy.status(500), method="GET", path=r"^/openai/batches/")
    summary = run(bench, rows(2), count=2, max_poll_errors=3, max_attempts=1)
    failed = bench.lines("errors")
    assert [r["id"] for r in failed] == [0, 1] and "3 polls in a row failed" in failed[0]["_error"]
    assert submissions(bench) == 1
    ops = operations(bench.calls(summary.run_id))
    submit = [("batches.list", "ok"), ("files.create", "ok"), ("batches.create", "ok")]
    assert ops == submit + [("batches.retrieve", "error")] * 3
    bench.check(summary.run_id)


def test_sigkill_while_pending_then_resume_completes_the_batch_with_a_single_submission(bench, tmp_path):
    bench.emulator.script_batches(BatchScript(polls=3))
    settings = bench.settings(rows(5), aggregations=[batch(bench, count=5)])
    kill = {"kind": "aggregate", "name": "azure_batch_llm", "method": "process_batch", "n": 2, "when": "before"}
    bench.killed(settings, "run-killed", kill)
    pending = bench.query("SELECT status, checkpoint_json FROM batches WHERE run_id = 'run-killed'")
    assert len(pending) == 1 and pending[0]["status"] == "executing"
    checkpoint = json.loads(pending[0]["checkpoint_json"])
    assert checkpoint["batch_id"] in bench.emulator.batches and len(checkpoint["custom_ids"]) == 5

    resumed = bench.resume("run-killed", settings)
    assert resumed.status == "completed", resumed.error
    assert submissions(bench) == 1, "the resume polled the submitted batch, it did not submit the rows again"
    assert len(bench.emulator.requests_to("POST", r"^/openai/files$")) == 1
    assert_equals_an_uninterrupted_run(bench, tmp_path)


SUBMIT_KILLS = {
    # point: (where the child SIGKILLs itself, remote batches created before it died)
    "upload-unrecorded": ({"die_in_sdk": {"operation": "files.create", "when": "after"}}, 0),
    "before-create": ({"die_in_sdk": {"operation": "batches.create", "when": "before"}}, 0),
    "create-unrecorded": ({"die_in_sdk": {"operation": "batches.create", "when": "after"}}, 1),
    "checkpoint-uncommitted": (
        {"kill": {"kind": "aggregate", "name": "azure_batch_llm", "method": "process_batch", "n": 1}},
        1,
    ),
}


@pytest.mark.parametrize(("point", "created"), list(SUBMIT_KILLS.values()), ids=list(SUBMIT_KILLS))
def test_sigkill_while_submitting_then_resume_creates_exactly_one_remote_batch(bench, tmp_path, point, created):
    settings = bench.settings(rows(5), aggregations=[batch(bench, count=5)])
    bench.killed(settings, "run-killed", **point)
    assert submissions(bench) == created
    assert bench.query("SELECT status, checkpoint_json FROM batches WHERE run_id = 'run-killed'") == [
        {"status": "executing", "checkpoint_json": None}
    ]

    bench.proxy.clear(script=False)  # the wire check covers the resume: the killed exchange has no record
    resumed = bench.resume("run-killed", settings)
    assert resumed.status == "completed", resumed.error
    assert submissions(bench) == 1, "one remote batch for these rows, wherever the crash landed"
    (remote,) = bench.emulator.batches.values()
    calls = bench.calls("run-killed")
    lookups = [c for c in calls if c["request"]["operation"] == "batches.list" and c["status"] == "ok"]
    assert [b["id"] for b in lookups[-1]["response"]["data"]] == ([remote.obj["id"]] if created else []), (
        "the lookup is recorded, with the batch a crash left unrecorded"
    )
    assert all(c["request"]["looking_for"] == remote.obj["metadata"] for c in lookups), "the intent, on record"
    checkpoint = bench.query("SELECT checkpoint_json FROM batches WHERE run_id = 'run-killed' AND retry_of IS NOT NULL")
    assert len(checkpoint) == 1 and checkpoint[0]["checkpoint_json"] is None
    assert_equals_an_uninterrupted_run(bench, tmp_path)


def test_the_lookup_pages_back_to_a_batch_many_other_batches_followed(bench):
    settings = bench.settings(rows(3), aggregations=[batch(bench, count=3)])
    bench.killed(settings, "run-killed", die_in_sdk={"operation": "batches.create", "when": "after"})
    (orphan,) = bench.emulator.batches
    sdk = openai.AzureOpenAI(azure_endpoint=bench.emulator.url, api_key=API_KEY, api_version="2024-10-21")
    other = sdk.files.create(file=("other.jsonl", b"", "application/jsonl"), purpose="batch")
    for i in range(100):
        sdk.batches.create(
            input_file_id=other.id, endpoint="/chat/completions", completion_window="24h", metadata={"n": str(i)}
        )
    bench.proxy.clear(script=False)
    resumed = bench.resume("run-killed", settings)
    assert resumed.status == "completed", resumed.error
    assert submissions(bench) == 1 + 100, "the killed run's batch and the others: no new one"
    calls = bench.calls("run-killed")
    lookups = [c["request"] for c in calls if c["request"]["operation"] == "batches.list"]
    assert [(r["limit"], "after" in r) for r in lookups] == [(100, False), (100, False), (100, True)]
    assert {c["request"]["batch_id"] for c in calls if c["request"]["operation"] == "batches.retrieve"} == {orphan}
    assert [r["llm_status"] for r in bench.lines("main")] == ["ok"] * 3
    bench.check("run-killed")


def test_the_lookup_stops_at_batches_older_than_its_age_limit(bench):
    sdk = openai.AzureOpenAI(azure_endpoint=bench.emulator.url, api_key=API_KEY, api_version="2024-10-21")
    other = sdk.files.create(file=("other.jsonl", b"", "application/jsonl"), purpose="batch")
    bench.emulator.clock = lambda: time.time() - 86400
    for _ in range(101):
        sdk.batches.create(input_file_id=other.id, endpoint="/chat/completions", completion_window="24h")
    bench.emulator.clock = time.time
    summary = run(bench, rows(2), count=2, lookup_max_age_seconds=3600)
    lookups = [c for c in bench.calls(summary.run_id) if c["request"]["operation"] == "batches.list"]
    assert len(lookups) == 1 and lookups[0]["response"]["has_more"], "a day-old page: no need to read on"
    assert submissions(bench) == 101 + 1
    bench.check(summary.run_id)


def test_the_api_key_never_reaches_the_landscape_the_payloads_or_the_output(bench):
    bench.emulator.script_batches(BatchScript(polls=2, error_lines={0}))
    bench.proxy.script(fault_proxy.status(500), method="GET", path=r"^/openai/batches/", nth=1)
    run(bench, rows(3), count=3)
    for path in bench.leftover_bytes():
        assert API_KEY.encode() not in path.read_bytes(), f"the api key is in {path}"


def assert_equals_an_uninterrupted_run(bench, tmp_path) -> None:
    """The resumed run-killed: five rows answered, its Landscape clean, its output an uninterrupted run's."""
    out = bench.lines("main")
    assert [r["id"] for r in out] == list(range(5)) and all(r["llm_status"] == "ok" for r in out)
    bench.check("run-killed")
    clean = attrs.evolve(bench, root=tmp_path / "clean")
    reference = run(clean, rows(5), count=5)
    assert clean.lines("main") == out, "the resumed run's output equals an uninterrupted run's"
    clean.check(reference.run_id)
