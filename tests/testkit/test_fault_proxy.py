"""The fault proxy against a real upstream, driven by real HTTP clients: each fault must reach the client as
it would in production (an HTTP error, a timeout, a reset, a body that does not parse), and the log must hold
every exchange."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from elspeth_testkit.fault_proxy import (
    Exchange,
    FaultProxy,
    Rule,
    delay,
    garble,
    latency,
    malformed,
    reset,
    status,
    timeout,
)

try:
    import httpx
except ImportError:  # pragma: no cover - depends on the environment
    httpx = None


Answer = tuple[int, dict[str, str], bytes]


class HttpClient:
    name = "http.client"
    timeout_errors: tuple[type[BaseException], ...] = (TimeoutError,)
    reset_errors: tuple[type[BaseException], ...] = (ConnectionResetError,)  # RemoteDisconnected is one too

    def request(self, method: str, url: str, body: bytes | None = None, timeout: float = 2.0) -> Answer:
        parts = urllib.request.urlparse(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        try:
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            conn.request(method, target, body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()


class UrllibClient:
    name = "urllib"
    timeout_errors: tuple[type[BaseException], ...] = (TimeoutError, urllib.error.URLError)
    reset_errors: tuple[type[BaseException], ...] = (ConnectionResetError, urllib.error.URLError)

    def request(self, method: str, url: str, body: bytes | None = None, timeout: float = 2.0) -> Answer:
        req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:
                return response.status, dict(response.headers.items()), response.read()
        except urllib.error.HTTPError as exc:  # urllib's way of handing over an error answer
            return exc.code, dict(exc.headers.items()), exc.read()


class HttpxClient:
    name = "httpx"

    def __init__(self) -> None:
        assert httpx is not None
        self.timeout_errors: tuple[type[BaseException], ...] = (httpx.ReadTimeout,)
        self.reset_errors: tuple[type[BaseException], ...] = (httpx.ReadError, httpx.RemoteProtocolError)

    def request(self, method: str, url: str, body: bytes | None = None, timeout: float = 2.0) -> Answer:
        assert httpx is not None
        with httpx.Client(timeout=timeout) as client:
            response = client.request(method, url, content=body, headers={"Content-Type": "application/json"})
            return response.status_code, dict(response.headers.items()), response.content


CLIENTS = [
    pytest.param(HttpClient, id="http.client"),
    pytest.param(UrllibClient, id="urllib"),
    pytest.param(HttpxClient, id="httpx", marks=pytest.mark.skipif(httpx is None, reason="httpx is not installed")),
]


@pytest.fixture(params=CLIENTS)
def client(request: pytest.FixtureRequest) -> Any:
    return request.param()


def only(proxy: FaultProxy) -> Exchange:
    assert proxy.wait_idle(5)
    (exchange,) = proxy.exchanges
    return exchange


# ---------------------------------------------------------------- pass-through


def test_forwards_and_logs_a_json_post(proxy: FaultProxy, client: Any) -> None:
    code, _, body = client.request("POST", f"{proxy.url}/v1/chat?api-version=1", b'{"prompt": "hi"}')
    assert code == 200
    echoed = json.loads(body)
    assert echoed["path"] == "/v1/chat" and echoed["query"] == "api-version=1"
    assert echoed["echo"] == {"prompt": "hi"}
    exchange = only(proxy)
    assert (exchange.index, exchange.method, exchange.path, exchange.query) == (0, "POST", "/v1/chat", "api-version=1")
    assert exchange.request_body == b'{"prompt": "hi"}'
    assert exchange.status == 200 and exchange.fault is None and not exchange.failed
    assert exchange.response_body == body
    assert exchange.request_header("content-type") == "application/json"
    assert exchange.response_header("Content-Length") == str(len(body))
    assert exchange.started_at <= exchange.ended_at


def test_bodiless_get_and_head(proxy: FaultProxy) -> None:
    code, _, body = HttpClient().request("GET", f"{proxy.url}/items/7?x=1")
    assert code == 200 and json.loads(body)["method"] == "GET"
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=2)
    conn.request("HEAD", "/items/7")
    response = conn.getresponse()
    assert response.status == 200 and response.read() == b""
    assert int(response.getheader("Content-Length") or 0) > 0  # the size a GET would get, as the upstream said
    conn.close()
    assert proxy.wait_idle(5)
    get, head = proxy.exchanges
    assert get.request_body == b"" and get.query == "x=1"
    assert head.method == "HEAD" and head.response_body == b""


def test_hop_by_hop_headers_are_not_forwarded_and_host_is_the_upstreams(proxy: FaultProxy, upstream: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=2)
    headers = {
        "Connection": "keep-alive, X-Hop",
        "Keep-Alive": "timeout=5",
        "X-Hop": "1",
        "Proxy-Authorization": "Basic eA==",
        "X-Custom": "2",
    }
    conn.request("POST", "/h", body=b"{}", headers=headers)
    received = json.loads(conn.getresponse().read())["headers"]
    conn.close()
    names = {name.lower() for name in received}
    assert "x-custom" in names
    assert not names & {"x-hop", "keep-alive", "proxy-authorization"}
    assert received["Host"] == upstream.removeprefix("http://")
    assert only(proxy).request_header("X-Hop") == "1"  # the log shows what the client sent


def test_upstream_base_path_is_prefixed(upstream: str) -> None:
    with FaultProxy(upstream + "/devstoreaccount1/") as proxy:
        _, _, body = HttpClient().request("GET", f"{proxy.url}/container/blob?comp=list")
        assert json.loads(body)["path"] == "/devstoreaccount1/container/blob"
        assert only(proxy).path == "/container/blob"


def test_upstream_errors_pass_through_and_count_as_failed(proxy: FaultProxy) -> None:
    code, _, _ = HttpClient().request("POST", f"{proxy.url}/status/503", b"{}")
    exchange = only(proxy)
    assert code == exchange.status == 503
    assert exchange.fault is None and exchange.failed


def test_unreachable_upstream_is_a_logged_502() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    with FaultProxy(f"http://127.0.0.1:{closed_port}") as proxy:
        code, _, body = HttpClient().request("GET", f"{proxy.url}/x")
        assert code == 502 and b"upstream" in body
        assert only(proxy).status == 502


# ---------------------------------------------------------------- faults as clients see them


def test_status_500(proxy: FaultProxy, client: Any) -> None:
    proxy.script(status(500))
    code, headers, body = client.request("POST", f"{proxy.url}/chat", b'{"a": 1}')
    assert code == 500
    assert json.loads(body)["error"]["code"] == "500"
    assert headers.get("Content-Type", headers.get("content-type")) == "application/json"
    exchange = only(proxy)
    assert (exchange.status, exchange.fault, exchange.failed) == (500, "status", True)
    assert exchange.request_body == b'{"a": 1}'
    assert exchange.response_body == body


def test_status_429_with_retry_after(proxy: FaultProxy, client: Any) -> None:
    proxy.script(status(429, retry_after=1))
    code, headers, body = client.request("POST", f"{proxy.url}/chat", b"{}")
    assert code == 429
    assert {k.lower(): v for k, v in headers.items()}["retry-after"] == "1"
    assert json.loads(body)["error"]["type"] == "rate_limit_exceeded"


def test_timeout_raises_the_clients_timeout_error(proxy: FaultProxy, client: Any) -> None:
    proxy.script(timeout(5))
    started = time.monotonic()
    with pytest.raises(client.timeout_errors) as caught:
        client.request("POST", f"{proxy.url}/chat", b'{"slow": true}', timeout=0.2)
    if isinstance(caught.value, urllib.error.URLError):
        assert isinstance(caught.value.reason, TimeoutError)
    exchange = only(proxy)  # the proxy lets go as soon as the client hangs up
    assert time.monotonic() - started < 2
    assert (exchange.status, exchange.fault, exchange.failed) == (None, "timeout", True)
    assert exchange.request_body == b'{"slow": true}'


def test_timeout_shorter_than_the_clients_closes_without_an_answer(proxy: FaultProxy) -> None:
    proxy.script(timeout(0.1))
    with pytest.raises(http.client.RemoteDisconnected):
        HttpClient().request("GET", f"{proxy.url}/x", timeout=2)
    assert only(proxy).fault == "timeout"


def test_reset_raises_connection_reset(proxy: FaultProxy, client: Any) -> None:
    proxy.script(reset())
    with pytest.raises(client.reset_errors) as caught:
        client.request("POST", f"{proxy.url}/chat", b'{"b": 2}')
    if isinstance(caught.value, urllib.error.URLError):
        assert isinstance(caught.value.reason, ConnectionResetError)
    exchange = only(proxy)
    assert (exchange.status, exchange.fault, exchange.failed) == (None, "reset", True)
    assert exchange.request_body == b'{"b": 2}'


def test_malformed_body_does_not_parse(proxy: FaultProxy, client: Any) -> None:
    proxy.script(malformed())
    code, _, body = client.request("POST", f"{proxy.url}/chat", b'{"c": 3}')
    assert code == 200
    with pytest.raises(ValueError):
        json.loads(body)
    exchange = only(proxy)
    assert (exchange.status, exchange.fault, exchange.failed) == (200, "malformed", True)
    assert exchange.response_body == body


def test_garble_is_never_json() -> None:
    for body in (b"", b"1", b"12", b'"abc"', b'{"a": [1, 2, {"b": "c"}]}', b"[true]"):
        with pytest.raises(ValueError):
            json.loads(garble(body))


def test_delay_then_forward(proxy: FaultProxy, client: Any) -> None:
    proxy.script(delay(0.2))
    started = time.monotonic()
    code, _, body = client.request("POST", f"{proxy.url}/chat", b'{"d": 4}')
    assert time.monotonic() - started >= 0.2
    assert code == 200 and json.loads(body)["echo"] == {"d": 4}
    exchange = only(proxy)
    assert (exchange.fault, exchange.failed) == ("delay", False)


def test_a_client_that_hangs_up_during_a_delay_gets_and_is_logged_with_no_answer(
    proxy: FaultProxy, client: Any
) -> None:
    """Its own timeout: the exchange ends without an answer (had the proxy logged the upstream's 200, the
    wire check would want that answer recorded by a client that never saw it)."""
    proxy.script(delay(1.0))
    with pytest.raises(client.timeout_errors):
        client.request("POST", f"{proxy.url}/slow", b'{"d": 5}', timeout=0.2)
    exchange = only(proxy)
    assert (exchange.status, exchange.fault, exchange.client_gone, exchange.failed) == (None, "delay", True, True)
    assert exchange.ended_at - exchange.started_at < 0.8
    assert exchange.describe().endswith("-> no answer (the client hung up first), fault delay")


def test_latency_follows_its_schedule_request_by_request(proxy: FaultProxy) -> None:
    proxy.script(latency(0.3, 0.0))
    took = []
    for i in range(3):
        started = time.monotonic()
        assert HttpClient().request("POST", f"{proxy.url}/l/{i}", b"{}")[0] == 200
        took.append(time.monotonic() - started)
    assert took[0] >= 0.3 and took[1] < 0.25 and took[2] >= 0.3
    assert proxy.wait_idle(5)
    assert [e.fault for e in proxy.exchanges] == ["delay"] * 3
    with pytest.raises(ValueError, match="one or more delays"):
        latency()


def test_a_delay_amid_others_answers_once_another_request_is_in_flight(proxy: FaultProxy) -> None:
    """The stalled answer waits its 0.1 s, then for company: it comes while the second request is held."""
    proxy.script(delay(0.1, amid_others=3.0), nth=1)
    proxy.script(delay(0.5), nth=2)
    started = time.monotonic()
    answered = _stalled_then_company(proxy, 0.4)
    assert 0.4 <= answered["stalled"] - started < 0.8  # not 3.1 s: company came at 0.4 s
    assert answered["stalled"] < answered["company"]
    alone = time.monotonic()
    assert HttpClient().request("POST", f"{proxy.url}/alone", b"{}", timeout=5)[0] == 200
    assert time.monotonic() - alone < 0.3  # rules 1 and 2 are spent: no delay at all
    proxy.clear()
    proxy.script(delay(0.05, amid_others=0.3))
    alone = time.monotonic()
    assert HttpClient().request("POST", f"{proxy.url}/alone", b"{}", timeout=5)[0] == 200
    assert 0.35 <= time.monotonic() - alone < 1.0  # no company ever: the wait for it ends after 0.3 s


def _stalled_then_company(proxy: FaultProxy, gap: float) -> dict[str, float]:
    """POST /stalled, then `gap` seconds later POST /company, each in a thread of its own: when each was
    answered (both must be answered 200)."""
    answered: dict[str, float] = {}

    def send(name: str) -> None:
        assert HttpClient().request("POST", f"{proxy.url}/{name}", b"{}", timeout=5)[0] == 200
        answered[name] = time.monotonic()

    first = threading.Thread(target=send, args=("stalled",))
    first.start()
    time.sleep(gap)
    second = threading.Thread(target=send, args=("company",))
    second.start()
    first.join()
    second.join()
    return answered


def test_a_delay_amid_others_can_hold_the_others_while_its_answer_is_handled(proxy: FaultProxy) -> None:
    proxy.script(delay(0.0, amid_others=3.0, hold_others=0.3), nth=1)
    answered = _stalled_then_company(proxy, 0.2)
    assert answered["company"] - answered["stalled"] >= 0.25  # held 0.3 s from the stalled answer's release


# ---------------------------------------------------------------- scripting


def test_rules_match_by_method_path_nth_and_first(proxy: FaultProxy) -> None:
    proxy.script(status(500), method="POST", path=r"^/chat", nth=2)
    proxy.script(Rule(status(429), method="GET", first=2))
    c = HttpClient()
    codes = [c.request("POST", f"{proxy.url}/chat/{i}", b"{}")[0] for i in range(3)]
    codes += [c.request("POST", f"{proxy.url}/other", b"{}")[0]]
    codes += [c.request("GET", f"{proxy.url}/chat")[0] for _ in range(3)]
    assert codes == [200, 500, 200, 200, 429, 429, 200]
    assert proxy.wait_idle(5)
    assert [e.fault for e in proxy.exchanges] == [None, "status", None, None, "status", "status", None]
    assert [e.index for e in proxy.exchanges] == list(range(7))


def test_first_applicable_rule_wins_and_each_rule_counts_its_own_matches(proxy: FaultProxy) -> None:
    proxy.script(status(500), first=1)
    proxy.script(status(503), nth=2)
    codes = [HttpClient().request("GET", f"{proxy.url}/x")[0] for _ in range(3)]
    assert codes == [500, 503, 200]


def test_rule_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="not both"):
        Rule(reset(), nth=1, first=2)
    with pytest.raises(ValueError, match="from 1"):
        Rule(reset(), nth=0)


def test_clear_forgets_the_log_and_the_script(proxy: FaultProxy) -> None:
    proxy.script(status(500))
    assert HttpClient().request("GET", f"{proxy.url}/x")[0] == 500
    proxy.clear()
    assert proxy.exchanges == []
    assert HttpClient().request("GET", f"{proxy.url}/x")[0] == 200
    assert only(proxy).index == 0


# ---------------------------------------------------------------- connections


def test_keep_alive_serves_several_requests_on_one_connection(proxy: FaultProxy) -> None:
    proxy.script(status(500), nth=2)
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=2)
    sockets, codes = [], []
    for i in range(4):
        conn.request("POST", f"/k/{i}", body=json.dumps({"i": i}).encode(), headers={"Content-Type": "x/y"})
        response = conn.getresponse()
        codes.append(response.status)
        response.read()
        sockets.append(conn.sock)
    conn.close()
    assert codes == [200, 500, 200, 200]
    assert all(s is sockets[0] for s in sockets)  # http.client reconnects (new socket) if the server closed
    assert proxy.wait_idle(5)
    assert [e.request_body for e in proxy.exchanges] == [json.dumps({"i": i}).encode() for i in range(4)]


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(HttpClient, id="http.client"),
        pytest.param(HttpxClient, id="httpx", marks=pytest.mark.skipif(httpx is None, reason="httpx is not installed")),
    ],
)
def test_chunked_upload(proxy: FaultProxy, make: Any) -> None:
    pieces = [b'{"rows": [', b'{"id": 1}, ', b'{"id": 2}', b"]}"]
    if make is HttpClient:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=2)
        conn.request("POST", "/up", body=iter(pieces), encode_chunked=True)
        body = conn.getresponse().read()
        conn.close()
    else:
        assert httpx is not None
        body = httpx.post(f"{proxy.url}/up", content=iter(pieces), timeout=2).content
    assert json.loads(body)["echo"] == {"rows": [{"id": 1}, {"id": 2}]}
    exchange = only(proxy)
    assert exchange.request_header("Transfer-Encoding") == "chunked"
    assert exchange.request_body == b"".join(pieces)


def test_concurrent_requests_are_all_logged(proxy: FaultProxy) -> None:
    proxy.script(status(500), path=r"/c/1\d$")

    def send(i: int) -> None:
        UrllibClient().request("POST", f"{proxy.url}/c/{i}", json.dumps({"i": i}).encode())

    threads = [threading.Thread(target=send, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert proxy.wait_idle(5)
    log = proxy.exchanges
    assert sorted(e.index for e in log) == list(range(20))
    assert {e.path: json.loads(e.request_body)["i"] for e in log} == {f"/c/{i}": i for i in range(20)}
    assert {e.path for e in log if e.status == 500} == {f"/c/{i}" for i in range(10, 20)}


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counting file descriptors needs /proc")
def test_stop_closes_held_and_idle_connections_and_joins_every_thread(upstream: str) -> None:
    fds_before = _fds()
    proxy = FaultProxy(upstream).start()
    proxy.script(timeout(30), path="/hold")
    idle = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    idle.request("GET", "/warm")
    idle.getresponse().read()  # the connection stays open, its handler waiting for the next request
    errors: list[BaseException] = []

    def held() -> None:
        try:
            HttpClient().request("POST", f"{proxy.url}/hold", b"{}", timeout=10)
        except Exception as exc:
            errors.append(exc)

    holder = threading.Thread(target=held)
    holder.start()
    deadline = time.monotonic() + 5
    while len(proxy.exchanges) < 1 or proxy.wait_idle(0):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    port = proxy.port
    started = time.monotonic()
    proxy.stop()
    assert time.monotonic() - started < 2
    holder.join(5)
    idle.close()
    assert errors and isinstance(errors[0], ConnectionError)
    assert [e.fault for e in proxy.exchanges] == [None, "timeout"]
    assert [t for t in threading.enumerate() if t.name.startswith("fault-proxy")] == []
    assert _fds() == fds_before
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    proxy.stop()  # twice is harmless


def test_command_line_prints_the_url_and_logs_exchanges(upstream: str) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "elspeth_testkit.fault_proxy", "--upstream", upstream],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert UrllibClient().request("POST", f"{url}/cli", b'{"a": 1}')[0] == 200
        line = process.stdout.readline()
        assert "#0 POST /cli -> 200" in line
        process.send_signal(signal.SIGINT)
        assert process.wait(5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_malformed_on_a_bodiless_answer_is_no_failure(upstream):
    """A HEAD answer has no body to garble: the client sees an intact answer, so the wire check must not
    demand an ERROR call for it."""
    import http.client
    from urllib.parse import urlsplit

    from elspeth_testkit.fault_proxy import FaultProxy, malformed

    with FaultProxy(upstream) as proxy:
        proxy.script(malformed(), method="HEAD")
        target = urlsplit(proxy.url)
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=5)
        conn.request("HEAD", "/thing")
        answer = conn.getresponse()
        answer.read()
        conn.close()
        proxy.wait_idle()
        (exchange,) = proxy.exchanges
    assert answer.status < 400
    assert exchange.fault is None and not exchange.failed
