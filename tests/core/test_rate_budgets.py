"""Rate budgets on a fake clock (time moves only when a caller sleeps), plus a few short real waits where
threads must really meet."""

from __future__ import annotations

import threading
import time

import pytest

from elspeth.rate_budgets import POLL_SECONDS, RateBudget, WaitInterrupted, budget_snapshots, shared_budget


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


def take(budget: RateBudget, clock: FakeClock, tokens: int = 1) -> float:
    """One request: the time it was let go at."""
    with budget.slot(clock.sleep, tokens) as permit:
        permit.succeeded()
        return clock.t


def test_requests_go_evenly_spaced_by_default():
    clock = FakeClock()
    budget = RateBudget("k", requests_per_minute=600, now=clock.now)
    assert [take(budget, clock) for _ in range(4)] == pytest.approx([0.0, 0.1, 0.2, 0.3], abs=0.001)


def test_requests_per_minute_lets_a_burst_go_then_spaces_the_rest():
    clock = FakeClock()
    budget = RateBudget("k", requests_per_minute=60, burst_seconds=10, now=clock.now)  # burst: 10
    times = [take(budget, clock) for _ in range(15)]
    assert times[:10] == [0.0] * 10
    assert times[10:] == pytest.approx([1.0, 2.0, 3.0, 4.0, 5.0], abs=0.01)
    assert budget.snapshot().granted == 15


def test_tokens_per_minute_weighs_each_request_by_its_tokens():
    clock = FakeClock()
    budget = RateBudget("k", tokens_per_minute=6000, burst_seconds=10, now=clock.now)  # 100 a second, burst 1000
    assert [take(budget, clock, 500) for _ in range(2)] == [0.0, 0.0]
    assert take(budget, clock, 500) == pytest.approx(5.0, abs=0.01)
    assert take(budget, clock, 100) == pytest.approx(6.0, abs=0.01)


def test_a_request_that_fits_one_limit_but_not_the_other_spends_neither():
    clock = FakeClock()
    budget = RateBudget("k", requests_per_minute=600, tokens_per_minute=600, burst_seconds=10, now=clock.now)
    assert take(budget, clock, 100) == 0.0
    # 50 tokens must wait 5 s for the token limit; the request limit is not charged while it waits.
    assert take(budget, clock, 50) == pytest.approx(5.0, abs=0.01)
    assert take(budget, clock, 1) == pytest.approx(5.1, abs=0.01)


def test_a_request_bigger_than_the_burst_waits_for_an_empty_bucket_and_goes():
    clock = FakeClock()
    budget = RateBudget("k", tokens_per_minute=600, burst_seconds=10, now=clock.now)  # burst 100
    assert take(budget, clock, 10) == 0.0
    assert take(budget, clock, 400) == pytest.approx(1.0, abs=0.01), "once the 10 tokens drained"
    # The 400 are owed until t=41; 1 more fits once no more than the burst (100, 10 s) is owed.
    assert take(budget, clock, 1) == pytest.approx(31.1, abs=0.01), "the 400 counted in full"
    assert take(budget, clock, 10**9) == pytest.approx(41.1, abs=0.01), "a minute's budget at most, once drained"


def test_a_429_pauses_every_caller_for_its_retry_after_and_halves_what_may_be_in_flight():
    clock = FakeClock()
    budget = RateBudget("k", now=clock.now)
    with budget.slot(clock.sleep) as a, budget.slot(clock.sleep), budget.slot(clock.sleep), budget.slot(clock.sleep):
        a.throttled(2.5)
        assert budget.snapshot().in_flight_cap == 2
    snap = budget.snapshot()
    assert (snap.throttled, snap.paused_for, snap.in_flight) == (1, 2.5, 0)
    assert take(budget, clock) == 2.5


