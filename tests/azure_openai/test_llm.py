"""The `azure_llm` transform through the real SDK, the emulator and the fault proxy: every attempt a recorded
call with the full body and completion, failures as ERROR calls, then retries or controlled row errors."""

from __future__ import annotations

import json

import pytest

from elspeth.errors import ConfigError
from elspeth.plugins.azure.llm import AzureLLMConfig
from elspeth.settings import structure
from elspeth_testkit import fault_proxy
from elspeth_testkit.azure_openai_emulator import EmulatedError, default_reply

from .conftest import API_KEY, CLASSIFY, rows


def llm(bench, **options):
    return {"plugin": "azure_llm", "options": bench.options(prompt=CLASSIFY, **options)}


def test_each_row_gets_its_answer_and_each_call_is_recorded_in_full_under_the_rows_state(bench):
    summary = bench.run(bench.settings(rows(5), transforms=[llm(bench, temperature=0, max_tokens=20)]))
    assert summary.status == "completed", summary.error
    out = bench.lines("main")
    assert [r["id"] for r in out] == list(range(5))
    for row in out:
        assert row["llm_response"] in ("positive", "negative", "neutral")
        body = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": CLASSIFY.replace("{{ text }}", row["text"])}],
        }
        assert row["llm_response"] == default_reply(body)

    calls = bench.calls(summary.run_id)
    states = bench.query(
        "SELECT state_id, token_id FROM node_states WHERE run_id = :r AND node_id = 'transform:azure_llm'",
        r=summary.run_id,
    )
    assert len(calls) == 5 and {c["state_id"] for c in calls} == {s["state_id"] for s in states}
    for call in calls:
        assert (call["call_type"], call["provider"], call["status"]) == ("llm", "azure_openai", "ok")
        body = call["request"]["body"]
        assert body["model"] == "gpt-4o-mini" and body["temperature"] == 0 and body["max_tokens"] == 20
        assert call["request"]["url"].endswith(
            "/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21"
        )
        response = call["response"]
        assert response["object"] == "chat.completion" and response["usage"]["total_tokens"] > 0
        assert response["choices"][0]["finish_reason"] == "stop"
        assert response["prompt_filter_results"], "Azure's own fields are kept in the recorded completion"
    bench.check(summary.run_id)


def test_json_mode_parses_the_answer_and_an_answer_that_is_not_json_is_the_rows_error(bench):
    bench.emulator.rule(r"number 3\b", "sure! here it is: {label: positive}")
    summary = bench.run(bench.settings(rows(5), transforms=[llm(bench, response_format="json")]))
    assert summary.status == "completed", summary.error
    out = bench.lines("main")
    assert [r["id"] for r in out] == [0, 1, 2, 4]
    assert all(set(r["llm_response"]) == {"label"} for r in out)
    errors = bench.lines("errors")
    assert [r["id"] for r in errors] == [3] and "not JSON" in errors[0]["_error"]
    calls = bench.calls(summary.run_id)
    assert len(calls) == 5, "a bad answer is not retried: the service answered, the answer is the row's problem"
    assert all(c["request"]["body"]["response_format"] == {"type": "json_object"} for c in calls)
    bench.check(summary.run_id)


def test_a_field_the_prompt_needs_is_the_rows_error_naming_it_and_nothing_is_sent(bench):
    data = rows(3)
    del data[1]["text"]
    summary = bench.run(bench.settings(data, transforms=[llm(bench)]))
    assert summary.status == "completed", summary.error
    errors = bench.lines("errors")
    assert [r["id"] for r in errors] == [1]
    assert "'text'" in errors[0]["_error"] and "option `prompt`" in errors[0]["_error"]
    assert len(bench.calls(summary.run_id)) == 2
    bench.check(summary.run_id)


