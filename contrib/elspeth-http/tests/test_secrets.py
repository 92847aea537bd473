"""Credentials in `headers` reach the server and never the audit trail (bug class 19). The kit's secrets
scenario looks at top-level options only; this plugin's credentials live inside `headers`."""

from __future__ import annotations

from pathlib import Path

from elspeth_http.conformance import LocalApi
from enrich_runs import run_enrich

TOKEN = "tok-5f0c2d9e-never-stored"
API_KEY = "key-81b7a4c3-never-stored"


def test_secret_headers_are_sent_but_never_stored(tmp_path: Path, test_api: LocalApi) -> None:
    options = {
        "url": test_api.url + "/lookup/{id}",
        "headers": {"Authorization": f"Bearer {TOKEN}", "X-Api-Key": API_KEY, "X-Client": "tests"},
    }
    before = len(test_api.requests)
    ran = run_enrich(tmp_path, [{"id": 1}, {"id": 2}], options)
    seen = test_api.requests[before:]
    assert [s.headers["Authorization"] for s in seen] == [f"Bearer {TOKEN}"] * 2
    assert [s.headers["X-Api-Key"] for s in seen] == [API_KEY] * 2
    request = ran.calls()[0]["request"]
    assert request["headers"] == {
        "Accept": "application/json",
        "Authorization": "***",
        "X-Api-Key": "***",
        "X-Client": "tests",
    }
    stored = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "input.jsonl"]
    assert any(p.name == "landscape.db" for p in stored)
    for path in stored:
        data = path.read_bytes()
        assert TOKEN.encode() not in data, path
        assert API_KEY.encode() not in data, path
