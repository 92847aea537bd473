"""A fault-injecting reverse HTTP proxy: what a plugin sent over the wire, and the failures it must survive.

The conformance kit puts it on 127.0.0.1 in front of an emulator (Azurite, the Azure OpenAI emulator) and
points the plugin at `proxy.url`. Every request is forwarded unchanged but for hop-by-hop headers (and Host,
which names the upstream), and every exchange is logged as an `Exchange`, which `elspeth_testkit.wire_check`
compares with the Landscape. Faults are scripted per request: a rule matches by method and/or a path regex,
optionally only the Nth match or the first N, and applies one fault (an HTTP error answered by the proxy, a
timeout, a connection reset, a garbled body, a delay, a latency that varies request by request). Unmatched
requests pass through. A client that hangs up while the proxy delays it or waits on the upstream (its own
timeout) gets no answer, and its exchange says so (`client_gone`); its request is still forwarded, as a
server would still do the work whose answer was lost.

    with FaultProxy(upstream="http://127.0.0.1:10000") as proxy:
        proxy.script(status(429, retry_after=1), method="POST", path=r"/chat/completions$", nth=2)
        ...  # run the plugin against proxy.url
        proxy.wait_idle()
        exchanges = proxy.exchanges

The standard library and attrs only. Request and response bodies are buffered whole (a streamed response
reaches the client at once, after the upstream finished it). `python -m elspeth_testkit.fault_proxy
--upstream URL` runs one on the command line and prints every exchange.
"""

from __future__ import annotations

import argparse
import contextlib
import http
import http.client
import json
import math
import re
import select
import socket
import socketserver
import struct
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar
from urllib.parse import urlsplit

from attrs import define, field, frozen

from elspeth_testkit.loopback import MAX_LINE, BadRequest, ClientGone, LoopbackServer, read_body

Headers = tuple[tuple[str, str], ...]

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
"""Headers that describe one connection, not the message (RFC 9110 7.6.1); never forwarded."""

FAILURE_FAULTS = frozenset({"timeout", "reset", "malformed"})
"""Faults after which the client has no usable answer, whatever the status."""

_POLL = 0.01
_GARBLE_TAIL = b"<!-- garbled by the elspeth fault proxy"


# ---------------------------------------------------------------- faults


@frozen
class Status:
    """Answer `code` at once, without forwarding, with a JSON error body shaped like Azure OpenAI's and
    OpenAI's (`{"error": {"code", "message", "type", "param"}}`) unless `body` is given."""

    code: int
    retry_after: float | None = None
    body: bytes | None = None
    headers: Headers = ()
    kind: ClassVar[str] = "status"

    def response(self) -> tuple[int, Headers, bytes]:
        reason = _reason(self.code)
        body = self.body
        if body is None:
            error_type = {429: "rate_limit_exceeded"}.get(self.code, "server_error" if self.code >= 500 else "error")
            error = {
                "code": str(self.code),
                "message": f"{reason} (injected by the elspeth fault proxy)",
                "type": error_type,
                "param": None,
            }
            body = json.dumps({"error": error}).encode()
        headers: list[tuple[str, str]] = [("Content-Type", "application/json")]
        if self.retry_after is not None:
            seconds = self.retry_after
            headers.append(("Retry-After", str(int(seconds)) if float(seconds).is_integer() else str(seconds)))
        headers.extend(self.headers)
        return self.code, tuple(headers), body


@frozen
class Timeout:
    """Read the request, then hold the connection without answering for `seconds` (or until the client
    gives up), then close it."""

    seconds: float
    kind: ClassVar[str] = "timeout"


@frozen
class Reset:
    """Read the request, then close the socket abruptly: SO_LINGER 0 makes the close send a TCP RST."""

    kind: ClassVar[str] = "reset"


@frozen
class Malformed:
    """Forward, then answer the upstream's status and headers with the body cut in half and garbled, so that
    it is never valid JSON (Content-Length is that of the garbled body: the HTTP framing stays sound)."""

    kind: ClassVar[str] = "malformed"


