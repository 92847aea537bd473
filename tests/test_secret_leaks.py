"""No secret a run is given is ever written anywhere (issue 8).

Distinctive secrets are planted through every way one reaches a run: literal option values, `${ENV}`
substitution, request headers, URL query strings, a connection string, a SAS token, SDK credentials the AWS SDK reads
from the environment on its own, and a server that echoes the bearer token back without its `Bearer `
prefix. One real pipeline uses them all (the Blob source and sink against Azurite, http_enrich against an
echoing server, azure_llm against the emulator, the S3 sink against moto), run by the `elspeth` command with
`--record-cassette`; then every byte the run left (Landscape database and WAL, payloads, outputs, the
cassette, the objects in the stores, what `run` and `explain` printed) is searched for each secret as is,
JSON-escaped, percent-encoded, hex and base64.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from attrs import define
from click.testing import CliRunner

from elspeth.cli import main
from elspeth_testkit.azure_openai_emulator import AzureOpenAIEmulator
from elspeth_testkit.azurite import Azurite, AzuriteUnavailable
from elspeth_testkit.checks import encoded_forms

pytest.importorskip("vcr")
pytest.importorskip("elspeth_http")
pytest.importorskip("elspeth_s3")
moto_server = pytest.importorskip("moto.server")

REPO = Path(__file__).resolve().parent.parent

LLM_API_KEY = "llm-key-settings-literal-4f1e9a2b7c"
BEARER = "bearer-literal-8d3c5b1a0f+e/7"
HEADER_KEY = "hdr-key-env-subst-6a0b2e9d4c"
QUERY_APIKEY = "qry-apikey-1c7e3f5a9b"
QUERY_KEY = "qry-bare-key-2b8d4e6f0a"
QUERY_TOKEN = "qry-token-3e9f5a7b1c"
URL_PASSWORD = "url-password-4d0a6b8c2e"
BLOB_ACCOUNT = "leakacct"
BLOB_KEY = base64.b64encode(b"elspeth blob account key planted 5e2d").decode()
AWS_KEY_ID = "AKIAELSPETHLEAKS0042"
AWS_SECRET = "aws-secret-from-env-9c4d2a7e1b"
AWS_SESSION = "aws-session-token-from-env-0e8f6c4a2d"

SECRETS = {
    "llm api_key (settings literal)": LLM_API_KEY,
    "bearer token (literal Authorization header, echoed bare)": BEARER,
    "X-Api-Key header (${ENV})": HEADER_KEY,
    "?apikey= query parameter": QUERY_APIKEY,
    "?key= query parameter": QUERY_KEY,
    "?token= query parameter": QUERY_TOKEN,
    "password in a URL (settings literal)": URL_PASSWORD,
    "AccountKey of a connection string (${ENV})": BLOB_KEY,
    "AWS_ACCESS_KEY_ID (SDK, environment)": AWS_KEY_ID,
    "AWS_SECRET_ACCESS_KEY (SDK, environment)": AWS_SECRET,
    "AWS_SESSION_TOKEN (SDK, environment)": AWS_SESSION,
}

ROWS = [
    {"id": 1, "region": "EU", "text": "great product"},
    {"id": 2, "region": "NA", "text": "awful product"},
    {"id": 3, "region": "EU", "text": "refused by the lookup"},
    {"id": 4, "region": "NA", "text": "fine product " * 3000},  # big enough for the payload store
]
REFUSED_ID = "3"


class _EchoingApi(BaseHTTPRequestHandler):
    """A careless API: it echoes the bearer token, without its prefix, in a response header of every
    answer, and refuses row 3 with a body quoting every credential it was sent."""

    seen: list[str] = []

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        _EchoingApi.seen.append(parts.path.split("/")[1] + " " + (self.headers.get("Authorization") or ""))
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path.startswith("/lookup/") and parts.path.rsplit("/", 1)[-1] == REFUSED_ID:
            body = (
                f"invalid credentials: token {token}, api key {self.headers.get('X-Api-Key')}, "
                f"apikey {query.get('apikey')}, key {query.get('key')}, token param {query.get('token')}"
            ).encode()
            self._answer(401, body, "text/plain", token)
            return
        self._answer(200, json.dumps({"score": len(parts.path)}).encode(), "application/json", token)

    def _answer(self, status: int, body: bytes, content_type: str, token: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Request-Id", token)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def echoing_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoingApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@define
class BlobStore:
    url: str
    connection_string: str
    sas_token: str
    container: Any


@pytest.fixture
def blob_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[BlobStore]:
    """Azurite with an account of our own, whose key is one of the planted secrets, a container holding the
    input rows, and a SAS token for reading it."""
    from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas

    monkeypatch.setenv("AZURITE_ACCOUNTS", f"{BLOB_ACCOUNT}:{BLOB_KEY}")
    try:
        azurite = Azurite().start()
    except AzuriteUnavailable as exc:
        pytest.skip(str(exc))
    try:
        connection = (
            f"DefaultEndpointsProtocol=http;AccountName={BLOB_ACCOUNT};AccountKey={BLOB_KEY};"
            f"BlobEndpoint={azurite.url}/{BLOB_ACCOUNT};"
        )
        container = BlobServiceClient.from_connection_string(connection).get_container_client("leaks")
        container.create_container()
        container.upload_blob("in/rows.jsonl", "".join(json.dumps(r) + "\n" for r in ROWS).encode())
        sas = generate_container_sas(
            BLOB_ACCOUNT,
            "leaks",
            account_key=BLOB_KEY,
            permission=ContainerSasPermissions(read=True, list=True),
            expiry=datetime.now(UTC) + timedelta(hours=1),
        )
        yield BlobStore(f"{azurite.url}/{BLOB_ACCOUNT}", connection, sas, container)
    finally:
        azurite.stop()


@pytest.fixture
def s3_store() -> Iterator[tuple[str, Any]]:
    """moto's S3 server with a bucket: (endpoint, boto3 client)."""
    import boto3

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{server.get_host_and_port()[1]}"
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="moto",
            aws_secret_access_key="moto-not-a-secret",
        )
        client.create_bucket(Bucket="leaks")
        yield endpoint, client
    finally:
        server.stop()


