"""Stands for a plugin's code in test_connection_watch.py: a GET it sends itself, and a connection opened
by a thread it starts whose code is not its own (as an SDK's worker)."""

from __future__ import annotations

import http.client
import threading


class ConnectingPlugin:
    def get(self, host: str, port: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=5)
        try:
            conn.request("GET", "/item")
            conn.getresponse().read()
        finally:
            conn.close()

    def connect_in_thread(self, host: str, port: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=5)
        worker = threading.Thread(target=conn.connect, name="sdk-worker")
        worker.start()
        worker.join()
        conn.close()
