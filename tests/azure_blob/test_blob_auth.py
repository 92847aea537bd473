"""Authentication of the Blob plugins against Azurite (connection string, account key, container and blob
SAS), clear errors for the wrong credentials or options, and no secret in the Landscape."""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any

import pytest

from elspeth.errors import ConfigError
from elspeth.plugins.azure.blob_auth import account_and_credential
from elspeth.plugins.azure.blob_sink import AzureBlobSinkConfig
from elspeth.plugins.azure.blob_source import AzureBlobSourceConfig
from elspeth.settings import structure
from elspeth_testkit.azurite import Azurite

from .blob_world import Blobs, World

ROWS = [{"id": i, "name": f"n{i}"} for i in range(7)]


def container_sas(azurite: Azurite, container: str, **permissions: bool) -> str:
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    return generate_container_sas(
        azurite.account_name,
        container,
        account_key=azurite.account_key,
        permission=ContainerSasPermissions(**permissions),
        expiry=datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1),
    )


def blob_sas(azurite: Azurite, container: str, blob: str) -> str:
    from azure.storage.blob import BlobSasPermissions, generate_blob_sas

    return generate_blob_sas(
        azurite.account_name,
        container,
        blob,
        account_key=azurite.account_key,
        permission=BlobSasPermissions(read=True),
        expiry=datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1),
    )


def auth_options(mode: str, azurite: Azurite, blobs: Blobs, blob: str) -> dict[str, Any]:
    if mode == "connection_string":
        return {"connection_string": azurite.connection_string}
    if mode == "account_key":
        return {"account_url": azurite.blob_endpoint, "account_key": azurite.account_key}
    if mode == "container_sas":
        sas = container_sas(azurite, blobs.container, read=True, write=True, create=True)
        return {"account_url": azurite.blob_endpoint, "sas_token": "?" + sas}
    if mode == "sas_connection_string":
        sas = container_sas(azurite, blobs.container, read=True, write=True, create=True)
        return {"connection_string": f"BlobEndpoint={azurite.blob_endpoint};SharedAccessSignature={sas}"}
    raise AssertionError(mode)


def round_trip(world: World, blobs: Blobs, auth: dict[str, Any], auth_in: dict[str, Any] | None = None) -> str:
    """Rows into a blob through the sink, then back out through the source; the two runs' ids."""
    base = {"container": blobs.container, "backoff_seconds": 0}
    written = world.run(
        world.settings(
            source=world.jsonl_source(ROWS),
            sinks={"out": {"plugin": "azure_blob", "options": {**base, "blob_path": "rt/data.csv", **auth}}},
            engine={"write_batch_rows": 3, "checkpoint_every_rows": 4},
        )
    )
    assert written.status == "completed", written.error
    read = world.run(
        world.settings(
            source={"plugin": "azure_blob", "options": {**base, "blob_path": "rt/data.csv", **(auth_in or auth)}},
            sinks={"out": world.local_sink("back.jsonl")},
        )
    )
    assert read.status == "completed", read.error
    back = (world.root / "back.jsonl").read_text().splitlines()
    assert back == [f'{{"id":"{r["id"]}","name":"{r["name"]}"}}' for r in ROWS]
    world.assert_clean(written.run_id)
    world.assert_clean(read.run_id)
    return written.run_id


@pytest.mark.parametrize("mode", ["connection_string", "account_key", "container_sas", "sas_connection_string"])
def test_each_auth_mode_writes_and_reads(world: World, blobs: Blobs, azurite: Azurite, mode: str) -> None:
    run_id = round_trip(world, blobs, auth_options(mode, azurite, blobs, "rt/data.csv"))
    (artifact,) = world.query("SELECT uri FROM artifacts WHERE run_id = :r ORDER BY artifact_id DESC LIMIT 1", r=run_id)
    assert artifact["uri"] == f"{azurite.blob_endpoint}/{blobs.container}/rt/data.csv"


def test_a_blob_sas_reads_its_blob(world: World, blobs: Blobs, azurite: Azurite) -> None:
    key = auth_options("account_key", azurite, blobs, "rt/data.csv")
    sas = {"account_url": azurite.blob_endpoint, "sas_token": blob_sas(azurite, blobs.container, "rt/data.csv")}
    round_trip(world, blobs, key, auth_in=sas)


def test_a_sas_without_write_permission_is_refused_clearly(world: World, blobs: Blobs, azurite: Azurite) -> None:
    read_only = container_sas(azurite, blobs.container, read=True)
    options = {"container": blobs.container, "blob_path": "x.jsonl", "account_url": azurite.blob_endpoint}
    settings = world.settings(
        source=world.jsonl_source(ROWS),
        sinks={"out": {"plugin": "azure_blob", "options": {**options, "sas_token": read_only}}},
    )
    summary = world.run(settings, run_id="denied")
    assert summary.status == "failed"
    message = summary.error or ""
    assert "refused (HTTP 403" in message and "the SAS token" in message and "(rcw)" in message
    assert read_only not in message
    errors = [c for c in world.calls("denied") if c["status"] == "error"]
    assert errors and errors[-1]["error"]["status"] == 403
    world.assert_clean("denied")


