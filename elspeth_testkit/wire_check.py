"""The wire check: what crossed the wire (the fault proxy's log) against what a run recorded in `calls`.

Matching is SDK-agnostic: it never parses a request the way one SDK builds it. An exchange fits a calls row
when the stored request *contains* what was sent:

- a JSON body: an equal JSON value anywhere inside the stored request (at any depth, or a string holding
  that JSON); members that are null on one side and absent on the other are ignored, so a recorded
  `model_dump()` fits the JSON it was parsed from;
- any other body: an equal string (UTF-8) or an equal `{"base64": ...}` value, as the recorder stores bytes
  (JSON Lines also fit as the list of their values; a multipart body fits when every part does);
- a bodiless request (GET, DELETE, HEAD): its path, without the query, as a substring of a stored string.

Exchanges are matched in order, each to the earliest free calls row: first a maximum matching over the
rows that hold the request, agree with what happened on the wire (an ERROR call for a failure; for a
success, the response held) and hang off a state open at the time (below); then each exchange left over
takes any row that holds its request (moving exchanges already matched only among rows that agree with
them); then a request with a body that is still
left over takes a row that holds only its path, and is reported: the row holds metadata, not the body.
Every unmatched exchange is reported once: `call-error-unrecorded` when it failed on the wire,
`call-unrecorded` otherwise.

Time (DESIGN 4.7, bug class 21): a call is recorded under the state of the work that made it, while that
state is open. So an exchange must have started after its call's node_state opened and, when the call holds
an answer (status ok: the client had it before recording it), have ended before that state closed; an
ERROR call may be a client that gave up waiting, so its exchange may outlive the state. Both ends are safe
bounds for a correct plugin: the proxy notes the start after the client sent the request, the end before
it writes the answer; proxy and Landscape read the same clock (`time.time()` in this process). A matched
exchange outside its state's interval is `call-outside-state`: work started for one row (a worker thread
that outlived a timeout, a ctx kept on the plugin) recorded under whatever state was open when it ended.

Pass the exchanges of the run being checked only (`FaultProxy.clear()` between runs, `wait_idle()` before).
Calls that never crossed this proxy (other hosts, non-HTTP) are not the wire check's business.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from attrs import frozen

from elspeth.landscape.reading import Body, CallRecord, CallStatus, Landscape, RunRecords
from elspeth.landscape.redaction import Redactor
from elspeth_testkit.fault_proxy import Exchange
from elspeth_testkit.sweep import Violation, opened, report, strict_loads

PREVIEW_CHARS = 200
CANDIDATES_SHOWN = 3
_NOT_JSON = object()
_UNREADABLE = object()
_RETRY_HINT = (
    "If an SDK retried on its own, each attempt crossed the wire: turn its retries off (e.g. max_retries=0) and "
    "let the engine retry, or record every attempt."
)


# ---------------------------------------------------------------- containment


def _normal(value: Any) -> Any:
    """The JSON value with null object members dropped and integral floats as ints: two values are equal
    for the wire check when their normal forms serialize alike (so 1 == 1.0, but true != 1)."""
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _key(value: Any) -> str:
    return json.dumps(_normal(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _json(data: bytes | str) -> Any:
    try:
        return strict_loads(data.decode("utf-8") if isinstance(data, bytes) else data)
    except (UnicodeDecodeError, ValueError):
        return _NOT_JSON


class StoredBody:
    """What a stored request or response holds, indexed for the containment tests: the key of every value
    inside it (strings that hold JSON included, parsed), and every string."""

    def __init__(self, value: Any) -> None:
        self.value = value
        self.keys: set[str] = set()
        self.strings: list[str] = []
        if value is not _UNREADABLE:
            self._index(value)

    def _index(self, value: Any) -> None:
        stack = [value]
        while stack:
            node = stack.pop()
            self.keys.add(_key(node))
            if isinstance(node, dict):
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
            elif isinstance(node, str):
                self.strings.append(node)
                if node.lstrip()[:1] in ("{", "["):
                    parsed = _json(node)
                    if parsed is not _NOT_JSON:
                        stack.append(parsed)

    def holds(self, needle: Needle) -> bool:
        return all(not alternatives.isdisjoint(self.keys) for alternatives in needle.parts)

    def holds_body(self, body: bytes, content_type: str | None = None) -> bool:
        return self.holds(Needle.of(body, content_type))

    def holds_path(self, path: str) -> bool:
        """Some string holds `path`, as sent or percent-decoded."""
        forms = {path, unquote(path)}
        return any(form in string for string in self.strings for form in forms)


@frozen
class Needle:
    """A body as the keys of the stored values that would hold it: per part (one, or each part of a
    multipart body), the alternatives. A JSON body is held as an equal value at any depth; any body as an
    equal string or {"base64": ...} value; JSON Lines also as the list of their values."""

    parts: tuple[frozenset[str], ...]

    @classmethod
    def of(cls, body: bytes, content_type: str | None = None, redact: Redactor | None = None) -> Needle:
        """`redact` is what the recorder applied to what it stored: secrets on the wire are `***` there."""
        redact = redact or Redactor()
        if content_type and content_type.lower().startswith("multipart/"):
            parts = _multipart(body, content_type)
            if parts:
                return cls(tuple(alt for data, ctype in parts for alt in cls.of(data, ctype, redact).parts))
        keys = {_key({"base64": base64.b64encode(body).decode("ascii")})}
        value = _json(body)
        if value is not _NOT_JSON:
            keys.add(_key(redact(value)))
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return cls((frozenset(keys),))
        keys.add(_key(redact.text(text)))
        values = [_json(line) for line in text.splitlines() if line.strip()]
        if len(values) > 1 and all(v is not _NOT_JSON for v in values):
            keys.add(_key(redact(values)))
        return cls((frozenset(keys),))


def contains_body(stored: Any, body: bytes, content_type: str | None = None) -> bool:
    """Whether the JSON value `stored` (a recorded request or response) holds `body`."""
    return StoredBody(stored).holds_body(body, content_type)


def _multipart(body: bytes, content_type: str) -> list[tuple[bytes, str]]:
    head = b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not message.is_multipart():
        return []
    parts = []
    for part in message.iter_parts():
        payload = part.get_payload(decode=True)
        parts.append((payload if isinstance(payload, bytes) else b"", part.get_content_type()))
    return parts


def _decoded(body: bytes, encoding: str | None) -> bytes:
    """The entity without its Content-Encoding (gzip, deflate); as sent when it cannot be decoded."""
    if not body or not encoding:
        return body
    try:
        for coding in reversed([c.strip().lower() for c in encoding.split(",") if c.strip()]):
            if coding in ("gzip", "x-gzip"):
                body = zlib.decompress(body, 16 + zlib.MAX_WBITS)
            elif coding == "deflate":
                try:
                    body = zlib.decompress(body)
                except zlib.error:
                    body = zlib.decompress(body, -zlib.MAX_WBITS)
            elif coding != "identity":
                return body
    except zlib.error:
        return body
    return body


# ---------------------------------------------------------------- the calls of a run


@frozen
class _State:
    """A node_state, as the time check needs it: when it was open, and whose work it was."""

    state_id: int
    node_id: str
    operation: str
    token_id: int | None
    row_id: int | None
    attempt: int
    started_at: float
    ended_at: float | None

    def open_at(self, moment: float) -> bool:
        return self.started_at <= moment and (self.ended_at is None or moment <= self.ended_at)

    def describe(self) -> str:
        work = f"row {self.row_id}, token {self.token_id}, " if self.token_id is not None else ""
        return f"node_state {self.state_id} ({self.node_id} {self.operation}, {work}attempt {self.attempt})"

    def brief(self, origin: float) -> dict[str, Any]:
        return {
            "state_id": self.state_id,
            "node_id": self.node_id,
            "operation": self.operation,
            "row_id": self.row_id,
            "token_id": self.token_id,
            "attempt": self.attempt,
            "opened": f"+{self.started_at - origin:.3f} s",
            "closed": "open" if self.ended_at is None else f"+{self.ended_at - origin:.3f} s",
        }


@frozen
class _Call:
    order: int
    record: CallRecord
    request: StoredBody
    response: StoredBody | None
    state: _State | None = None
    """The node_state the call hangs off; None for an orphan (`call-orphan`)."""

    @property
    def is_error(self) -> bool:
        return self.record.status == CallStatus.ERROR and self.record.error_json is not None

    def brief(self) -> dict[str, Any]:
        r = self.record
        return {
            "state_id": r.state_id,
            "call_index": r.call_index,
            "call_type": r.call_type,
            "provider": r.provider,
            "status": str(r.status),
            "request": _preview_value(self.request.value),
            "response": _preview_value(None if self.response is None else self.response.value),
            "error": r.error_json,
        }


def _stored(body: Body) -> Any:
    if body.text is None:
        return _UNREADABLE if body.ref is not None else None
    try:
        return strict_loads(body.text)
    except ValueError:
        return _UNREADABLE


@frozen
class _Landscape:
    """What the wire check reads of one run: its calls in the order they were made, those whose state_id
    names no node_state, every node_state, and when the run started (messages give times from there)."""

    calls: list[_Call]
    orphans: list[_Call]
    states: dict[int, _State]
    started_at: float


def _load(records: RunRecords) -> _Landscape:
    row_of_token = {t.token_id: t.row_id for t in records.tokens}
    states = {
        s.state_id: _State(
            s.state_id,
            s.node_id,
            s.operation,
            s.token_id,
            None if s.token_id is None else row_of_token.get(s.token_id),
            s.attempt,
            s.started_at,
            s.ended_at,
        )
        for s in records.states
    }
    made = sorted(records.calls, key=lambda c: (c.created_at, c.state_id, c.call_index))
    calls, orphans = [], []
    for i, record in enumerate(made):
        response = _stored(record.response)
        call = _Call(
            order=i,
            record=record,
            request=StoredBody(_stored(record.request)),
            response=None if response is None else StoredBody(response),
            state=states.get(record.state_id),
        )
        calls.append(call)
        if call.state is None:
            orphans.append(call)
    started = records.run.started_at if records.run is not None else None
    origin = started if started is not None else min((s.started_at for s in states.values()), default=0.0)
    return _Landscape(calls, orphans, states, origin)


# ---------------------------------------------------------------- matching


def _augment(
    root: int, root_edges: Sequence[int], edges: Sequence[Sequence[int]], owner: dict[int, int], match: dict[int, int]
) -> bool:
    """Find a free call for exchange `root` along an augmenting path (breadth first, so the root's own
    earliest free candidate wins). Exchanges already matched move only along `edges`."""
    via: dict[int, int] = {}
    queue = deque([root])
    while queue:
        ex = queue.popleft()
        for call in root_edges if ex == root else edges[ex]:
            if call in via:
                continue
            via[call] = ex
            if call not in owner:
                while True:
                    holder = via[call]
                    previous = match.get(holder)
                    owner[call], match[holder] = holder, call
                    if holder == root or previous is None:
                        return True
                    call = previous
            queue.append(owner[call])
    return False


@frozen
class _Sent:
    """One exchange with its bodies decoded (Content-Encoding undone) and made into needles once."""

    exchange: Exchange
    request: bytes
    response: bytes
    request_needle: Needle | None
    response_needle: Needle | None

    @classmethod
    def of(cls, exchange: Exchange, redact: Redactor | None = None) -> _Sent:
        request = _decoded(exchange.request_body, exchange.request_header("Content-Encoding"))
        response = _decoded(exchange.response_body, exchange.response_header("Content-Encoding"))
        return cls(
            exchange,
            request,
            response,
            Needle.of(request, exchange.request_header("Content-Type"), redact) if request else None,
            Needle.of(response, exchange.response_header("Content-Type"), redact) if response else None,
        )

    def fits(self, call: _Call) -> bool:
        """The call holds the request: its body, or for a bodiless request its path."""
        if self.request_needle is not None:
            return call.request.holds(self.request_needle)
        return call.request.holds_path(self.exchange.path)

    def fits_by_path(self, call: _Call) -> bool:
        return call.request.holds_path(self.exchange.path)

    def response_held(self, call: _Call) -> bool:
        return (
            self.response_needle is not None and call.response is not None and call.response.holds(self.response_needle)
        )

    def agrees(self, call: _Call) -> bool:
        """The call's status tells what happened on the wire: a failure is an ERROR call (a garbled body may
        instead be kept as the response), a success is not."""
        if not self.exchange.failed:
            return not call.is_error
        return call.is_error or (self.exchange.fault == "malformed" and self.response_held(call))

    def response_missing(self, call: _Call) -> bool:
        return not self.exchange.failed and self.response_needle is not None and not self.response_held(call)

    def sent_before_opened(self, call: _Call) -> bool:
        return call.state is not None and self.exchange.started_at < call.state.started_at

    def answered_after_closed(self, call: _Call) -> bool:
        """An ok call holds an answer its client had before recording it: the exchange must have ended
        while the state was open. (An ERROR call may be a client that stopped waiting.)"""
        closed = None if call.state is None else call.state.ended_at
        return call.record.status == CallStatus.OK and closed is not None and self.exchange.ended_at > closed

    def in_time(self, call: _Call) -> bool:
        """The exchange lies inside the open interval of the call's state, as far as the wire can tell."""
        return not self.sent_before_opened(call) and not self.answered_after_closed(call)

    def clean(self, call: _Call) -> bool:
        """Matched to `call` (which holds its request), this exchange would break no invariant."""
        return self.agrees(call) and not self.response_missing(call) and self.in_time(call)


