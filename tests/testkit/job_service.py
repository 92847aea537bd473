"""A tiny job service on 127.0.0.1 for the pending aggregate samples: `POST /jobs` with `{"rows": [...]}`
submits a job and answers its id (with an `Idempotency-Key` header, the job submitted with that key
before, if any); `GET /jobs/<id>` answers its status, `running` for its first
`polls_to_finish` polls, then `done` with its results (each row with `batch_size`, the number of rows of
its job). `POST /rpc` does both, as one endpoint for everything would: `{"op": "submit", "rows": [...]}` or
`{"op": "status", "id": ...}`. Every submission is kept in `submitted`, for tests to count."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

from elspeth_testkit.loopback import LoopbackHTTPServer, LoopbackServer, read_body


class JobService(LoopbackServer):
    def __init__(self, *, polls_to_finish: int = 1) -> None:
        self._address = ("127.0.0.1", 0)
        self.polls_to_finish = polls_to_finish
        self.submitted: list[list[Any]] = []
        self._polls: dict[str, int] = {}
        self._keys: dict[str, str] = {}
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> JobService:
        self._server = _Server(self._address, self)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._server = self._thread = None

    def handle(self, method: str, path: str, body: bytes, key: str | None = None) -> tuple[int, dict[str, Any]]:
        """`key`: the request's Idempotency-Key header."""
        parts = path.split("?", 1)[0].strip("/").split("/")
        with self._lock:
            if method == "POST" and parts == ["jobs"]:
                if key in self._keys:
                    return 200, {"id": self._keys[key], "status": "running"}
                answer = self._submit(json.loads(body)["rows"])
                if key is not None:
                    self._keys[key] = answer[1]["id"]
                return answer
            if method == "GET" and len(parts) == 2 and parts[0] == "jobs" and parts[1] in self._polls:
                return self._status(parts[1])
            if method == "POST" and parts == ["rpc"]:
                call = json.loads(body)
                if call.get("op") == "submit":
                    return self._submit(call["rows"])
                if call.get("op") == "status" and call.get("id") in self._polls:
                    return self._status(call["id"])
        return 404, {"error": {"code": "404", "message": f"no {method} {path}"}}

    def _submit(self, rows: list[Any]) -> tuple[int, dict[str, Any]]:
        self.submitted.append(rows)
        job_id = f"job-{len(self.submitted)}"
        self._polls[job_id] = 0
        return 201, {"id": job_id, "status": "running"}

    def _status(self, job_id: str) -> tuple[int, dict[str, Any]]:
        self._polls[job_id] += 1
        if self._polls[job_id] <= self.polls_to_finish:
            return 200, {"id": job_id, "status": "running"}
        rows = self.submitted[int(job_id.split("-")[1]) - 1]
        return 200, {"id": job_id, "status": "done", "results": [{**r, "batch_size": len(rows)} for r in rows]}


class _Server(LoopbackHTTPServer):
    def __init__(self, address: tuple[str, int], service: JobService) -> None:
        self.service = service
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def _serve(self) -> None:
        body = read_body(self)
        status, document = self.server.service.handle(
            self.command, self.path, body, self.headers.get("Idempotency-Key")
        )
        data = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _serve

    def log_message(self, format: str, *args: object) -> None:
        pass
