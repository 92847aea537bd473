"""What the kit's servers on 127.0.0.1 (the fault proxy, the Azure OpenAI emulator) have in common: a
context manager around start() and stop(), and the URL of the port they were given."""

from __future__ import annotations

import socketserver
from typing import Any, Self


class LoopbackServer:
    _server: socketserver.TCPServer | None
    _address: tuple[str, int]

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"the {type(self).__name__} is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The base URL to give a client."""
        return f"http://{self._address[0]}:{self.port}"
