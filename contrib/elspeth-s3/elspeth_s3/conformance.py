"""How the conformance kit exercises the `s3` source and sink: against moto's S3 server on 127.0.0.1.

    with moto_s3() as endpoint:
        setups = s3_setups(endpoint)   # {"source:s3": PluginSetup, "sink:s3": PluginSetup}

This package's `conftest.py` wires them into the kit; the repository's conformance run can reuse them the
same way. Only the kit's public pieces are used, and moto only here (it is a test dependency: `[test]`).
Never real AWS: the credentials are dummies, and every option names the local endpoint.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from elspeth.api import Row
from elspeth_testkit import Options, PluginSetup, Service

BUCKET = "elspeth-conformance"
REGION = "us-east-1"
ACCESS_KEY_ID = "AKIAELSPETHS3TESTKEY"
SECRET_ACCESS_KEY = "elspeth-s3-dummy-secret-7f3a9c"
"""Dummies moto accepts; unusual enough that a leak into the Landscape or the logs cannot be a coincidence."""

DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
    "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
}

BAD_JSONL = b'{"id": 1}\nnot json\n{"id": NaN}\n[1, 2]\n{"id": "\xff"}\n{"id": 2}\n{"id": 3}\n'
"""JSON Lines with 3 good records and 4 bad ones (not JSON, NaN, not an object, invalid UTF-8)."""


@contextlib.contextmanager
def dummy_credentials() -> Iterator[None]:
    """The dummy credentials in the environment (and no profile), restored afterwards."""
    saved = {name: os.environ.get(name) for name in (*DUMMY_ENV, "AWS_PROFILE", "AWS_SESSION_TOKEN")}
    os.environ.update(DUMMY_ENV)
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_SESSION_TOKEN", None)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def moto_s3() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 and a free port, with dummy credentials in the environment; yields its
    URL. A pytest fixture: `yield from` it, or `with moto_s3() as url: yield url`."""
    from moto.server import ThreadedMotoServer

    with dummy_credentials():
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            _, port = server.get_host_and_port()
            yield f"http://127.0.0.1:{port}"
        finally:
            server.stop()


def client(endpoint_url: str) -> Any:
    """A plain boto3 client for moto, for putting input in place and reading output back."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


def ensure_bucket(endpoint_url: str, bucket: str = BUCKET) -> None:
    try:
        client(endpoint_url).create_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


def read_object(endpoint_url: str, bucket: str, key: str) -> bytes:
    """The object's bytes; b"" when there is none (a sink that never wrote)."""
    try:
        body: bytes = client(endpoint_url).get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return b""
        raise
    return body


def key_for(workdir: Path, name: str) -> str:
    """A key of its own for each scenario's working directory (a run's and a reference run's differ)."""
    return f"conformance/{hashlib.sha256(str(workdir).encode()).hexdigest()[:16]}/{name}"


def _jsonl(rows: list[Row]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def parse_jsonl(data: bytes) -> list[Row]:
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


def s3_setups(endpoint_url: str) -> dict[str, PluginSetup]:
    """Setups of the `s3` source and sink against the S3 endpoint at `endpoint_url` (moto's). The kit's fault
    proxy goes in front of it for the scenarios that look at the wire; the others talk to it directly."""
    ensure_bucket(endpoint_url)

    def options_for(name: str, **extra: Any) -> Any:
        def options(workdir: Path, endpoint: str | None) -> Options:
            return {
                "bucket": BUCKET,
                "path": key_for(workdir, name),
                "format": "jsonl",
                "region": REGION,
                "endpoint_url": endpoint or endpoint_url,
                "aws_access_key_id": ACCESS_KEY_ID,
                "aws_secret_access_key": SECRET_ACCESS_KEY,
                **extra,
            }

        return options

    def put(data: bytes, opts: Options) -> None:
        client(endpoint_url).put_object(Bucket=opts["bucket"], Key=opts["path"], Body=data)

    def write_input(rows: list[Row], opts: Options) -> None:
        put(_jsonl(rows), opts)

    def read_output(opts: Options) -> bytes:
        return read_object(endpoint_url, opts["bucket"], opts["path"])

    service = Service(upstream=endpoint_url)
    return {
        "source:s3": PluginSetup(
            options=options_for("input.jsonl", chunk_size_mb=0.0001),
            service=service,
            write_input=write_input,
            write_raw_input=put,
            bad_input=BAD_JSONL,
            bad_input_good_rows=3,
            bad_input_bad_records=4,
        ),
        "sink:s3": PluginSetup(
            options=options_for("output.jsonl"),
            service=service,
            read_output=read_output,
            parse_output=parse_jsonl,
        ),
    }
