"""The testkit's Azurite runner: found where `npm ci` puts it, a clear error naming `npm ci` where it is
not, a free port of its own, killed by stop()."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from elspeth_testkit import azurite as azurite_module
from elspeth_testkit.azurite import Azurite, AzuriteUnavailable, find_binary


def test_a_missing_emulator_says_to_run_npm_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(azurite_module.ENV_BINARY, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(azurite_module, "_REPO", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AzuriteUnavailable, match="npm ci"):
        find_binary()
    monkeypatch.setenv(azurite_module.ENV_BINARY, str(tmp_path / "nowhere"))
    with pytest.raises(AzuriteUnavailable, match=r"ELSPETH_AZURITE_BIN=.*nowhere is not a file.*npm ci"):
        find_binary()


def test_a_second_emulator_gets_its_own_port_and_stop_kills_it(azurite: Azurite) -> None:
    from azure.storage.blob import BlobServiceClient

    with Azurite() as other:
        assert other.port != azurite.port
        service = BlobServiceClient.from_connection_string(other.connection_string)
        service.create_container("only-here")
        assert [c.name for c in service.list_containers()] == ["only-here"]
        assert [c.name for c in BlobServiceClient(other.account_url, credential=_key(other)).list_containers()]
        process = other.process
        assert process is not None
    assert process.poll() is not None
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", other.port), timeout=1):
        pass


def _key(server: Azurite) -> dict[str, str]:
    return {"account_name": server.account_name, "account_key": server.account_key}