@frozen
class Delay:
    """Wait `seconds`, then forward as usual. With `amid_others`, wait up to that many seconds more for
    another request to be in flight before forwarding, and hold the requests then in flight `hold_others`
    seconds more before they are forwarded: a late answer lands while other work is under way, and stays
    amid it while it is handled (a client that gave up on it and left a worker waiting records it amid
    another row's work)."""

    seconds: float
    amid_others: float = 0.0
    hold_others: float = 0.0
    kind: ClassVar[str] = "delay"


@frozen
class Latency:
    """Wait, then forward as usual: the Nth request the rule applies to waits `schedule[(N - 1) % len]`
    seconds, so answers to requests sent together come back in another order than they were sent."""

    schedule: tuple[float, ...]
    kind: ClassVar[str] = "delay"

    def __attrs_post_init__(self) -> None:
        if not self.schedule or any(s < 0 for s in self.schedule):
            raise ValueError(f"a latency schedule holds one or more delays of 0 s or more, got {self.schedule!r}")

    def seconds(self, count: int) -> float:
        return self.schedule[(count - 1) % len(self.schedule)]


Fault = Status | Timeout | Reset | Malformed | Delay | Latency


def status(code: int, *, retry_after: float | None = None, body: bytes | None = None, headers: Headers = ()) -> Status:
    return Status(code, retry_after, body, tuple(headers))


def timeout(seconds: float) -> Timeout:
    return Timeout(seconds)


def reset() -> Reset:
    return Reset()


def malformed() -> Malformed:
    return Malformed()


def delay(seconds: float, *, amid_others: float = 0.0, hold_others: float = 0.0) -> Delay:
    return Delay(seconds, amid_others, hold_others)


def latency(*schedule: float) -> Latency:
    return Latency(tuple(schedule))


