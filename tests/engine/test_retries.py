"""The one retry loop: its policy, the Retry-After reading every plugin shares, and (through a real run into
a real Landscape) every attempt recorded as a call under the row's state."""

from __future__ import annotations

import email.utils
import json
from typing import Any

import pytest
from attrs import define, field

from elspeth.errors import ConfigError, ServiceUnreachable
from elspeth.retries import MAX_THROTTLED, NOT_RETRIED, RetryPolicy, Tries, Verdict, retry, retry_after

from .sample_plugins import FakeClock

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": " 2.5 "}, 2.5),
        ({"RETRY-AFTER": "3"}, 3.0),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after-ms": "soon", "retry-after": "9"}, 9.0),
        ({"Retry-After": email.utils.formatdate(NOW + 30, usegmt=True)}, 30.0),
        ({"Retry-After": email.utils.formatdate(NOW - 30, usegmt=True)}, 0.0),
        ({"Retry-After": b"4"}, 4.0),
        ({"Retry-After": "-1"}, None),
        ({"Retry-After": "nan"}, None),
        ({"Retry-After": "whenever"}, None),
        ({}, None),
        (None, None),
    ],
)
def test_retry_after_reads_milliseconds_seconds_and_http_dates(headers: Any, seconds: float | None) -> None:
    assert retry_after(headers, NOW) == seconds


def test_the_wait_doubles_unless_the_service_said_and_never_exceeds_the_cap() -> None:
    policy = RetryPolicy(backoff_seconds=1.0, max_wait_seconds=5.0)
    assert [policy.wait(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]
    assert policy.wait(3, retry_after=0.5) == 0.5
    assert policy.wait(1, retry_after=600) == 5.0


@pytest.mark.parametrize("bad", [{"max_attempts": 0}, {"backoff_seconds": -1}, {"max_wait_seconds": -0.5}])
def test_a_policy_that_cannot_work_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=next(iter(bad))):
        RetryPolicy(**bad)


class Clock(FakeClock):
    """Its sleeps pass at once and are kept, so the waits the loop chose can be read."""

    def __init__(self) -> None:
        super().__init__()
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        super().sleep(seconds)


@define
class Ctx:
    clock: Clock = field(factory=Clock)


class Busy(Exception):
    pass


def _failing(times: int, exc: Exception) -> tuple[list[int], Any]:
    seen: list[int] = []

    def attempt(tries: Tries) -> str:
        seen.append(tries.attempt)
        if len(seen) <= times:
            raise exc
        return "answer"

    return seen, attempt


def test_retries_until_an_answer_waiting_as_the_policy_says() -> None:
    ctx = Ctx()
    seen, attempt = _failing(2, Busy())
    policy = RetryPolicy(max_attempts=3, backoff_seconds=0.5)
    assert retry(ctx, policy, attempt, lambda exc: Verdict(retry=True)) == "answer"  # type: ignore[arg-type]
    assert seen == [1, 2, 3] and ctx.clock.slept == [0.5, 1.0]


def test_gives_up_after_max_attempts_and_at_once_on_what_is_not_worth_retrying() -> None:
    ctx = Ctx()
    seen, attempt = _failing(5, Busy())
    with pytest.raises(Busy):
        retry(ctx, RetryPolicy(max_attempts=3, backoff_seconds=0), attempt, lambda exc: Verdict(retry=True))  # type: ignore[arg-type]
    assert seen == [1, 2, 3]
    seen, attempt = _failing(5, Busy())
    with pytest.raises(Busy):
        retry(ctx, RetryPolicy(max_attempts=3), attempt, lambda exc: NOT_RETRIED)  # type: ignore[arg-type]
    assert seen == [1]


def test_a_service_never_reached_stops_the_run_rather_than_fail_the_row() -> None:
    _, attempt = _failing(5, ConnectionRefusedError("refused"))
    with pytest.raises(ServiceUnreachable, match=r"refused \(2 attempts\)"):
        retry(
            Ctx(),  # type: ignore[arg-type]
            RetryPolicy(max_attempts=2, backoff_seconds=0),
            attempt,
            lambda exc: Verdict(retry=True, unreachable=True),
            service="http://127.0.0.1:9",
        )


