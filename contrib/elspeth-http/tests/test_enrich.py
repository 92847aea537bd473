"""`http_enrich` in real pipelines: real httpx against the local JSON API, every run swept."""

from __future__ import annotations

import json
from pathlib import Path

from elspeth_http.conformance import LocalApi
from enrich_runs import run_enrich


def test_get_fills_the_url_from_the_row_and_adds_the_json_answer(tmp_path: Path, test_api: LocalApi) -> None:
    rows = [{"id": 1, "code": "a/b c?d"}, {"id": 2, "code": "ümlaut&x=1"}]
    ran = run_enrich(tmp_path, rows, {"url": test_api.url + "/lookup/{code}?id={id}", "output_field": "lookup"})
    assert ran.summary.status == "completed"
    assert ran.output() == [
        {"id": 1, "code": "a/b c?d", "lookup": {"key": "a/b c?d", "length": 7, "query": {"id": "1"}}},
        {"id": 2, "code": "ümlaut&x=1", "lookup": {"key": "ümlaut&x=1", "length": 10, "query": {"id": "2"}}},
    ]
    calls = ran.calls()
    assert [c["status"] for c in calls] == ["ok", "ok"]
    assert {(c["call_type"], c["provider"]) for c in calls} == {("http", "http_enrich")}
    assert calls[0]["request"] == {
        "method": "GET",
        "url": test_api.url + "/lookup/a%2Fb%20c%3Fd?id=1",
        "headers": {"Accept": "application/json"},
    }
    response = calls[0]["response"]
    assert response["status"] == 200
    assert response["json"] == ran.output()[0]["lookup"]
    assert response["headers"]["content-type"] == "application/json"
    assert "%C3%BCmlaut%26x%3D1" in calls[1]["request"]["url"]


def test_post_sends_the_body_fields_as_json_and_records_them(tmp_path: Path, test_api: LocalApi) -> None:
    rows = [{"id": 7, "name": "seven", "group": "g1", "secret_note": "not sent"}]
    options = {
        "url": test_api.url + "/score/{group}",
        "method": "POST",
        "body_fields": ["id", "name"],
        "headers": {"X-Client": "tests"},
        "output_field": "score",
    }
    before = len(test_api.requests)
    ran = run_enrich(tmp_path, rows, options)
    [seen] = test_api.requests[before:]
    assert (seen.method, seen.path, json.loads(seen.body)) == ("POST", "/score/g1", {"id": 7, "name": "seven"})
    assert seen.headers["X-Client"] == "tests"
    assert ran.output()[0]["score"] == {"group": "g1", "fields": ["id", "name"], "score": 6}
    [call] = ran.calls()
    assert call["request"]["json"] == {"id": 7, "name": "seven"}
    assert call["request"]["headers"] == {
        "Accept": "application/json",
        "X-Client": "tests",
        "Content-Type": "application/json",
    }


def test_post_without_body_fields_sends_the_whole_row(tmp_path: Path, test_api: LocalApi) -> None:
    rows = [{"id": 1, "group": "g0"}]
    ran = run_enrich(tmp_path, rows, {"url": test_api.url + "/score/{group}", "method": "POST"})
    assert ran.calls()[0]["request"]["json"] == rows[0]
    assert ran.output()[0]["response"]["fields"] == ["group", "id"]


def test_a_4xx_is_the_rows_error_naming_the_status_and_is_not_retried(tmp_path: Path, test_api: LocalApi) -> None:
    rows = [{"id": 1, "code": "404"}, {"id": 2, "code": "200"}]
    ran = run_enrich(tmp_path, rows, {"url": test_api.url + "/status/{code}"}, engine_attempts=3)
    assert ran.summary.status == "completed"
    assert [r["id"] for r in ran.output()] == [2]
    [failed] = ran.output("errors")
    assert failed["_error"].startswith(f"HTTP 404 Not Found from GET {test_api.url}/status/404")
    assert "not retried" in failed["_error"]
    calls = ran.calls()
    assert [c["status"] for c in calls] == ["error", "ok"]
    assert calls[0]["response"]["status"] == 404
    assert calls[0]["response"]["json"]["error"]["code"] == "404"
    assert calls[0]["error"]["type"] == "HttpStatusError"
    [state] = [s for s in ran.states("transform:enrich") if s["status"] == "failed"]
    assert json.loads(state["error_json"])["retryable"] is False


def test_a_redirect_is_not_followed(tmp_path: Path, test_api: LocalApi) -> None:
    ran = run_enrich(tmp_path, [{"id": 1}], {"url": test_api.url + "/redirect"})
    [failed] = ran.output("errors")
    assert "HTTP 302 Found" in failed["_error"]
    assert "point `url` at /lookup/moved" in failed["_error"]
    assert len(ran.calls()) == 1


def test_row_errors_before_any_call(tmp_path: Path, test_api: LocalApi) -> None:
    rows = [{"id": 1}, {"id": 2, "code": {"nested": True}}, {"id": 3, "code": "x", "response": "taken"}]
    ran = run_enrich(tmp_path, rows, {"url": test_api.url + "/lookup/{code}"})
    reasons = [r["_error"] for r in ran.output("errors")]
    assert reasons == [
        "field 'code' (option `url`) is not in the row; it has 'id'",
        "option `url`: field 'code' is dict, which has no place in a URL; give it a string or a number",
        "the row already has a field 'response' (option `output_field`); choose another output_field, "
        "or drop that field first",
    ]
    assert ran.calls() == []


def test_a_body_that_is_not_json_is_an_error_call_keeping_the_body(tmp_path: Path, test_api: LocalApi) -> None:
    ran = run_enrich(tmp_path, [{"id": 1}], {"url": test_api.url + "/text", "max_attempts": 2, "backoff_seconds": 0})
    calls = ran.calls()
    assert [c["status"] for c in calls] == ["error", "error"]
    assert calls[0]["response"]["body"] == "plain text, not JSON"
    assert calls[0]["error"]["type"] == "NotJsonError"
    [failed] = ran.output("errors")
    assert "not usable JSON" in failed["_error"] and "gave up after 2 attempt(s)" in failed["_error"]