def _match(sent: list[_Sent], calls: list[_Call]) -> tuple[dict[int, int], set[int]]:
    """Exchange index -> call order, and the exchanges matched by path only, in the three rounds the module
    docstring tells. Exchanges already matched move only among clean rows, so no round makes an earlier
    match worse: a retried request's failed and successful attempts each find their own row."""
    clean: list[list[int]] = []
    fitting: list[list[int]] = []
    for s in sent:
        fits = [call for call in calls if s.fits(call)]
        clean.append([call.order for call in fits if s.clean(call)])
        fitting.append([call.order for call in fits])
    owner: dict[int, int] = {}
    match: dict[int, int] = {}
    for i in range(len(sent)):
        _augment(i, clean[i], clean, owner, match)
    for i in range(len(sent)):
        if i not in match:
            _augment(i, fitting[i], clean, owner, match)
    for i in range(len(sent)):
        if i not in match and sent[i].request:  # searching every string for the path is costly: only here
            held = set(fitting[i])
            by_path = [call.order for call in calls if call.order not in held and sent[i].fits_by_path(call)]
            if by_path:
                _augment(i, sorted(fitting[i] + by_path), clean, owner, match)
    path_only = {i for i, order in match.items() if order not in fitting[i]}
    return match, path_only


# ---------------------------------------------------------------- reporting