def garble(body: bytes) -> bytes:
    """The first half of `body` and a tail that is not JSON: unterminated inside a string, invalid outside."""
    return body[: len(body) // 2] + _GARBLE_TAIL


@frozen
class Rule:
    """Which requests get `fault`: those whose method is `method` (any if None) and whose target (path and
    query) `re.search`es `path` (any if None); of those, only the `nth` (1-based), or the `first` N, or all."""

    fault: Fault
    method: str | None = None
    path: str | None = None
    nth: int | None = None
    first: int | None = None
    _pattern: re.Pattern[str] | None = field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        if self.nth is not None and self.first is not None:
            raise ValueError("a rule takes nth or first, not both")
        for name in ("nth", "first"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} counts matching requests from 1; got {value}")
        object.__setattr__(self, "_pattern", re.compile(self.path) if self.path is not None else None)

    def matches(self, method: str, target: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self._pattern is None or self._pattern.search(target) is not None

    def applies_to(self, count: int) -> bool:
        """Whether the `count`-th matching request (1-based) gets the fault."""
        if self.nth is not None:
            return count == self.nth
        if self.first is not None:
            return count <= self.first
        return True


# ---------------------------------------------------------------- the log


@frozen
class Exchange:
    """One request and what the client got back, as they crossed the wire between client and proxy.

    `request_body` is the entity (chunked uploads de-chunked); `status` is None when the client got no
    answer (timeout, reset, upstream unreachable is a 502 instead). `fault` is the kind of fault applied
    (`status`, `timeout`, `reset`, `malformed`, `delay`) or None. `client_gone`: the client hung up before
    any answer (its own timeout), so it got none and `ended_at` is when the proxy noticed, an upper bound.
    Times are epoch seconds: `started_at` once the request line and headers arrived, `ended_at` just
    before the answer was written or the connection closed."""

    index: int
    method: str
    path: str
    query: str
    request_headers: Headers
    request_body: bytes
    status: int | None
    response_headers: Headers
    response_body: bytes
    fault: str | None
    started_at: float
    ended_at: float
    client_gone: bool = False

    @property
    def target(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path

    @property
    def failed(self) -> bool:
        """The client got no usable answer: an HTTP error, no answer at all, or a garbled body."""
        return self.status is None or self.status >= 400 or self.fault in FAILURE_FAULTS

    def request_header(self, name: str) -> str | None:
        return _header(self.request_headers, name)

    def response_header(self, name: str) -> str | None:
        return _header(self.response_headers, name)

    def describe(self) -> str:
        answer = "no answer" if self.status is None else str(self.status)
        if self.client_gone:
            answer += " (the client hung up first)"
        fault = f", fault {self.fault}" if self.fault else ""
        return f"#{self.index} {self.method} {self.target} -> {answer}{fault}"


def _header(headers: Headers, name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers:
        if key.lower() == wanted:
            return value
    return None


def _reason(code: int) -> str:
    try:
        return http.HTTPStatus(code).phrase
    except ValueError:
        return "Unknown"


# ---------------------------------------------------------------- the proxy


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    request_queue_size = 128
    block_on_close = False  # the proxy joins its threads itself: ThreadingMixIn forgets daemon threads

    def __init__(self, address: tuple[str, int], proxy: FaultProxy) -> None:
        self.proxy = proxy
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Daemon threads never keep the interpreter alive; `stop()` still joins every one.
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name="fault-proxy-connection",
            daemon=True,
        )
        self.proxy._adopt(thread)
        thread.start()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    # Headers and body go out in separate writes: with Nagle on, the body waits for the client's delayed ACK
    # (40 ms a request), which would make every exchange look slow.
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.proxy._track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.proxy._untrack(self.connection)

    def handle_one_request(self) -> None:
        try:
            self.raw_requestline = self.rfile.readline(MAX_LINE + 1)
        except OSError:
            self.close_connection = True
            return
        if not self.raw_requestline:
            self.close_connection = True
            return
        if len(self.raw_requestline) > MAX_LINE:
            self.send_error(http.HTTPStatus.REQUEST_URI_TOO_LONG)
            return
        if not self.parse_request():
            return
        self.server.proxy._exchange(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@define
class _Pending:
    """An exchange being built; frozen into an `Exchange` when it ends, however it ends."""

    index: int
    generation: int
    method: str
    path: str
    query: str
    request_headers: Headers
    started_at: float
    finished: bool = False
    request_body: bytes = b""
    status: int | None = None
    response_headers: Headers = ()
    response_body: bytes = b""
    fault: str | None = None
    client_gone: bool = False

    def done(self) -> Exchange:
        return Exchange(
            index=self.index,
            method=self.method,
            path=self.path,
            query=self.query,
            request_headers=self.request_headers,
            request_body=self.request_body,
            status=self.status,
            response_headers=self.response_headers,
            response_body=self.response_body,
            fault=self.fault,
            started_at=self.started_at,
            ended_at=time.time(),
            client_gone=self.client_gone,
        )


class FaultProxy(LoopbackServer):
    """A reverse proxy on `host` (a free port unless `port` is given) in front of `upstream` (an http:// base
    URL, whose path is prefixed to every request's). Thread-safe; `stop()` (or leaving the `with` block)
    closes every connection and joins every thread. `on_exchange` is called with each finished exchange."""

    def __init__(
        self,
        upstream: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        upstream_timeout: float = 30.0,
        on_exchange: Callable[[Exchange], None] | None = None,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http:// URL with a host, got {upstream!r}")
        self.upstream = upstream
        self._up_host = parts.hostname
        self._up_port = parts.port or 80
        self._up_netloc = parts.netloc
        self._up_base = parts.path.rstrip("/")
        self._address = (host, port)
        self.upstream_timeout = upstream_timeout
        self.on_exchange = on_exchange
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._rules: list[Rule] = []
        self._counts: list[int] = []
        self._log: list[Exchange] = []
        self._next_index = 0
        self._generation = 0
        self._in_flight = 0
        self._others_held: tuple[int, float] = (-1, 0.0)
        """(index of the exchange holding the others, until when on the monotonic clock)"""
        self._connections: set[socket.socket] = set()
        self._upstreams: set[http.client.HTTPConnection] = set()
        self._threads: list[threading.Thread] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> FaultProxy:
        if self._server is not None:
            raise RuntimeError("the proxy is already started")
        self._stopping.clear()
        self._server = _Server(self._address, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": _POLL}, name="fault-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        with self._lock:
            self._stopping.set()
            connections = list(self._connections)
            upstreams = list(self._upstreams)
        server.shutdown()
        for sock in connections:
            _shutdown(sock)
        for conn in upstreams:
            if conn.sock is not None:
                _shutdown(conn.sock)
        server.server_close()
        thread.join()
        with self._lock:
            threads, self._threads = self._threads, []
        for t in threads:
            t.join()
        self._server = self._thread = None

    # ------------------------------------------------------------ script and log

    def script(
        self,
        rule: Rule | Fault,
        *,
        method: str | None = None,
        path: str | None = None,
        nth: int | None = None,
        first: int | None = None,
    ) -> Rule:
        """Add a rule; the first rule (in the order scripted) that applies to a request decides its fault.
        Pass a `Rule`, or a fault and the rule's matching arguments. Each rule counts its own matches."""
        if not isinstance(rule, Rule):
            rule = Rule(rule, method=method, path=path, nth=nth, first=first)
        elif (method, path, nth, first) != (None, None, None, None):
            raise TypeError("pass matching arguments either in the Rule or to script(), not both")
        with self._lock:
            self._rules.append(rule)
            self._counts.append(0)
        return rule

    @property
    def exchanges(self) -> list[Exchange]:
        """Finished exchanges in arrival order. An exchange is logged before its client gets the answer (or
        the closed connection); `wait_idle` waits for those whose client gave up first."""
        with self._lock:
            return sorted(self._log, key=_by_index)

    def clear(self, *, exchanges: bool = True, script: bool = True) -> None:
        """Forget the log (numbering starts again at 0) and/or the scripted rules and their counts."""
        with self._lock:
            if exchanges:
                self._log.clear()
                self._next_index = 0
                self._generation += 1
            if script:
                self._rules.clear()
                self._counts.clear()
                self._others_held = (-1, 0.0)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no exchange is in flight (a timeout fault still holding its connection, say)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    # ------------------------------------------------------------ per connection

    def _adopt(self, thread: threading.Thread) -> None:
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections.add(sock)
            stopping = self._stopping.is_set()
        if stopping:
            _shutdown(sock)

    def _untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections.discard(sock)

    def _fault_for(self, method: str, target: str) -> tuple[Fault | None, int]:
        """The fault of the first rule that applies, and how many requests that rule has matched so far."""
        with self._lock:
            chosen: tuple[Fault | None, int] = (None, 0)
            for i, rule in enumerate(self._rules):
                if rule.matches(method, target):
                    self._counts[i] += 1
                    if chosen[0] is None and rule.applies_to(self._counts[i]):
                        chosen = (rule.fault, self._counts[i])
            return chosen

    def _exchange(self, handler: _Handler) -> None:
        target = handler.path
        if "://" in target.split("?", 1)[0]:  # absolute-form, as a client configured with a proxy sends
            parts = urlsplit(target)
            target = parts.path + (f"?{parts.query}" if parts.query else "")
        path, _, query = target.partition("?")
        with self._lock:
            index, generation = self._next_index, self._generation
            self._next_index += 1
            self._in_flight += 1
        pending = _Pending(
            index=index,
            generation=generation,
            method=handler.command,
            path=path,
            query=query,
            request_headers=tuple(handler.headers.items()),
            started_at=time.time(),
        )
        try:
            self._serve(handler, pending, target)
        finally:
            self._finish(pending)

    def _finish(self, pending: _Pending) -> None:
        """Log the exchange. Called just before the last thing the client sees (the answer written, the
        socket closed), so a client holding its answer finds the exchange in the log; an exchange that
        started before a `clear()` is not logged."""
        if pending.finished:
            return
        pending.finished = True
        exchange = pending.done()
        with self._idle:
            logged = pending.generation == self._generation
            if logged:
                self._log.append(exchange)
            self._in_flight -= 1
            self._idle.notify_all()
        if logged and self.on_exchange is not None:
            self.on_exchange(exchange)

    def _serve(self, handler: _Handler, pending: _Pending, target: str) -> None:
        try:
            pending.request_body = read_body(handler)
        except ClientGone:
            handler.close_connection = True
            pending.client_gone = True
            return
        except BadRequest as exc:
            body = json.dumps({"error": {"code": "400", "message": str(exc)}}).encode()
            self._answer(handler, pending, 400, (("Content-Type", "application/json"),), body, close=True)
            return
        fault, count = self._fault_for(pending.method, target)
        pending.fault = fault.kind if fault is not None else None
        if isinstance(fault, Status):
            code, headers, body = fault.response()
            self._answer(handler, pending, code, headers, body)
        elif isinstance(fault, Timeout):
            pending.client_gone = self._hold(handler.connection, fault.seconds) == "client"
            handler.close_connection = True
            self._finish(pending)
        elif isinstance(fault, Reset):
            self._finish(pending)
            _abort(handler)
        else:
            wait = 0.0
            if isinstance(fault, Delay):
                wait = fault.seconds
            elif isinstance(fault, Latency):
                wait = fault.seconds(count)
            held = self._hold(handler.connection, wait) if wait else "elapsed"
            if held == "elapsed" and isinstance(fault, Delay) and fault.amid_others:
                if fault.hold_others:  # whoever comes now is held until this answer has gone out
                    with self._lock:
                        self._others_held = (pending.index, math.inf)
                held = self._amid_others(handler, fault.amid_others)
                if fault.hold_others:
                    release = fault.hold_others if held == "elapsed" else 0.0
                    with self._lock:
                        self._others_held = (pending.index, time.monotonic() + release)
            elif held == "elapsed":
                held = self._held_for_another(handler, pending)
            if held == "stopping":
                handler.close_connection = True
                return
            # A client that hung up still had its request sent: the server does the work, the answer is lost.
            self._forward(handler, pending, target, garbled=isinstance(fault, Malformed), client_gone=held == "client")

    def _forward(self, handler: _Handler, pending: _Pending, target: str, *, garbled: bool, client_gone: bool) -> None:
        connection_tokens = {
            token.strip().lower() for value in handler.headers.get_all("Connection", []) for token in value.split(",")
        }
        skip = HOP_BY_HOP | connection_tokens | {"host", "content-length"}
        conn = http.client.HTTPConnection(self._up_host, self._up_port, timeout=self.upstream_timeout)
        with self._lock:
            if self._stopping.is_set():
                handler.close_connection = True
                return
            self._upstreams.add(conn)
        try:
            conn.putrequest(pending.method, self._up_base + target, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", self._up_netloc)
            for name, value in pending.request_headers:
                if name.lower() not in skip:
                    conn.putheader(name, value)
            body = pending.request_body
            if body or pending.method.upper() in ("POST", "PUT", "PATCH"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            response = conn.getresponse()
            data = response.read()
            code, headers = response.status, tuple(response.getheaders())
        except OSError as exc:
            if self._stopping.is_set():
                handler.close_connection = True
                return
            message = f"upstream {self.upstream} failed: {type(exc).__name__}: {exc}"
            error = {"error": {"code": "502", "message": message, "type": "proxy_error", "param": None}}
            self._answer(handler, pending, 502, (("Content-Type", "application/json"),), json.dumps(error).encode())
            return
        finally:
            conn.close()
            with self._lock:
                self._upstreams.discard(conn)
        if client_gone or _hung_up(handler.connection):
            self._client_gone(handler, pending)
            return
        keep = tuple((k, v) for k, v in headers if k.lower() not in HOP_BY_HOP)
        self._answer(handler, pending, code, keep, garble(data) if garbled else data)

    def _client_gone(self, handler: _Handler, pending: _Pending) -> None:
        """The client stopped waiting (or the proxy is stopping): no answer; log the exchange as such."""
        handler.close_connection = True
        pending.client_gone = not self._stopping.is_set()
        self._finish(pending)

    def _answer(
        self, handler: _Handler, pending: _Pending, code: int, headers: Headers, body: bytes, *, close: bool = False
    ) -> None:
        bodiless = pending.method.upper() == "HEAD" or code in (204, 304) or 100 <= code < 200
        if bodiless:
            # A HEAD answer's Content-Length describes the body a GET would get; keep the upstream's.
            body = b""
            if pending.fault == "malformed":
                # There is no body to garble: the client got an intact answer, so nothing failed.
                pending.fault = None
        else:
            headers = tuple((k, v) for k, v in headers if k.lower() != "content-length")
            headers += (("Content-Length", str(len(body))),)
        close = close or handler.close_connection or self._stopping.is_set()
        if close:
            headers += (("Connection", "close"),)
            handler.close_connection = True
        lines = [f"HTTP/1.1 {code} {_reason(code)}\r\n"]
        lines += [f"{name}: {value}\r\n" for name, value in headers]
        head = ("".join(lines) + "\r\n").encode("latin-1")
        pending.status, pending.response_headers, pending.response_body = code, headers, body
        self._finish(pending)
        try:
            handler.wfile.write(head + body)
            handler.wfile.flush()
        except OSError:
            handler.close_connection = True

    def _held_for_another(self, handler: _Handler, pending: _Pending) -> str:
        """Wait while another exchange holds the requests in flight (`Delay.hold_others`)."""
        while True:
            with self._lock:
                holder, until = self._others_held
            remaining = until - time.monotonic()
            if holder == pending.index or remaining <= 0:
                return "elapsed"
            held = self._hold(handler.connection, min(remaining, _POLL))
            if held != "elapsed":
                return held

    def _amid_others(self, handler: _Handler, seconds: float) -> str:
        """Wait up to `seconds` until another exchange is in flight: "elapsed" (company came, or the time is
        up), "client" (it hung up meanwhile) or "stopping"."""
        deadline = time.monotonic() + seconds
        with self._lock:
            started = self._next_index
        while True:
            with self._lock:
                # One that came and went between two looks counts too.
                company = self._in_flight > 1 or self._next_index > started
            remaining = deadline - time.monotonic()
            if company or remaining <= 0:
                return "elapsed"
            held = self._hold(handler.connection, min(remaining, _POLL))
            if held != "elapsed":
                return held

    def _hold(self, sock: socket.socket, seconds: float) -> str:
        """Say nothing for `seconds`, unless the client hangs up first or the proxy stops: returns
        "elapsed", "client" or "stopping"."""
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "elapsed"
            try:
                readable, _, _ = select.select([sock], [], [], min(remaining, _POLL))
                if readable and not sock.recv(1, socket.MSG_PEEK):
                    return "client"
            except (OSError, ValueError):
                return "client"
            if readable:  # the client sent more (pipelining): it is still there, keep holding
                self._stopping.wait(min(remaining, _POLL))
        return "stopping"


def _by_index(exchange: Exchange) -> int:
    return exchange.index


def _hung_up(sock: socket.socket) -> bool:
    """Whether the client has closed its end (an EOF waits to be read), without consuming anything."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and not sock.recv(1, socket.MSG_PEEK)
    except (OSError, ValueError):
        return True


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _abort(handler: _Handler) -> None:
    """Close with RST. The buffered files hold references to the socket: close them first, or the socket's
    close() would not reach the kernel."""
    handler.close_connection = True
    sock = handler.connection
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    handler.rfile.close()
    handler.wfile.close()
    sock.close()


# ---------------------------------------------------------------- command line


def _print_exchange(exchange: Exchange) -> None:
    ms = (exchange.ended_at - exchange.started_at) * 1000
    print(
        f"{exchange.describe()}  req {len(exchange.request_body)} B, resp {len(exchange.response_body)} B, {ms:.0f} ms",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m elspeth_testkit.fault_proxy", description="A logging reverse HTTP proxy on 127.0.0.1."
    )
    parser.add_argument("--upstream", required=True, help="http:// base URL to forward to")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    args = parser.parse_args(argv)
    with FaultProxy(args.upstream, port=args.port, on_exchange=_print_exchange) as proxy:
        print(proxy.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = [
    "FAILURE_FAULTS",
    "HOP_BY_HOP",
    "Delay",
    "Exchange",
    "Fault",
    "FaultProxy",
    "Latency",
    "Malformed",
    "Reset",
    "Rule",
    "Status",
    "Timeout",
    "delay",
    "garble",
    "latency",
    "malformed",
    "reset",
    "status",
    "timeout",
]
