"""The Azure OpenAI plugins' rate budgets, through the real SDK against the emulator (its own RPM/TPM limits
answer 429 as Azure does) and the fault proxy: a 429 is a recorded ERROR call, its Retry-After is waited out
by every request to the deployment, and it does not use up `max_attempts`; `requests_per_minute` keeps a
run under the deployment's quota."""

from __future__ import annotations

import threading
import time

import pytest

from elspeth.errors import ConfigError
from elspeth.plugins.azure.llm import AzureLLMConfig
from elspeth.plugins.azure.openai_calls import AzureOpenAIClient, estimate_tokens
from elspeth.rate_budgets import budget_snapshots
from elspeth.settings import structure
from elspeth_testkit import fault_proxy

from .conftest import API_KEY, CLASSIFY, rows


def llm(bench, concurrency=None, **options):
    """`concurrency`: rows in flight (the plugin's default, 16, when None). A timeout long enough that only
    the 429s these tests are about are retried, however loaded the machine."""
    node = {"plugin": "azure_llm", "options": bench.options(prompt=CLASSIFY, **{"timeout_seconds": 10, **options})}
    return node if concurrency is None else {**node, "concurrency": concurrency}


def budget_of(bench):
    key = f"{bench.endpoint.rstrip('/')}|gpt-4o-mini"
    return next(s for s in budget_snapshots() if s.key == key)


def chat_exchanges(bench):
    assert bench.proxy.wait_idle()
    return [e for e in bench.proxy.exchanges if e.path.endswith("/chat/completions")]


def test_a_429_is_an_error_call_and_its_retry_after_holds_back_the_next_request(bench):
    bench.proxy.script(fault_proxy.status(429, headers=(("retry-after-ms", "400"),)), path=r"/chat/completions", nth=2)
    summary = bench.run(bench.settings(rows(3), transforms=[llm(bench, concurrency=1)]))
    assert summary.status == "completed", summary.error
    assert [r["id"] for r in bench.lines("main")] == [0, 1, 2]
    calls = bench.calls(summary.run_id)
    assert [c["status"] for c in calls] == ["ok", "error", "ok", "ok"]
    assert "429" in calls[1]["error"]["message"]
    assert calls[1]["request"]["body"]["messages"], "the throttled attempt is recorded in full"
    wire = chat_exchanges(bench)
    assert [e.status for e in wire] == [200, 429, 200, 200]
    assert wire[2].started_at - wire[1].ended_at >= 0.38, "the Retry-After was waited out"
    assert budget_of(bench).throttled == 1
    bench.check(summary.run_id)


def test_with_rows_in_flight_a_retry_after_holds_back_every_request_to_the_deployment(bench):
    bench.emulator.latency_ms = 50
    bench.proxy.script(fault_proxy.status(429, headers=(("retry-after-ms", "400"),)), path=r"/chat/completions", nth=3)
    summary = bench.run(bench.settings(rows(24), transforms=[llm(bench, concurrency=4)]))
    assert summary.status == "completed", summary.error
    assert [r["id"] for r in bench.lines("main")] == list(range(24)) and bench.lines("errors") == []
    wire = chat_exchanges(bench)
    (throttled,) = [e for e in wire if e.status == 429]
    # Requests let go before the budget heard of the 429 (a few ms after it crossed the wire) still leave.
    after = [e.started_at - throttled.ended_at for e in wire if e.started_at > throttled.ended_at]
    assert not [t for t in after if 0.05 <= t < 0.38], "no request of any row went out during the pause"
    assert len([t for t in after if t < 0.05]) < 4 and len(after) > 20
    assert sorted(c["status"] for c in bench.calls(summary.run_id)) == ["error"] + ["ok"] * 24
    assert budget_of(bench).in_flight_cap in (None, 1, 2), "fewer in flight after the 429"
    bench.check(summary.run_id)


def test_429s_do_not_use_up_max_attempts_so_no_row_fails_while_the_quota_is_busy(bench):
    busy = fault_proxy.status(429, headers=(("retry-after-ms", "20"),))
    bench.proxy.script(busy, path=r"/chat/completions", first=7)
    summary = bench.run(bench.settings(rows(2), transforms=[llm(bench, max_attempts=2)]))
    assert summary.status == "completed", summary.error
    assert bench.lines("errors") == []
    assert [r["id"] for r in bench.lines("main")] == [0, 1]
    statuses = [c["status"] for c in bench.calls(summary.run_id)]
    assert sorted(statuses) == ["error"] * 7 + ["ok", "ok"], "7 throttled attempts, then both rows went through"
    states = bench.query("SELECT status FROM node_states WHERE run_id = :r", r=summary.run_id)
    assert "failed" not in [s["status"] for s in states], "the engine never had to retry the row"
    bench.check(summary.run_id)


