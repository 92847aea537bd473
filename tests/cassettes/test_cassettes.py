"""Cassettes: record real HTTP traffic against a local server, replay it with the server gone."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from elspeth.cassettes import cassette
from elspeth.errors import ConfigError

httpx = pytest.importorskip("httpx")
pytest.importorskip("vcr")

SECRET = "sk-cassette-secret-0123456789"


class _Echo(BaseHTTPRequestHandler):
    counter = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _Echo.counter += 1
        reply = json.dumps({"n": _Echo.counter, "size": len(body), "echo": body.decode(errors="replace")[:200]})
        data = reply.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _conversation(base: str) -> list[dict]:
    with httpx.Client(timeout=5) as client:
        answers = []
        for prompt in ("first", "second", "first"):
            r = client.post(
                f"{base}/v1/chat?api-key={SECRET}",
                json={"prompt": prompt, "note": f"key {SECRET}"},
                headers={"api-key": SECRET, "Authorization": f"Bearer {SECRET}"},
            )
            answers.append(r.json())
        r = client.post(f"{base}/v1/files", files={"file": ("batch.jsonl", b'{"a": 1}\n')}, data={"purpose": "batch"})
        answers.append({"size": r.json()["size"]})
        return answers


def test_replay_answers_exactly_what_was_recorded_with_the_server_gone(tmp_path, server):
    path = tmp_path / "tape.yaml"
    with cassette(path, "record", secrets=[SECRET]):
        recorded = _conversation(server)
    # Another host and port: matching ignores where the server was.
    with cassette(path, "replay", secrets=[SECRET]):
        replayed = _conversation("http://127.0.0.1:9")
    # What the server echoed of the secret was scrubbed on the way into the cassette, like everything else.
    assert replayed == json.loads(json.dumps(recorded).replace(SECRET, "***"))
    assert [a.get("n") for a in recorded[:3]] == [1, 2, 3], "identical requests replay in recorded order"


def test_no_secret_reaches_the_cassette(tmp_path, server):
    path = tmp_path / "tape.yaml"
    with cassette(path, "record", secrets=[SECRET]):
        _conversation(server)
    text = path.read_text()
    assert SECRET not in text
    assert "***" in text


def test_an_unrecorded_request_fails_instead_of_going_out(tmp_path, server):
    path = tmp_path / "tape.yaml"
    with cassette(path, "record"), httpx.Client() as client:
        client.post(f"{server}/v1/chat", json={"prompt": "known"})
    with cassette(path, "replay"), httpx.Client() as client, pytest.raises(Exception, match=r"[Cc]assette"):
        client.post(f"{server}/v1/chat", json={"prompt": "unknown"})


def test_replaying_a_missing_cassette_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no such cassette"), cassette(tmp_path / "nope.yaml", "replay"):
        pass


def test_secret_looking_headers_and_query_parameters_never_reach_the_cassette(tmp_path, server):
    """By the Landscape's rule, not a list: a session token header, `?key=`, `?token=` (none of them known
    values), and a streamed body (botocore sends an S3 object as an iterator of chunks) is recorded whole."""
    path = tmp_path / "tape.yaml"
    unknown = ("session-f00d-4c1e", "apikey-beef-7d2a", "token-cafe-9b3e")
    with cassette(path, "record"), httpx.Client(timeout=5) as client:
        recorded = client.post(
            f"{server}/v1/upload?key={unknown[1]}&token={unknown[2]}&part=1",
            content=iter([b"first chunk, ", b"second chunk"]),
            headers={"X-Amz-Security-Token": unknown[0], "X-Client": "tests"},
        )
    text = path.read_text()
    assert not [u for u in unknown if u in text]
    assert "part=1" in text and "x-client" in text.lower() and "first chunk, second chunk" in text
    with cassette(path, "replay"), httpx.Client(timeout=5) as client:
        answer = client.post(
            f"{server}/v1/upload?key={unknown[1]}&token={unknown[2]}&part=1",
            content=b"first chunk, second chunk",
            headers={"X-Amz-Security-Token": unknown[0]},
        )
    assert answer.json() == recorded.json(), "the scrubbed request still matches its recording"