def test_429s_are_waited_out_without_using_attempts_for_as_long_as_the_policy_allows() -> None:
    ctx = Ctx()
    seen, attempt = _failing(4, Busy())
    policy = RetryPolicy(max_attempts=2, backoff_seconds=0, max_throttled_seconds=60)
    throttled = Verdict(retry=True, retry_after=10, throttled=True)
    assert retry(ctx, policy, attempt, lambda exc: throttled) == "answer"  # type: ignore[arg-type]
    assert seen == [1, 1, 1, 1, 1], "a 429 waited out is not an attempt"
    assert ctx.clock.slept == [10, 10, 10, 10]

    # After 60 s of them, 429s count again: two attempts, then the 429 is the answer.
    ctx = Ctx()
    seen, attempt = _failing(100, Busy())
    with pytest.raises(Busy):
        retry(ctx, policy, attempt, lambda exc: throttled)  # type: ignore[arg-type]
    assert ctx.clock.t >= 60 and seen[-2:] == [1, 2]

    # Retry-After: 0 for ever is bounded by a count, not only by the time.
    ctx = Ctx()
    seen, attempt = _failing(10_000, Busy())
    with pytest.raises(Busy):
        retry(ctx, policy, attempt, lambda exc: Verdict(retry=True, retry_after=0, throttled=True))  # type: ignore[arg-type]
    assert len(seen) == MAX_THROTTLED - 1 + 2


def test_a_paced_failure_is_not_waited_for_twice() -> None:
    ctx = Ctx()
    _, attempt = _failing(1, Busy())
    retry(ctx, RetryPolicy(backoff_seconds=3), attempt, lambda exc: Verdict(retry=True, paced=True))  # type: ignore[arg-type]
    assert ctx.clock.slept == []


def test_every_attempt_is_a_call_recorded_under_the_rows_state(world) -> None:  # type: ignore[no-untyped-def]
    w = world("w")
    settings = w.settings(
        source={"plugin": "test_numbers", "options": {"count": 4}},
        transforms=[{"plugin": "test_retrier", "options": {"failures": 2, "max_attempts": 3}}],
    )
    summary = w.run(settings)
    assert summary.status == "completed", summary.error
    calls = w.query(
        "SELECT s.token_id, c.call_index, c.status, c.request_json, c.response_json, c.error_json FROM calls c "
        "JOIN node_states s ON s.run_id = c.run_id AND s.state_id = c.state_id WHERE c.run_id = :run "
        "ORDER BY s.token_id, c.call_index",
        run=summary.run_id,
    )
    tokens = sorted({c["token_id"] for c in calls})
    assert len(tokens) == 4
    for token in tokens:
        mine = [c for c in calls if c["token_id"] == token]
        assert [(c["call_index"], c["status"]) for c in mine] == [(0, "error"), (1, "error"), (2, "ok")]
        assert "HTTP 503 on attempt 1" in mine[0]["error_json"] and mine[2]["error_json"] is None
        assert len({c["request_json"] for c in mine}) == 1, "every attempt records the request it sent"
        assert json.loads(mine[2]["response_json"])["answer"] % 2 == 0
    w.assert_clean(summary.run_id)


def test_attempts_used_up_leave_the_row_failed_with_each_attempt_on_record(world) -> None:  # type: ignore[no-untyped-def]
    w = world("w")
    settings = w.settings(
        source={"plugin": "test_numbers", "options": {"count": 2}},
        transforms=[{"plugin": "test_retrier", "options": {"failures": 5, "max_attempts": 3}}],
    )
    summary = w.run(settings)
    assert summary.status == "completed", summary.error
    statuses = w.query("SELECT status FROM calls WHERE run_id = :run", run=summary.run_id)
    assert [s["status"] for s in statuses] == ["error"] * 6
    outcomes = w.query("SELECT outcome FROM token_outcomes WHERE run_id = :run", run=summary.run_id)
    assert [o["outcome"] for o in outcomes] == ["failed", "failed"]
    w.assert_clean(summary.run_id)
