"""Watching the connections a plugin opens (bug class 20): a plugin that talks to the network without
declaring `external_calls` is never put behind the fault proxy, so only the process itself can see its
traffic. Python's audit hooks see every `socket.connect` (and `socket.sendto`), whatever the client.

A connection counts as the plugin's when the code of the plugin's class (its module, or the module of a
base class that is not Elspeth's own) is on the stack of the thread that opens it, or that thread was
started from such a stack (an SDK's worker). So what the kit opens (the fault proxy's upstream connections,
an emulator's), what the engine opens and what other threads of the test process open are never blamed on
the plugin.

Audit hooks cannot be removed: the hook is installed once per process, on the first watch, and does nothing
but return while no watch is active. Python 3.11 audits no thread start, so `threading.Thread.start` is
wrapped at the same time, as lightly: it notes a thread started from the plugin's code while a watch is on.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from attrs import define, field, frozen

_EVENTS = frozenset({"socket.connect", "socket.sendto"})
_lock = threading.Lock()
_active: list[ConnectionWatch] = []
_installed = False


@frozen
class Connection:
    event: str
    address: str
    thread: str

    def as_row(self) -> dict[str, str]:
        return {"event": self.event, "address": self.address, "thread": self.thread}


@define
class ConnectionWatch:
    """The connections opened by the code in `files` while the watch is active."""

    files: frozenset[str]
    connections: list[Connection] = field(factory=list)
    threads: weakref.WeakSet[threading.Thread] = field(factory=weakref.WeakSet)

    def owns_stack(self) -> bool:
        """Whether code of `files` is on the calling thread's stack."""
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code.co_filename in self.files:
                return True
            frame = frame.f_back  # type: ignore[assignment]
        return False


def plugin_files(cls: type) -> frozenset[str]:
    """The source files of `cls` and of its bases, but for Elspeth's own (its API and engine) and the kit's:
    the built-in plugins in `elspeth.plugins` are plugins like any other."""
    files = set()
    for klass in cls.__mro__:
        module_name = klass.__module__
        top = module_name.split(".")[0]
        if top in ("builtins", "abc", "typing") or (
            top in ("elspeth", "elspeth_testkit") and not module_name.startswith("elspeth.plugins.")
        ):
            continue
        module = sys.modules.get(module_name)
        path = getattr(module, "__file__", None)
        if path:
            files.add(path)
    return frozenset(files)


@contextmanager
def watching_connections(cls: type) -> Iterator[ConnectionWatch]:
    """Note, while inside, every connection the code of plugin class `cls` opens, in any thread."""
    _install()
    watch = ConnectionWatch(plugin_files(cls))
    with _lock:
        _active.append(watch)
    try:
        yield watch
    finally:
        with _lock:
            _active.remove(watch)


def _install() -> None:
    global _installed
    with _lock:
        if _installed:
            return
        sys.addaudithook(_hook)
        start = threading.Thread.start

        def noting_start(thread: threading.Thread) -> None:
            if _active:
                _note_thread(thread)
            start(thread)

        threading.Thread.start = noting_start  # type: ignore[method-assign,assignment]
        _installed = True


def _watches_of_this_thread() -> list[ConnectionWatch]:
    """The active watches whose plugin is running on the current thread (or started it)."""
    with _lock:
        watches = list(_active)
    current = threading.current_thread()
    return [watch for watch in watches if current in watch.threads or watch.owns_stack()]


def _note_thread(thread: threading.Thread) -> None:
    try:
        for watch in _watches_of_this_thread():
            watch.threads.add(thread)
    except Exception:
        pass  # raising here would fail the plugin's thread instead


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event not in _EVENTS or not _active:
        return
    try:
        for watch in _watches_of_this_thread():
            with _lock:
                watch.connections.append(Connection(event, _address(args[1]), threading.current_thread().name))
    except Exception:
        pass  # raising here would fail the plugin's connect instead


def _address(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)