def _preview(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace")
    text = " ".join(text.split())
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def _preview_value(value: Any) -> str:
    if value is _UNREADABLE:
        return "(unreadable: see the sweep's payload checks)"
    if value is None:
        return "NULL"
    return _preview(json.dumps(value, ensure_ascii=False).encode())


def _describe(exchange: Exchange, request: bytes) -> str:
    if request:
        return f"{exchange.describe()}, request body ({len(request)} B): {_preview(request)}"
    return f"{exchange.describe()}, no request body"


def _failure(exchange: Exchange) -> str:
    if exchange.client_gone and exchange.fault != "timeout":
        return "the client hung up before the answer came (its own timeout)"
    if exchange.fault in ("timeout", "reset"):
        return {"timeout": "the server never answered (timeout)", "reset": "the connection was reset"}[exchange.fault]
    if exchange.fault == "malformed":
        return f"status {exchange.status} with a garbled, non-JSON body"
    if exchange.status is None:
        return "no answer"
    return f"HTTP {exchange.status}: {_preview(exchange.response_body)}"


def _nearest(calls: Iterable[_Call], exchange: Exchange) -> list[dict[str, Any]]:
    ranked = sorted(calls, key=lambda call: abs(call.record.created_at - exchange.ended_at))
    return [call.brief() for call in ranked[:CANDIDATES_SHOWN]]


def _outside_state(s: _Sent, call: _Call, where: str, landscape: _Landscape) -> Violation:
    """`call-outside-state`: which end of the exchange lies outside the state, and whose work was open then."""
    exchange, state = s.exchange, call.state
    assert state is not None
    origin = landscape.started_at
    closed = "still open" if state.ended_at is None else f"closed at +{state.ended_at - origin:.3f} s"
    if s.sent_before_opened(call):
        moment = exchange.started_at
        wrong = f"it was sent {state.started_at - moment:.3f} s before that state opened"
    else:
        assert state.ended_at is not None
        moment = exchange.ended_at
        wrong = f"its answer came {moment - state.ended_at:.3f} s after that state closed"
    then = [
        other
        for other in landscape.states.values()
        if other.node_id == state.node_id and other.state_id != state.state_id and other.open_at(moment)
    ]
    owners = (
        f" At that moment the open state(s) of {state.node_id} were: {', '.join(o.describe() for o in then)}."
        if then
        else f" No other state of {state.node_id} was open at that moment."
    )
    return Violation(
        "call-outside-state",
        f"{_describe(exchange, s.request)}: it crossed the wire from +{exchange.started_at - origin:.3f} s to "
        f"+{exchange.ended_at - origin:.3f} s (run time), but its {where} hangs off {state.describe()}, opened "
        f"at +{state.started_at - origin:.3f} s and {closed}: {wrong}.{owners} A call is recorded under the "
        "state of the work that made it, while that state is open: work started for one row (a worker thread "
        "that outlives a timeout, a request still in flight when process() returned) must not be recorded "
        "under whatever state is open when it ends. Record each call through the ctx that process() was "
        "handed for that row, never one kept on the plugin or a shared client, and finish or cancel every "
        "worker before process() returns.",
        [
            {"row": "the call", **call.brief()},
            {"row": "its state", **state.brief(origin)},
            *({"row": "open then", **o.brief(origin)} for o in then[:5]),
        ],
    )


# ---------------------------------------------------------------- entry points


@frozen
class WireMatch:
    """What the wire check made of a run's exchanges: the violations, and per exchange (by its index) the
    calls row it was matched to (None: unmatched) and its request body as a needle (None: no body)."""

    violations: list[Violation]
    calls: dict[int, CallRecord | None]
    requests: dict[int, Needle | None]


def compare_wire_with_calls(
    exchanges: Iterable[Exchange],
    landscape_or_url: Landscape | str,
    run_id: str,
    payload_dir: str | Path | None = None,
    secrets: Iterable[str] = (),
) -> list[Violation]:
    """Violations of the wire invariants for run `run_id`: `call-unrecorded`, `call-metadata-only`,
    `call-error-unrecorded`, `call-outside-state` and `call-orphan`. `payload_dir` defaults to `payloads`
    beside a SQLite file. `secrets` are the values the run kept out of the Landscape (as the engine redacts them)."""
    return match_wire(exchanges, landscape_or_url, run_id, payload_dir, secrets).violations


def match_wire(
    exchanges: Iterable[Exchange],
    landscape_or_url: Landscape | str,
    run_id: str,
    payload_dir: str | Path | None = None,
    secrets: Iterable[str] = (),
    excused: Callable[[Exchange], bool] | None = None,
) -> WireMatch:
    """`compare_wire_with_calls`, with the matching it found. An exchange that matches no call is not reported
    when `excused` says it may never have been recorded (its client was killed before it could record it)."""
    with opened(landscape_or_url, payload_dir) as reader:
        landscape = _load(reader.run(run_id))

    calls, orphans = landscape.calls, landscape.orphans
    redact = Redactor.of(secrets)
    sent = [_Sent.of(e, redact) for e in sorted(exchanges, key=lambda e: e.index)]
    match, path_only = _match(sent, calls)
    matched_calls = set(match.values())
    free = [call for call in calls if call.order not in matched_calls]
    found: list[Violation] = []
    for i, s in enumerate(sent):
        exchange = s.exchange
        what = _describe(exchange, s.request)
        if i not in match:
            if excused is not None and excused(exchange):
                continue
            if exchange.failed:
                found.append(
                    Violation(
                        "call-error-unrecorded",
                        f"{what}: it failed on the wire ({_failure(exchange)}) and no calls row of run {run_id} "
                        "holds it: the client's exception escaped unrecorded. Make the call inside "
                        "`with ctx.call(...)`, which records an exception as an ERROR call, or record it with "
                        f"ctx.record_call(..., error=...). {_RETRY_HINT} Unmatched calls nearest in time below.",
                        _nearest(free or calls, exchange),
                    )
                )
            else:
                found.append(
                    Violation(
                        "call-unrecorded",
                        f"{what}: no calls row of run {run_id} holds this request's body (nor, for a bodiless "
                        "request, its path): it was not recorded, or recorded without its body. Record every "
                        f"request through ctx.call(...) / ctx.record_call(request=<the full request>). {_RETRY_HINT} "
                        "Unmatched calls nearest in time below.",
                        _nearest(free or calls, exchange),
                    )
                )
            continue
        call = calls[match[i]]
        where = f"calls row (state_id {call.record.state_id}, call_index {call.record.call_index})"
        missing = []
        if i in path_only:
            missing.append("the request body that was sent (the row matched by its path only)")
        if s.response_missing(call):
            missing.append(f"the response body the server sent ({len(s.response)} B): {_preview(s.response)}")
        if missing:
            found.append(
                Violation(
                    "call-metadata-only",
                    f"{what}: its {where} does not contain "
                    + "; nor ".join(missing)
                    + ". Record the full request and response (the JSON, the text, or the bytes), not sizes, "
                    "hashes or a summary.",
                    [call.brief()],
                )
            )
        if exchange.failed and not s.agrees(call):
            found.append(
                Violation(
                    "call-error-unrecorded",
                    f"{what}: it failed on the wire ({_failure(exchange)}) but its {where} has status "
                    f"'{call.record.status}' and no error. Record a failure as an ERROR call with the error "
                    "filled in (ctx.call does so when the exception leaves its block; or pass error=... to "
                    "ctx.record_call)"
                    + (", or keep the garbled body as the response." if exchange.fault == "malformed" else "."),
                    [call.brief()],
                )
            )
        if not s.in_time(call):
            found.append(_outside_state(s, call, where, landscape))
    if orphans:
        found.append(
            Violation(
                "call-orphan",
                f"{len(orphans)} calls row(s) of run {run_id} whose state_id is no node_state of the run: record "
                "calls through the ctx of the operation that makes them, never under a made-up state_id.",
                [call.brief() for call in orphans],
            )
        )
    return WireMatch(
        found,
        {s.exchange.index: calls[match[i]].record if i in match else None for i, s in enumerate(sent)},
        {s.exchange.index: s.request_needle for s in sent},
    )


def wire_report(violations: list[Violation], run_id: str) -> str:
    """A readable account of the wire check's `violations`, in the sweep's format."""
    body = report(violations, run_id).split("\n", 1)[1:]
    return "\n".join([f"Wire check of run {run_id}: {len(violations)} violation(s)", *body])


def assert_wire_matches_calls(
    exchanges: Iterable[Exchange],
    landscape_or_url: Landscape | str,
    run_id: str,
    payload_dir: str | Path | None = None,
    secrets: Iterable[str] = (),
) -> None:
    """Raise AssertionError with a readable report when `compare_wire_with_calls` finds anything."""
    violations = compare_wire_with_calls(exchanges, landscape_or_url, run_id, payload_dir, secrets)
    if violations:
        raise AssertionError(wire_report(violations, run_id))


__all__ = [
    "Needle",
    "StoredBody",
    "Violation",
    "WireMatch",
    "assert_wire_matches_calls",
    "compare_wire_with_calls",
    "contains_body",
    "match_wire",
    "wire_report",
]
