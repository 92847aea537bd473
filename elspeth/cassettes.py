"""Recording a run's HTTP traffic as a vcrpy cassette, and replaying it offline.

A replayed run makes the same requests and gets the same responses, so it records the same calls in the
Landscape as the run that recorded the cassette. Matching ignores host and port (a cassette recorded
against one endpoint replays against another) and compares JSON bodies as JSON and multipart bodies
with their random boundary taken out. Secrets never reach the file: secret-looking request headers and
query parameters are dropped, and every secret the run knows is replaced wherever it appears.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from elspeth.errors import ConfigError
from elspeth.landscape.redaction import REDACTED, Redactor, looks_secret_on_the_wire

Mode = Literal["record", "replay"]

# Not credentials, but what a SAS token carries beside its signature; cassettes never held them.
_SAS_FIELDS = frozenset({"sv", "se", "sp", "sr", "st", "skoid", "sktid", "ske", "sks"})
_BOUNDARY = re.compile(rb"boundary=([^;\s]+)")


def _body_bytes(body: Any) -> bytes:
    """A vcrpy request body as bytes: it holds bytes, text, a file (BytesIO) or an iterator of chunks (how
    botocore sends an S3 PutObject body)."""
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode()
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body)
    if hasattr(body, "read"):
        return _body_bytes(body.read())
    return b"".join(_body_bytes(chunk) for chunk in body)


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
    """What a cassette keeps of an exchange: no secret-looking header or query parameter, and no known
    secret anywhere in a URI, header value or body, by the same rules as the Landscape."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.redact = Redactor.of(secrets)

    def uri(self, uri: str) -> str:
        parts = urlsplit(uri)
        if parts.query:
            kept = [
                (name, value)
                for name, value in parse_qsl(parts.query, keep_blank_values=True)
                if not looks_secret_on_the_wire(name) and name not in _SAS_FIELDS
            ]
            uri = urlunsplit(parts._replace(query=urlencode(kept)))
        return self.redact.text(uri)

    def headers(self, headers: Any) -> dict[str, Any]:
        return {
            k: ([REDACTED] if isinstance(v, list) else REDACTED) if looks_secret_on_the_wire(k) else self.redact(v)
            for k, v in dict(headers).items()
        }

    def request(self, request: Any) -> Any:
        from vcr.request import Request

        # A new request whose body is plain bytes: vcrpy keeps a file or iterator body (botocore's S3 bodies)
        # as one, which can be neither scrubbed in place nor written to the cassette.
        body = _body_bytes(request.body)
        headers = {k: self.redact(v) for k, v in dict(request.headers).items() if not looks_secret_on_the_wire(k)}
        return Request(request.method, self.uri(request.uri), self.redact.data(body) if body else body, headers)

    def response(self, response: dict[str, Any]) -> dict[str, Any]:
        body = response.get("body") or {}
        if body.get("string"):
            body["string"] = self.redact.data(_body_bytes(body["string"]))
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
        before_record_request=scrub.request,
        before_record_response=scrub.response,
        decode_compressed_response=True,
    )
    recorder.register_matcher("body_json", body_matcher)
    with recorder.use_cassette(str(path)) as tape:
        yield tape