def test_429s_of_one_round_halve_the_cap_once_and_successes_raise_it_step_by_step():
    clock = FakeClock()
    budget = RateBudget("k", now=clock.now)
    slots = [budget.slot(clock.sleep) for _ in range(8)]
    permits = [s.__enter__() for s in slots]
    for permit in permits:  # the same burst: 8 answers of 429 to requests sent before the first arrived
        permit.throttled(0)
    for s in slots:
        s.__exit__(None, None, None)
    assert budget.snapshot().in_flight_cap == 4 and budget.snapshot().throttled == 8

    caps = []
    for _ in range(12):
        take(budget, clock)
        caps.append(budget.snapshot().in_flight_cap)
    assert caps == [4, 4, 4, 4, 5, 5, 5, 5, 5, 6, 6, 6], "+1/cap a success: about one more per cap successes"
    for _ in range(40):
        take(budget, clock)
    assert budget.snapshot().in_flight_cap is None, "above anything ever in flight: no cap any more"


def test_the_cap_holds_callers_back_until_a_slot_is_free():
    budget = RateBudget("k")
    held = [budget.slot(time.sleep) for _ in range(2)]
    first = held[0].__enter__()
    held[1].__enter__()
    first.throttled(0)  # 2 in flight: the cap is 1, so nothing more goes until both are done
    let_go: list[float] = []

    def late() -> None:
        with budget.slot(time.sleep):
            let_go.append(time.monotonic())

    worker = threading.Thread(target=late)
    worker.start()
    time.sleep(0.1)
    assert let_go == [] and budget.snapshot().waiting == 1
    held[0].__exit__(None, None, None)
    time.sleep(0.1)
    assert let_go == [], "one still in flight, and the cap is 1"
    released = time.monotonic()
    held[1].__exit__(None, None, None)
    worker.join(2)
    assert let_go and let_go[0] - released < 10 * POLL_SECONDS


def test_a_wait_cut_short_raises_instead_of_sending():
    clock = FakeClock()
    budget = RateBudget("k", requests_per_minute=6, now=clock.now)
    take(budget, clock)
    with pytest.raises(WaitInterrupted, match="rate budget 'k'"), budget.slot(lambda _s: None):
        pytest.fail("the request went although the wait was cut short")
    snap = budget.snapshot()
    assert (snap.waiting, snap.in_flight, snap.granted) == (0, 0, 1)


def test_an_interruptible_real_sleep_stops_a_long_wait_at_once():
    stop = threading.Event()
    budget = RateBudget("k", requests_per_minute=1)
    with budget.slot(stop.wait):
        pass
    threading.Timer(0.05, stop.set).start()
    started = time.monotonic()
    with pytest.raises(WaitInterrupted), budget.slot(stop.wait):
        pass
    assert time.monotonic() - started < 1, "a 60 s wait ended when the stop was asked for"


def test_shared_budgets_are_one_per_key_and_take_the_tightest_limits():
    key = f"test|{id(object())}"
    a = shared_budget(key, requests_per_minute=100)
    b = shared_budget(key, requests_per_minute=50, tokens_per_minute=1000)
    c = shared_budget(key)
    assert a is b is c
    assert (a.requests_per_minute, a.tokens_per_minute) == (50, 1000)
    assert shared_budget(key + "-other") is not a
    assert [s.key for s in budget_snapshots() if s.key.startswith(key)] == [key, key + "-other"]


def test_many_threads_never_exceed_the_limit():
    budget = RateBudget("k", requests_per_minute=600, burst_seconds=0.5)  # 10/s, burst 5
    granted: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(3):
            with budget.slot(time.sleep) as permit:
                with lock:
                    granted.append(time.monotonic())
                permit.succeeded()

    threads = [threading.Thread(target=work) for _ in range(5)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(granted) == 15
    # 5 at once, then 10 more at 10 a second: about a second in all, never faster.
    assert time.monotonic() - started >= 0.95
    assert budget.snapshot().in_flight == 0 and budget.snapshot().waiting == 0


def test_limits_below_one_are_refused():
    with pytest.raises(ValueError, match="requests_per_minute must be at least 1"):
        RateBudget("k", requests_per_minute=0)