def test_429s_that_last_beyond_max_throttled_seconds_count_as_failed_attempts(bench):
    bench.proxy.script(fault_proxy.status(429, headers=(("retry-after-ms", "30"),)), path=r"/chat/completions")
    started = time.monotonic()
    summary = bench.run(bench.settings(rows(1), transforms=[llm(bench, max_attempts=2, max_throttled_seconds=0.1)]))
    assert summary.status == "completed", summary.error
    assert time.monotonic() - started < 5
    errors = bench.lines("errors")
    assert [r["id"] for r in errors] == [0] and "HTTP 429" in errors[0]["_error"]
    failed = bench.query(
        "SELECT error_json FROM node_states WHERE run_id = :r AND status = 'failed' ORDER BY state_id",
        r=summary.run_id,
    )
    assert len(failed) == 2, "the engine's own retry of a retryable error, then the error sink"
    assert '"throttled"' in failed[0]["error_json"]
    bench.check(summary.run_id)


def test_without_a_budget_the_emulator_s_limit_answers_429s_and_no_row_is_lost(bench):
    bench.emulator.requests_per_minute, bench.emulator.rate_window_seconds = 600, 1.0  # 10 a second
    summary = bench.run(bench.settings(rows(30), transforms=[llm(bench, max_tokens=5)]))
    assert summary.status == "completed", summary.error
    assert [r["id"] for r in bench.lines("main")] == list(range(30)) and bench.lines("errors") == []
    assert bench.emulator.throttled > 0, "the run went faster than the deployment allows"
    calls = bench.calls(summary.run_id)
    assert [c["status"] for c in calls].count("error") == bench.emulator.throttled, "each 429 a recorded call"
    bench.check(summary.run_id)


def test_the_progress_reports_calls_in_flight_and_the_run_s_429s(bench, tmp_path):
    import attrs

    from elspeth.engine.orchestrator import run_pipeline
    from elspeth.engine.summary import Progress
    from elspeth.settings import Settings

    def run(count: int) -> list[Progress]:
        world = attrs.evolve(bench, root=tmp_path / f"run-{count}")
        seen: list[Progress] = []
        settings = world.settings(rows(count), transforms=[llm(world, concurrency=16)])
        summary = run_pipeline(
            structure(settings, Settings, where="$"),
            registry=world.registry,
            landscape_url=world.url,
            progress=seen.append,
        )
        assert summary.status == "completed", summary.error
        assert seen[-1].done and seen[-1].calls_in_flight == 0
        return seen

    # 64 rows of 300 ms, 16 at a time: over a second, the engine reporting every half second while it waits.
    bench.emulator.latency_ms = 300
    assert max(p.calls_in_flight for p in run(64)) > 1, "calls in flight were reported"
    assert bench.emulator.throttled == 0
    bench.emulator.latency_ms = 0
    bench.emulator.requests_per_minute, bench.emulator.rate_window_seconds = 600, 1.0  # 10 a second
    throttled_before = bench.emulator.throttled
    last = run(40)[-1]
    assert last.throttled == bench.emulator.throttled - throttled_before > 0, "the run's 429s, and only the run's"


def test_requests_per_minute_keeps_the_run_within_the_deployment_s_quota(bench):
    bench.emulator.requests_per_minute, bench.emulator.rate_window_seconds = 600, 1.0
    started = time.monotonic()
    # Under the quota (90%), as the docs advise: requests leave evenly spaced, but threads and the network
    # shift their arrival by some ms, which a fixed window (1 s here) at exactly the quota can catch.
    summary = bench.run(bench.settings(rows(30), transforms=[llm(bench, max_tokens=5, requests_per_minute=540)]))
    elapsed = time.monotonic() - started
    assert summary.status == "completed", summary.error
    assert [r["id"] for r in bench.lines("main")] == list(range(30))
    assert bench.emulator.throttled == 0 and bench.emulator.completed == 30
    assert elapsed >= 29 * 60 / 540, "9 a second, evenly spaced"
    assert budget_of(bench).granted == 30
    bench.check(summary.run_id)


