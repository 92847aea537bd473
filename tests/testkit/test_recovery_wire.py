"""The rules of the recovery wire check that need no run: which exchanges of a killed attempt the kill may
have cut off, and when two submissions carry the same body. The whole check runs in
test_kit_pending_jobs.py, over the kit's recovery scenarios."""

from __future__ import annotations

import json

import pytest

from elspeth_testkit.fault_proxy import Exchange
from elspeth_testkit.recovery_wire import RECORD_GRACE, KilledRun, _same_body
from elspeth_testkit.wire_check import Needle

LAST_RECORD = 150.0
UNFINISHED_SINCE = 140.0
KILLED = KilledRun(
    run_id="r",
    started_at=100.0,
    read_at=200.0,
    last_record=LAST_RECORD,
    open_since=(UNFINISHED_SINCE,),
    last_state_id=9,
    pending=(),
)


def _exchange(started: float, ended: float) -> Exchange:
    return Exchange(0, "POST", "/jobs", "", (), b'{"rows": []}', 201, (), b"{}", None, started, ended)


@pytest.mark.parametrize(
    ("started", "ended", "cut_off"),
    [
        pytest.param(149.0, LAST_RECORD + 0.5, True, id="answered-after-the-last-durable-record"),
        pytest.param(146.0, LAST_RECORD - 1.0, True, id="unfinished-work-answered-just-before"),
        pytest.param(141.0, LAST_RECORD - RECORD_GRACE - 1.0, False, id="unfinished-work-answered-long-before"),
        pytest.param(130.0, LAST_RECORD - 1.0, False, id="finished-work-answered-just-before"),
        pytest.param(201.0, 202.0, False, id="the-resumed-attempt"),
    ],
)
def test_an_unrecorded_exchange_of_the_killed_attempt_is_excused_only_if_the_kill_may_have_cut_it_off(
    started: float, ended: float, cut_off: bool
) -> None:
    assert KILLED.cut_off(_exchange(started, ended)) is cut_off


def _multipart(boundary: str, document: dict) -> tuple[bytes, str]:
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="in.jsonl"\r\n'
        f"Content-Type: application/jsonl\r\n\r\n{json.dumps(document)}\n\r\n--{boundary}--\r\n"
    )
    return body.encode(), f"multipart/form-data; boundary={boundary}"


def test_a_multipart_submission_sent_again_is_the_same_body_whatever_its_boundary() -> None:
    first = Needle.of(*_multipart("aaa111", {"custom_id": "row-0", "body": {"n": 1}}))
    again = Needle.of(*_multipart("bbb222", {"custom_id": "row-0", "body": {"n": 1}}))
    other = Needle.of(*_multipart("ccc333", {"custom_id": "row-1", "body": {"n": 2}}))
    assert _same_body(first, again)
    assert not _same_body(first, other)


def test_json_key_order_does_not_make_another_body() -> None:
    assert _same_body(Needle.of(b'{"rows": [1, 2], "op": "submit"}'), Needle.of(b'{"op":"submit","rows":[1,2]}'))
    assert not _same_body(Needle.of(b'{"op": "submit"}'), Needle.of(b'{"op": "status"}'))
    assert not _same_body(Needle.of(b'{"op": "submit"}'), None)
