"""Recording a run's HTTP traffic as a vcrpy cassette, and replaying it offline.

A replayed run makes the same requests and gets the same responses, so it records the same calls in the
Landscape as the run that recorded the cassette. Matching ignores host and port (a cassette recorded
against one endpoint replays against another) and compares JSON bodies as JSON and multipart bodies
with their random boundary taken out. Secrets never reach the file: credential headers and query
parameters are dropped, and every secret value the settings resolved is replaced wherever it appears.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from elspeth.errors import ConfigError
from elspeth.landscape.redaction import REDACTED, looks_secret

Mode = Literal["record", "replay"]

_SECRET_QUERY = ("sig", "api-key", "code", "access_token", "sv", "se", "sp", "sr", "st", "skoid", "sktid", "ske", "sks")
_BOUNDARY = re.compile(rb"boundary=([^;\s]+)")


def _body_bytes(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode()
    return bytes(body)


def _normalized_body(request: Any) -> Any:
    data = _body_bytes(request.body)
    content_type = (request.headers.get("Content-Type") or request.headers.get("content-type") or "").encode()
    found = _BOUNDARY.search(content_type)
    if found:
        return data.replace(found.group(1).strip(b'"'), b"BOUNDARY")
    if data[:1] in (b"{", b"["):
        try:
            return json.loads(data)
        except ValueError:
            pass
    return data


def body_matcher(r1: Any, r2: Any) -> None:
    """vcrpy matcher: bodies equal as JSON, as multipart with the boundary taken out, or as bytes."""
    if _normalized_body(r1) != _normalized_body(r2):
        raise AssertionError("request bodies differ")


class _Scrubber:
    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = sorted({s for s in secrets if isinstance(s, str) and len(s) >= 6}, key=len, reverse=True)

    def text(self, data: bytes) -> bytes:
        for secret in self.secrets:
            data = data.replace(secret.encode(), REDACTED.encode())
        return data

    def headers(self, headers: dict[str, Any]) -> dict[str, Any]:
        return {
            k: ([REDACTED] if isinstance(v, list) else REDACTED) if looks_secret(k) else v for k, v in headers.items()
        }

    def request(self, request: Any) -> Any:
        if request.body:
            request.body = self.text(_body_bytes(request.body))
        for secret in self.secrets:
            request.uri = request.uri.replace(secret, REDACTED)
        return request

    def response(self, response: dict[str, Any]) -> dict[str, Any]:
        body = response.get("body") or {}
        if body.get("string"):
            body["string"] = self.text(_body_bytes(body["string"]))
        response["headers"] = self.headers(response.get("headers") or {})
        return response


@contextmanager
def cassette(path: str | Path, mode: Mode, secrets: Iterable[str] = ()) -> Iterator[Any]:
    """Record every HTTP request made inside the block to `path`, or answer them from it (mode "replay":
    nothing leaves the process; a request the cassette does not hold fails that call)."""
    try:
        import vcr
    except ModuleNotFoundError:
        raise ConfigError("cassettes need vcrpy: pip install 'elspeth[azure]' (or vcrpy)") from None
    path = Path(path)
    if mode == "replay" and not path.exists():
        raise ConfigError(f"{path}: no such cassette to replay; record one with --record-cassette {path}")
    if mode == "record":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
    scrub = _Scrubber(secrets)
    recorder = vcr.VCR(
        record_mode="all" if mode == "record" else "none",
        match_on=["method", "path", "query", "body_json"],
        filter_headers=["authorization", "api-key", "x-api-key", "ocp-apim-subscription-key", "cookie"],
        filter_query_parameters=list(_SECRET_QUERY),
        before_record_request=scrub.request,
        before_record_response=scrub.response,
        decode_compressed_response=True,
    )
    recorder.register_matcher("body_json", body_matcher)
    with recorder.use_cassette(str(path)) as tape:
        yield tape