def test_tokens_per_minute_weighs_each_request_by_its_prompt_and_max_tokens(bench):
    bench.emulator.tokens_per_minute = 6000
    started = time.monotonic()
    # ~25 prompt tokens + 75 max_tokens = ~100 a request; 6000 a minute is 100 a second.
    summary = bench.run(bench.settings(rows(4), transforms=[llm(bench, max_tokens=75, tokens_per_minute=5700)]))
    elapsed = time.monotonic() - started
    assert summary.status == "completed", summary.error
    assert bench.emulator.throttled == 0
    assert elapsed >= 2.5, "4 requests of ~100 tokens at 100 tokens a second"


def test_the_token_estimate_is_prompt_characters_over_4_plus_max_tokens():
    body = {"messages": [{"role": "system", "content": "x" * 10}, {"role": "user", "content": "y" * 31}]}
    assert estimate_tokens(body) == 11 + 1000
    assert estimate_tokens({**body, "max_tokens": 20}) == 11 + 20


def test_plugins_on_one_deployment_share_one_budget():
    base = {"endpoint": "https://shared.example", "deployment": "d", "api_key": API_KEY, "prompt": "p"}
    a = AzureOpenAIClient(structure({**base, "requests_per_minute": 100}, AzureLLMConfig, where="options"))
    b = AzureOpenAIClient(structure({**base, "endpoint": "https://shared.example/"}, AzureLLMConfig, where="o"))
    c = AzureOpenAIClient(structure({**base, "deployment": "e"}, AzureLLMConfig, where="options"))
    assert a.budget is b.budget and a.budget is not c.budget
    assert b.budget.requests_per_minute == 100


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"requests_per_minute": 0}, "option `requests_per_minute` must be a whole number of at least 1"),
        ({"tokens_per_minute": -5}, "option `tokens_per_minute` must be a whole number of at least 1"),
        ({"tokens_per_minute": 1.5}, "options.tokens_per_minute: expected an integer, got 1.5"),
        ({"max_throttled_seconds": 0}, "option `max_throttled_seconds` must be a number greater than 0"),
    ],
)
def test_budget_options_are_checked_with_messages_naming_them(options, message):
    base = {"endpoint": "https://r.openai.azure.com", "deployment": "d", "api_key": API_KEY, "prompt": "p"}
    with pytest.raises(ConfigError, match=message):
        structure({**base, **options}, AzureLLMConfig, where="options")


def test_ctrl_c_ends_a_retry_after_wait_at_once_and_resume_finishes_the_run(bench):
    from elspeth.engine.interrupts import StopRequest
    from elspeth.engine.orchestrator import run_pipeline
    from elspeth.settings import Settings

    # 5 s: long beside the stop's 0.2 s; short enough for the resume, in this process, to wait it out.
    bench.proxy.script(fault_proxy.status(429, retry_after=5), path=r"/chat/completions", nth=2)
    settings = bench.settings(rows(3), transforms=[llm(bench)])
    stop = StopRequest()
    stopped_at: list[float] = []
    stopped_wall: list[float] = []

    def ctrl_c_once_throttled() -> None:
        while not any(e.status == 429 for e in bench.proxy.exchanges):
            time.sleep(0.01)
        time.sleep(0.2)
        stopped_at.append(time.monotonic())
        stopped_wall.append(time.time())
        stop.request("SIGINT")

    threading.Thread(target=ctrl_c_once_throttled, daemon=True).start()
    summary = run_pipeline(
        structure(settings, Settings, where="$"), registry=bench.registry, landscape_url=bench.url, stop=stop
    )
    assert summary.status == "interrupted"
    assert time.monotonic() - stopped_at[0] < 1, "the 5 s Retry-After did not hold the stop up"
    assert "error" in [c["status"] for c in bench.calls(summary.run_id)]
    assert all(e.started_at < stopped_wall[0] for e in chat_exchanges(bench)), "nothing sent once stopping"

    resumed = bench.resume(summary.run_id, settings)
    assert resumed.status == "completed", resumed.error
    assert sorted(r["id"] for r in bench.lines("main")) == [0, 1, 2] and bench.lines("errors") == []
    bench.check(summary.run_id)