def test_a_wrong_account_key_is_refused_clearly(world: World, blobs: Blobs, azurite: Azurite) -> None:
    wrong = "d3Jvbmcga2V5IHdyb25nIGtleSB3cm9uZyBrZXkgd3Jvbmcga2V5IHdyb25nIGtleQ=="
    options = {"container": blobs.container, "blob_path": "in.csv", "account_url": azurite.blob_endpoint}
    blobs.put("in.csv", b"a\n1\n")
    settings = world.settings(
        source={"plugin": "azure_blob", "options": {**options, "account_key": wrong}},
        sinks={"out": world.local_sink()},
    )
    with pytest.raises(ConfigError, match=r"refused \(HTTP 403.*check the account key"):
        world.run(settings)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "no credentials for container 'box': give exactly one of"),
        ({"account_url": "https://acct.blob.core.windows.net"}, "no credentials"),
        ({"sas_token": "sv=x&sig=y"}, "`sas_token` needs `account_url`"),
        ({"account_key": "a2V5"}, "`account_key` needs `account_url`"),
        ({"use_default_credential": True}, "`use_default_credential` needs `account_url`"),
        (
            {"account_url": "https://acct.blob.core.windows.net", "sas_token": "sig=x", "account_key": "a2V5"},
            "`sas_token` and `account_key` are both given",
        ),
        (
            {"connection_string": "AccountName=a;AccountKey=a2V5", "account_url": "https://a.blob.core.windows.net"},
            "drop `account_url`",
        ),
        ({"connection_string": "not a connection string"}, "a part without '='"),
        ({"connection_string": "AccountName=a;Password=hunter22"}, "a setting 'Password'"),
        ({"connection_string": "AccountName=a"}, "neither AccountKey nor SharedAccessSignature"),
        ({"account_url": "https://acct.blob.core.windows.net?sv=1&sig=2", "sas_token": "s"}, "a SAS goes in"),
        ({"account_url": "ftp://acct", "sas_token": "s"}, "must be an http(s) URL"),
        ({"account_url": "http://127.0.0.1:1", "account_key": "a2V5"}, "set `account_name`"),
        ({"account_url": "https://a.blob.core.windows.net", "sas_token": "s", "account_name": "a"}, "`account_name`"),
    ],
)
@pytest.mark.parametrize("config_class", [AzureBlobSourceConfig, AzureBlobSinkConfig])
def test_auth_options_are_checked_with_the_fix_named(config_class: type, options: dict, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        structure({"container": "box", "blob_path": "x.csv", **options}, config_class, where="options")
    assert message in str(raised.value)
    for secret in ("hunter22", "sig=y", "a2V5"):
        assert secret not in str(raised.value)


def test_default_credential_needs_https() -> None:
    from azure.identity import DefaultAzureCredential

    https = structure(
        {
            "container": "box",
            "blob_path": "x.csv",
            "account_url": "https://acct.blob.core.windows.net",
            "use_default_credential": True,
        },
        AzureBlobSourceConfig,
        where="options",
    )
    url, credential = account_and_credential(https)
    assert url == "https://acct.blob.core.windows.net" and isinstance(credential, DefaultAzureCredential)
    plain = structure(
        {
            "container": "box",
            "blob_path": "x.csv",
            "account_url": "https://acct.blob.core.windows.net",
            "endpoint": "http://127.0.0.1:10000/devstoreaccount1",
            "use_default_credential": True,
        },
        AzureBlobSourceConfig,
        where="options",
    )
    with pytest.raises(ConfigError, match="over https only"):
        account_and_credential(plain)


def test_use_development_storage_names_the_emulator() -> None:
    config = structure(
        {"container": "box", "blob_path": "x.csv", "connection_string": "UseDevelopmentStorage=true"},
        AzureBlobSourceConfig,
        where="options",
    )
    url, credential = account_and_credential(config)
    assert url == "http://127.0.0.1:10000/devstoreaccount1"
    assert credential["account_name"] == "devstoreaccount1"


# ---------------------------------------------------------------- secrets


def _stored_bytes(root: Path) -> list[tuple[str, bytes]]:
    return [
        (str(p.relative_to(root)), p.read_bytes())
        for p in root.rglob("*")
        if p.is_file() and (p.name.startswith("landscape.db") or "payloads" in p.parts)
    ]


@pytest.mark.parametrize("mode", ["connection_string", "account_key", "container_sas", "sas_connection_string"])
def test_no_secret_reaches_the_landscape(world: World, blobs: Blobs, azurite: Azurite, mode: str) -> None:
    auth = auth_options(mode, azurite, blobs, "rt/data.csv")
    round_trip(world, blobs, auth)
    secrets = {azurite.account_key}
    for key in ("connection_string", "account_key", "sas_token"):
        value = auth.get(key, "")
        secrets.add(value)
        secrets.update(re.findall(r"sig=([^&;]+)", value))
    secrets.update(s.replace("%2B", "+").replace("%2F", "/").replace("%3D", "=") for s in list(secrets))
    stored = _stored_bytes(world.root)
    assert any(name.startswith("landscape.db") for name, _ in stored)
    secrets.discard("")
    for secret in secrets:
        leaked = [name for name, data in stored if secret.encode() in data]
        assert not leaked, f"{secret[:6]}... found in {leaked}"
