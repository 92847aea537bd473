"""Conformance setups of the Blob Storage source and sink, against Azurite.

Each scenario directory gets a container of its own (created straight at Azurite, not through the kit's
fault proxy); the plugins reach Azurite through the `endpoint` the kit passes (its fault proxy), with the
emulator's account key. Input is put in place and output read back through the SDK, straight to Azurite.

    @pytest.fixture
    def elspeth_conformance_setups(elspeth_conformance_setups, azurite):
        return {**elspeth_conformance_setups, **azure_blob_setups(azurite)}
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any

from elspeth_testkit.azurite import Azurite
from elspeth_testkit.setups import Options, PluginSetup, Row, Service

INPUT = "input/rows.jsonl"
OUTPUT = "output/rows.jsonl"
# Bad input: not JSON, NaN, an array, invalid UTF-8; 3 good records.
BAD_INPUT = b'{"id": 1}\nnot json\n{"id": NaN}\n[1, 2]\n{"id": "\xff"}\n{"id": 2}\n{"id": 3}\n'


def _encode(rows: list[Row]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def _parse(data: bytes) -> list[Row]:
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


def azure_blob_setups(azurite: Azurite) -> dict[str, PluginSetup]:
    """The setups of "source:azure_blob" and "sink:azure_blob" against this Azurite."""
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(azurite.connection_string)

    def container_of(workdir: Path) -> str:
        name = "conformance-" + hashlib.sha256(str(workdir.resolve()).encode()).hexdigest()[:20]
        with contextlib.suppress(ResourceExistsError):
            service.create_container(name)
        return name

    def options(blob_path: str) -> Any:
        def make(workdir: Path, endpoint: str | None) -> Options:
            return {
                "container": container_of(workdir),
                "blob_path": blob_path,
                "account_url": azurite.blob_endpoint,
                "account_key": azurite.account_key,
                "endpoint": f"{endpoint}/{azurite.account_name}" if endpoint else None,
                "backoff_seconds": 0,
            }

        return make

    def blob(opts: Options) -> Any:
        return service.get_blob_client(opts["container"], opts["blob_path"])

    def write_raw(data: bytes, opts: Options) -> None:
        blob(opts).upload_blob(data, overwrite=True)

    def read(opts: Options) -> bytes:
        client = blob(opts)
        return bytes(client.download_blob().readall()) if client.exists() else b""

    service_of_azurite = Service(upstream=azurite.url)
    return {
        "source:azure_blob": PluginSetup(
            options=options(INPUT),
            service=service_of_azurite,
            write_input=lambda rows, opts: write_raw(_encode(rows), opts),
            write_raw_input=write_raw,
            bad_input=BAD_INPUT,
            bad_input_good_rows=3,
            bad_input_bad_records=4,
        ),
        "sink:azure_blob": PluginSetup(
            options=options(OUTPUT),
            service=service_of_azurite,
            read_output=read,
            parse_output=_parse,
        ),
    }