def _settings(workdir: Path, blob: BlobStore, api: str, llm: str, s3: str) -> dict[str, Any]:
    with_password = api.replace("://", f"://leaks:{URL_PASSWORD}@")
    query = f"apikey={QUERY_APIKEY}&key={QUERY_KEY}&token={QUERY_TOKEN}&lang=en"
    return {
        "landscape": {"url": f"sqlite:///{workdir / 'landscape.db'}"},
        "source": {
            "plugin": "azure_blob",
            "options": {
                "container": "leaks",
                "blob_path": "in/rows.jsonl",
                "account_url": blob.url,
                "sas_token": blob.sas_token,
                "backoff_seconds": 0,
            },
        },
        "transforms": [
            {
                "name": "lookup",
                "plugin": "http_enrich",
                "options": {
                    "url": f"{api}/lookup/{{id}}?{query}",
                    "headers": {"Authorization": f"Bearer {BEARER}", "X-Api-Key": "${LEAK_TEST_HEADER}"},
                    "output_field": "lookup",
                    "max_attempts": 1,
                },
                "on_error": "errors",
            },
            {
                "name": "verify",
                "plugin": "http_enrich",
                "options": {"url": f"{with_password}/verify/{{id}}", "output_field": "verified", "max_attempts": 1},
            },
            {
                "name": "label",
                "plugin": "azure_llm",
                "options": {
                    "endpoint": llm,
                    "deployment": "gpt-4o-mini",
                    "api_key": LLM_API_KEY,
                    "prompt": "Classify: {{ text }}",
                    "output_field": "label",
                    "max_attempts": 1,
                },
            },
            {"name": "by_region", "plugin": "route", "options": {"field": "region", "routes": {"EU": "blob"}}},
        ],
        "default_sink": "s3",
        "on_error": "errors",
        "sinks": {
            "s3": {
                "plugin": "s3",
                "options": {"bucket": "leaks", "path": "out/rows.jsonl", "endpoint_url": s3, "region": "us-east-1"},
            },
            "blob": {
                "plugin": "azure_blob",
                "options": {
                    "container": "leaks",
                    "blob_path": "out/rows.jsonl",
                    "connection_string": "${LEAK_TEST_BLOB}",
                    "backoff_seconds": 0,
                },
            },
            "errors": {"plugin": "jsonl", "options": {"path": str(workdir / "errors.jsonl"), "if_exists": "overwrite"}},
        },
    }