def test_a_runaway_template_fails_its_row_not_the_run(bench):
    prompt = (
        "{% if id == 1 %}{{ 'a' * 200000000 }}{% endif %}"
        "{% if id == 2 %}{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}{% endif %}"
        "{% if id == 3 %}{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}{% endif %}"
        "Classify: {{ text }}"
    )
    transform = {"plugin": "azure_llm", "options": bench.options(prompt=prompt)}
    summary = bench.run(bench.settings(rows(5), transforms=[transform]))
    assert summary.status == "completed", summary.error
    errors = bench.lines("errors")
    assert [r["id"] for r in errors] == [1, 2, 3]
    assert all("option `prompt`: the template was stopped on this row" in r["_error"] for r in errors)
    assert [r["id"] for r in bench.lines("main")] == [0, 4]
    assert len(bench.calls(summary.run_id)) == 2
    bench.check(summary.run_id)


def test_system_prompt_is_a_template_too(bench):
    system = "You are a careful rater of {{ id }}. Labels: yes, no"
    summary = bench.run(bench.settings(rows(2), transforms=[llm(bench, system_prompt=system)]))
    assert summary.status == "completed", summary.error
    messages = [c["request"]["body"]["messages"] for c in bench.calls(summary.run_id)]
    assert messages[1][0] == {"role": "system", "content": "You are a careful rater of 1. Labels: yes, no"}
    bench.check(summary.run_id)


FAULTS = {
    "http-500": fault_proxy.status(500),
    "http-429": fault_proxy.status(429, retry_after=0),
    "http-503-retry-after-ms": fault_proxy.status(503, headers=(("retry-after-ms", "10"),)),
    "timeout": fault_proxy.timeout(1.5),
    "reset": fault_proxy.reset(),
    "malformed": fault_proxy.malformed(),
}


@pytest.mark.parametrize("fault", list(FAULTS.values()), ids=list(FAULTS))
def test_a_fault_is_an_error_call_then_a_retry_and_no_row_is_lost(bench, fault):
    bench.proxy.script(fault, path=r"/chat/completions", nth=2)
    summary = bench.run(bench.settings(rows(4), transforms=[llm(bench)]))
    assert summary.status == "completed", summary.error
    assert [r["id"] for r in bench.lines("main")] == [0, 1, 2, 3]
    calls = bench.calls(summary.run_id)  # rows are in flight together: the fault hits one of them
    assert sorted(c["status"] for c in calls) == ["error", "ok", "ok", "ok", "ok"]
    at = next(i for i, c in enumerate(calls) if c["status"] == "error")
    failed, retried = calls[at], calls[at + 1]
    assert failed["error"]["type"] and failed["request"]["body"]["messages"], "the failed attempt is recorded in full"
    assert (failed["state_id"], failed["call_index"]) == (retried["state_id"], 0), "retried under the same state"
    assert retried["call_index"] == 1 and retried["status"] == "ok"
    bench.check(summary.run_id)


def test_a_fault_that_persists_ends_as_the_rows_retryable_error_after_every_attempt(bench):
    bench.proxy.script(fault_proxy.status(500), path=r"/chat/completions", first=6)
    one_at_a_time = {**llm(bench), "concurrency": 1}  # so that the first 6 requests are all row 0's
    summary = bench.run(bench.settings(rows(3), transforms=[one_at_a_time]))
    assert summary.status == "completed", summary.error
    # Row 0: 3 attempts, failed; the engine tries it again: 3 more, failed; it goes to the error sink.
    assert [r["id"] for r in bench.lines("errors")] == [0]
    assert "HTTP 500" in bench.lines("errors")[0]["_error"]
    assert [r["id"] for r in bench.lines("main")] == [1, 2]
    statuses = [c["status"] for c in bench.calls(summary.run_id)]
    assert statuses == ["error"] * 6 + ["ok", "ok"]
    failed = bench.query(
        "SELECT attempt, error_json FROM node_states WHERE run_id = :r AND status = 'failed'", r=summary.run_id
    )
    assert [s["attempt"] for s in failed] == [1, 2]
    assert json.loads(failed[0]["error_json"])["retryable"] is True
    bench.check(summary.run_id)


