"""The connection watch (bug class 20): the connections opened by a plugin's code, in its own thread or in
one it started, are noted while a run is watched; the kit's, the engine's and other threads' are not."""

from __future__ import annotations

import http.client
import threading

from elspeth.plugins.jsonl_files import JsonlSink
from elspeth_testkit.connection_watch import plugin_files, watching_connections
from elspeth_testkit.fault_proxy import FaultProxy

from . import connecting_plugin
from .connecting_plugin import ConnectingPlugin


def _address(url: str) -> tuple[str, int]:
    host, _, port = url.removeprefix("http://").partition(":")
    return host, int(port)


def test_plugin_files_are_its_own_and_its_bases_not_elspeths() -> None:
    assert plugin_files(ConnectingPlugin) == {connecting_plugin.__file__}
    files = plugin_files(JsonlSink)
    assert files and all("/elspeth/plugins/" in f for f in files), files


def test_the_plugins_connections_are_noted_with_address_and_thread(quiet_upstream: str) -> None:
    host, port = _address(quiet_upstream)
    with watching_connections(ConnectingPlugin) as watch:
        ConnectingPlugin().get(host, port)
        ConnectingPlugin().connect_in_thread(host, port)
    assert [(c.event, c.address) for c in watch.connections] == [("socket.connect", f"{host}:{port}")] * 2
    assert [c.thread for c in watch.connections] == [threading.current_thread().name, "sdk-worker"]


def test_connections_outside_the_plugins_code_or_the_watch_are_not(quiet_upstream: str) -> None:
    host, port = _address(quiet_upstream)
    ConnectingPlugin().get(host, port)
    with watching_connections(ConnectingPlugin) as watch:
        http.client.HTTPConnection(host, port, timeout=5).connect()  # the test's code, not the plugin's
        with FaultProxy(quiet_upstream) as proxy:  # the proxy connects upstream in threads of its own
            ConnectingPlugin().get(*_address(proxy.url))
            proxy.wait_idle()
            assert len(proxy.exchanges) == 1
            through_proxy = proxy.url.removeprefix("http://")
    ConnectingPlugin().get(host, port)
    assert [c.address for c in watch.connections] == [through_proxy]
