"""The Blob Storage plugins through the real SDK against Azurite (`npm ci` installs it; the tests skip,
saying so, where it is not installed), in real pipelines on a real SQLite Landscape file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from elspeth.plugin_manager import PluginRegistry
from elspeth_testkit.azurite import Azurite
from elspeth_testkit.fault_proxy import FaultProxy

from .blob_world import Blobs, World, blob_registry, new_container


@pytest.fixture(scope="session")
def registry() -> PluginRegistry:
    return blob_registry()


@pytest.fixture
def blobs(azurite: Azurite) -> Blobs:
    return Blobs(azurite, new_container(azurite))


@pytest.fixture
def world(tmp_path: Path, registry: PluginRegistry) -> World:
    return World(tmp_path, registry)


@pytest.fixture
def proxy(azurite: Azurite) -> Iterator[FaultProxy]:
    """The kit's fault proxy in front of Azurite: give plugins `endpoint=proxy.url + "/devstoreaccount1"`."""
    with FaultProxy(azurite.url) as running:
        yield running