def _environment(connection: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {
        **env,
        "PYTHONPATH": os.pathsep.join(p for p in (*sys.path, env.get("PYTHONPATH", "")) if p),
        # Only the plugins this pipeline uses: whatever else is installed here is not under test.
        "ELSPETH_LOAD_PLUGINS": "elspeth,elspeth-http,elspeth-s3",
        "LEAK_TEST_HEADER": HEADER_KEY,
        "LEAK_TEST_BLOB": connection,
        "AWS_ACCESS_KEY_ID": AWS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "AWS_SESSION_TOKEN": AWS_SESSION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


def _leaks(places: dict[str, bytes], secrets: dict[str, str]) -> list[str]:
    found = []
    for what, secret in secrets.items():
        forms = encoded_forms(secret)
        found += [f"{what} in {where}" for where, data in places.items() if any(form in data for form in forms)]
    return found


def test_no_planted_secret_is_written_anywhere(
    tmp_path: Path, echoing_api: str, blob_store: BlobStore, s3_store: tuple[str, Any]
) -> None:
    s3_endpoint, s3_client = s3_store
    signature = parse_qs(blob_store.sas_token)["sig"][0]
    secrets = {**SECRETS, "sig of a SAS token (settings literal)": signature}
    workdir = tmp_path / "run"
    workdir.mkdir()
    settings_file = tmp_path / "settings.yaml"  # holds literal secrets by design: outside the scanned tree

    # A connection held open across the run keeps SQLite from removing the WAL when the run closes its own,
    # so what went through the WAL is scanned too.
    holder = sqlite3.connect(workdir / "landscape.db")
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("SELECT count(*) FROM sqlite_master").fetchall()
    with contextlib.closing(holder), AzureOpenAIEmulator(api_keys=[LLM_API_KEY]) as llm:
        settings_file.write_text(yaml.safe_dump(_settings(workdir, blob_store, echoing_api, llm.url, s3_endpoint)))
        cassette = workdir / "cassette.yaml"
        ran = subprocess.run(
            [sys.executable, "-m", "elspeth", "run", str(settings_file), "--quiet", "--record-cassette", str(cassette)],
            cwd=workdir,
            env=_environment(blob_store.connection_string),
            capture_output=True,
            timeout=120,
        )
        wal = (workdir / "landscape.db-wal").read_bytes()
    assert ran.returncode == 0, ran.stderr.decode()
    assert len(wal) > 100_000, "the run's writes went through the WAL"
    run_id = ran.stdout.decode().split()[1]

    # The run did what it was set up to do, so every route was exercised.
    basic = base64.b64encode(f"leaks:{URL_PASSWORD}".encode()).decode()
    assert set(_EchoingApi.seen) == {f"lookup Bearer {BEARER}", f"verify Basic {basic}"}
    s3_rows = s3_client.get_object(Bucket="leaks", Key="out/rows.jsonl")["Body"].read()
    blob_rows = blob_store.container.get_blob_client("out/rows.jsonl").download_blob().readall()
    errors = (workdir / "errors.jsonl").read_bytes()
    assert [json.loads(line)["id"] for line in s3_rows.splitlines()] == [2, 4]
    assert [json.loads(line)["id"] for line in blob_rows.splitlines()] == [1]
    assert [json.loads(line)["id"] for line in errors.splitlines()] == [3]
    assert b"invalid credentials" in errors, "the refusal is kept, its credentials are not"
    recorded = cassette.read_text()
    assert "/lookup/1" in recorded and "chat/completions" in recorded and "out/rows.jsonl" in recorded

    landscape = f"sqlite:///{workdir / 'landscape.db'}"
    explained = [
        CliRunner().invoke(main, ["explain", run_id, "--landscape", landscape, *args])
        for args in ([], ["--json"], *(["--row", str(i), *j] for i in range(len(ROWS)) for j in ([], ["--json"])))
    ]
    assert all(r.exit_code == 0 for r in explained), [r.output for r in explained if r.exit_code]

    places = {str(p.relative_to(workdir)): p.read_bytes() for p in workdir.rglob("*") if p.is_file()}
    assert {"landscape.db", "cassette.yaml", "errors.jsonl"} <= set(places)
    assert f"/{BLOB_ACCOUNT}/leaks/in/rows.jsonl" in recorded, "the source read its rows through the SAS token"
    assert any(name.startswith("payloads") for name in places), "a large body went to the payload store"
    places |= {
        "the Landscape's WAL, as the run left it": wal,
        "stdout of elspeth run": ran.stdout,
        "stderr of elspeth run": ran.stderr,
        "the S3 object": s3_rows,
        "the blob": blob_rows,
        "output of elspeth explain": "".join(r.output for r in explained).encode(),
    }
    leaks = _leaks(places, secrets)
    assert not leaks, "secrets written:\n" + "\n".join(leaks)