def test_a_refused_prompt_is_the_rows_error_and_is_not_retried(bench):
    bench.emulator.rule(r"number 2\b", EmulatedError(400, "content_filter", "filtered by policy"))
    summary = bench.run(bench.settings(rows(4), transforms=[llm(bench)]))
    assert summary.status == "completed", summary.error
    errors = bench.lines("errors")
    assert [r["id"] for r in errors] == [2] and "content_filter: filtered by policy" in errors[0]["_error"]
    calls = bench.calls(summary.run_id)
    assert [c["status"] for c in calls] == ["ok", "ok", "error", "ok"]
    bench.check(summary.run_id)


def test_a_wrong_key_fails_each_row_without_retrying_and_without_storing_the_key(bench):
    settings = bench.settings(rows(2), transforms=[llm(bench, api_key="sk-wrong-key-0000000000")])
    summary = bench.run(settings)
    assert summary.status == "completed", summary.error
    errors = bench.lines("errors")
    assert [r["id"] for r in errors] == [0, 1] and "HTTP 401" in errors[0]["_error"]
    assert len(bench.calls(summary.run_id)) == 2
    bench.check(summary.run_id)
    for path in bench.leftover_bytes():
        assert b"sk-wrong-key-0000000000" not in path.read_bytes(), path


def test_the_api_key_never_reaches_the_landscape_the_payloads_or_the_output(bench):
    bench.proxy.script(fault_proxy.status(500), path=r"/chat/completions", nth=1)
    summary = bench.run(bench.settings(rows(3), transforms=[llm(bench)]))
    assert summary.status == "completed", summary.error
    files = bench.leftover_bytes()
    assert any(p.name == "landscape.db" for p in files)
    for path in files:
        assert API_KEY.encode() not in path.read_bytes(), f"the api key is in {path}"
    wire = [e for e in bench.proxy.exchanges if e.request_header("api-key") == API_KEY]
    assert wire, "the key did go over the wire, in its header"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"api_key": None}, "option `api_key` is required"),
        ({"use_default_credential": True}, "exclude each other"),
        ({"prompt": "{{ text"}, "option `prompt` is not a valid template"),
        ({"system_prompt": "{% if %}"}, "option `system_prompt` is not a valid template"),
        ({"response_format": "xml"}, "option `response_format` is 'xml'"),
        ({"endpoint": "my-resource"}, "option `endpoint` must be an https:// URL"),
        ({"temperature": 3}, "option `temperature` must be between 0 and 2"),
        ({"max_attempts": 0}, "option `max_attempts` must be a number greater than 0"),
        ({"promt": "x"}, "promt"),
    ],
)
def test_bad_options_are_config_errors_that_name_the_option(options, message):
    base = {"endpoint": "https://r.openai.azure.com", "deployment": "d", "api_key": API_KEY, "prompt": "{{ text }}"}
    merged = {k: v for k, v in {**base, **options}.items() if v is not None}
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("`", "`")):
        structure(merged, AzureLLMConfig, where="transforms[0].options")


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ('{"score": 1e400}', "too big for a float"),
        ('{"score": NaN}', "NaN is not valid JSON"),
        ('{"id": 18014398509481985}', "no audit trail can hold exactly"),
        ('["a", "b"]', "the answer is a JSON list"),
    ],
)
def test_json_answers_the_landscape_cannot_hold_exactly_are_the_rows_error(bench, answer, why):
    bench.emulator.rule(r"number 1\b", answer)
    summary = bench.run(bench.settings(rows(2), transforms=[llm(bench, response_format="json")]))
    assert summary.status == "completed", summary.error
    assert [r["id"] for r in bench.lines("main")] == [0]
    errors = bench.lines("errors")
    assert [r["id"] for r in errors] == [1] and why in errors[0]["_error"]
    bench.check(summary.run_id)
