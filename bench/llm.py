"""CSV -> `azure_llm` -> CSV against the Azure OpenAI emulator, fully audited: how many rows/s `concurrency:`
buys under a fixed model latency, the engine's CPU per call, and a run held to an RPM budget (issue 9).

    python bench/llm.py                                  # 2,000 rows x 4 levels at 200 ms, then 120 s at 1,200 RPM
    python bench/llm.py --rows 200 --levels 1,8 --seconds 30
    python bench/llm.py --json

The emulator runs in this process; each pipeline runs in a fresh subprocess, so the CPU seconds it reports
are the engine's, the plugin's and the SDK's alone (not the emulator's), without the interpreter's start
and the imports. A level's bound is what `concurrency` rows in flight could reach at that latency:
concurrency / latency rows/s.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from throughput import cpu_seconds

from elspeth_testkit.azure_openai_emulator import AzureOpenAIEmulator

DEPLOYMENT = "gpt-4o-mini"
PROMPT = "Classify the sentiment. Labels: positive, negative, neutral\nText: {{ text }}"


def prompt(text: str) -> str:
    """PROMPT rendered for one row, as the plugin renders it."""
    return PROMPT.replace("{{ text }}", text)


def text(i: int) -> str:
    return f"review number {i}: {'great' if i % 2 else 'awful'} product, would buy again"


def make_input(path: Path, rows: int) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text"])
        for i in range(rows):
            writer.writerow([i, text(i)])


def pipeline(
    src: Path, work: Path, endpoint: str, concurrency: int, echo: bool = False, client_rpm: int | None = None
) -> dict[str, Any]:
    """The plugin's own defaults for retries (3 attempts, a Retry-After honoured), as a user would run it;
    or `bench_echo` in its place. `client_rpm`: the plugin's own `requests_per_minute` budget."""
    llm: dict[str, Any] = {"endpoint": endpoint, "deployment": DEPLOYMENT, "api_key": "bench-key", "prompt": PROMPT}
    if client_rpm is not None:
        llm["requests_per_minute"] = client_rpm
    transform = {"plugin": "bench_echo"} if echo else {"plugin": "azure_llm", "options": llm}
    return {
        "source": {"plugin": "csv", "options": {"path": str(src)}},
        "transforms": [{**transform, "concurrency": concurrency}],
        "sinks": {
            name: {"plugin": "csv", "options": {"path": str(work / f"{name}.csv"), "if_exists": "overwrite"}}
            for name in ("out", "errors")
        },
        "default_sink": "out",
        "on_error": "errors",
        "landscape": {"payload_dir": str(work / "payloads")},
    }


def echo_transform(completion: dict[str, Any], latency: float) -> type:
    """`bench_echo`: records what azure_llm records per row (the same request, a completion captured from the
    emulator), waiting the latency on the engine's clock instead of asking: the engine's and the recording's
    cost per call alone, with no SDK and no HTTP."""
    from elspeth.api import Capability, Success, Transform

    class BenchEcho(Transform):
        name = "bench_echo"
        capabilities = frozenset({Capability.EXTERNAL_CALLS})

        def process(self, row: dict[str, Any], ctx: Any) -> Any:
            messages = [{"role": "user", "content": prompt(row["text"])}]
            request = {"operation": "chat.completions.create", "method": "POST", "url": "http://bench"}
            with ctx.call("llm", "bench", {**request, "body": {"model": DEPLOYMENT, "messages": messages}}) as call:
                ctx.clock.sleep(latency)
                call.response = completion
            return Success({**row, "llm_response": completion["choices"][0]["message"]["content"]})

    return BenchEcho


def child(spec_path: Path) -> None:
    """One run; stopped (interrupted, as by Ctrl-C) after `stop_after` seconds when the spec says."""
    import openai  # noqa: F401  # the plugin imports it on first use: not a cost of the calls

    from elspeth.engine.interrupts import StopRequest
    from elspeth.engine.orchestrator import run_pipeline
    from elspeth.hookspecs import hookimpl
    from elspeth.plugin_manager import PluginRegistry, make_plugin_manager
    from elspeth.plugins import builtin
    from elspeth.plugins.azure import plugin as azure
    from elspeth.settings import Settings, structure

    spec = json.loads(spec_path.read_text())
    echo = echo_transform(spec["completion"], spec["latency_ms"] / 1000)

    class Echo:
        @hookimpl
        def register_transforms(self, register: Any) -> None:
            register(echo)

    # Not the entry points: the plugins of whatever elspeth is installed must not stand in for these.
    registry = PluginRegistry(make_plugin_manager(extra_plugins=[builtin, azure, Echo()], load_entry_points=False))
    settings = structure(spec["pipeline"], Settings, where="bench")
    stop = StopRequest()
    if spec["stop_after"] is not None:
        timer = threading.Timer(spec["stop_after"], stop.request, args=("bench time limit",))
        timer.daemon = True
        timer.start()
    started, cpu = time.perf_counter(), cpu_seconds()
    summary = run_pipeline(settings, registry=registry, landscape_url=spec["landscape_url"], stop=stop)
    elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    print(
        json.dumps(
            {
                "run_id": summary.run_id,
                "status": summary.status,
                "seconds": elapsed,
                "cpu_seconds": cpu,
                "outcomes": summary.outcomes,
            }
        )
    )


def sdk_child(spec_path: Path) -> None:
    """The same requests through the same SDK client, `concurrency` threads, no engine: the SDK's own CPU
    per call, which the engine's is the rest of."""
    from concurrent.futures import ThreadPoolExecutor

    import openai

    spec = json.loads(spec_path.read_text())
    client = openai.AzureOpenAI(
        azure_endpoint=spec["endpoint"], api_key="bench-key", api_version="2024-10-21", max_retries=0
    )
    prompts = [prompt(row_text) for row_text in spec["texts"]]

    def ask(content: str) -> None:
        completion = client.chat.completions.create(model=DEPLOYMENT, messages=[{"role": "user", "content": content}])
        completion.model_dump(mode="json")  # the plugin records the completion as this

    started, cpu = time.perf_counter(), cpu_seconds()
    with ThreadPoolExecutor(spec["concurrency"]) as pool:
        list(pool.map(ask, prompts))
    print(json.dumps({"seconds": time.perf_counter() - started, "cpu_seconds": cpu_seconds() - cpu}))


def calls(db: Path, run_id: str) -> dict[str, int]:
    """The run's recorded calls by status, and the errors that were a 429, read from the Landscape read-only."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        by_status = dict(conn.execute("SELECT status, count(*) FROM calls WHERE run_id = ? GROUP BY status", (run_id,)))
        (throttled,) = conn.execute(
            # The SDK raises RateLimitError for an HTTP 429 and for nothing else.
            "SELECT count(*) FROM calls WHERE run_id = ? AND status = 'error'"
            " AND json_extract(error_json, '$.type') = 'RateLimitError'",
            (run_id,),
        ).fetchone()
    finally:
        conn.close()
    return {
        "calls": sum(by_status.values()),
        "ok": by_status.get("ok", 0),
        "error": by_status.get("error", 0),
        "429": throttled,
    }


def measure(
    root: Path,
    name: str,
    rows: int,
    concurrency: int,
    emulator: AzureOpenAIEmulator,
    stop_after: float | None,
    echo: bool = False,
    client_rpm: int | None = None,
) -> dict[str, Any]:
    """One pipeline run in a subprocess against `emulator`: its times, its recorded calls, the emulator's counts."""
    work = root / name
    work.mkdir()
    src = work / "input.csv"
    make_input(src, rows)
    db = work / "landscape.db"
    spec = {
        "pipeline": pipeline(src, work, emulator.url, concurrency, echo, client_rpm),
        "landscape_url": f"sqlite:///{db}",
        "stop_after": stop_after,
        "completion": captured_completion(emulator),
        "latency_ms": emulator.latency_ms,
    }
    spec_path = work / "spec.json"
    spec_path.write_text(json.dumps(spec))
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(spec_path)], check=True, capture_output=True, text=True
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    recorded = calls(db, result["run_id"])
    return {
        "rows": rows,
        "concurrency": concurrency,
        **result,
        "recorded_calls": recorded,
        "cpu_ms_per_call": 1000 * result["cpu_seconds"] / max(recorded["calls"], 1),
        "emulator": {
            "completed": emulator.completed,
            "throttled": emulator.throttled,
            "peak_in_flight": emulator.peak_in_flight,
        },
    }


def captured_completion(emulator: AzureOpenAIEmulator) -> dict[str, Any]:
    """One completion as the plugin records it (`model_dump`), for `bench_echo` to record in its stead."""
    import openai

    client = openai.AzureOpenAI(azure_endpoint=emulator.url, api_key="bench-key", api_version="2024-10-21")
    completion = client.chat.completions.create(
        model=DEPLOYMENT, messages=[{"role": "user", "content": prompt(text(0))}]
    )
    client.close()
    return completion.model_dump(mode="json")


def sdk_alone(root: Path, rows: int, concurrency: int, emulator: AzureOpenAIEmulator) -> float:
    """CPU ms per call of the SDK alone, for the same rows at the same concurrency."""
    spec_path = root / f"sdk-{concurrency}.json"
    texts = [text(i) for i in range(rows)]
    spec_path.write_text(json.dumps({"endpoint": emulator.url, "concurrency": concurrency, "texts": texts}))
    out = subprocess.run(
        [sys.executable, __file__, "--sdk-child", str(spec_path)], check=True, capture_output=True, text=True
    )
    return 1000 * float(json.loads(out.stdout.strip().splitlines()[-1])["cpu_seconds"]) / rows


def level(root: Path, rows: int, concurrency: int, latency_ms: float) -> dict[str, Any]:
    with AzureOpenAIEmulator(latency_ms=latency_ms) as emulator:
        result = measure(root, f"level-{concurrency}", rows, concurrency, emulator, None)
        result["sdk_cpu_ms_per_call"] = sdk_alone(root, rows, concurrency, emulator)
        echo = measure(root, f"echo-{concurrency}", rows, concurrency, emulator, None, echo=True)
    result["engine_cpu_ms_per_call"] = echo["cpu_ms_per_call"]
    result["engine_only_rows_per_second"] = echo["outcomes"].get("completed", 0) / echo["seconds"]
    done = result["outcomes"].get("completed", 0)
    result["rows_per_second"] = done / result["seconds"]
    result["bound_rows_per_second"] = concurrency * 1000 / latency_ms
    result["ratio"] = result["rows_per_second"] / result["bound_rows_per_second"]
    return result


def rate_limited(
    root: Path, rpm: int, seconds: float, concurrency: int, latency_ms: float, client_rpm: int | None
) -> dict[str, Any]:
    """Twice the rows the budget admits in `seconds`, so the source outlasts the run; stopped at `seconds`."""
    rows = max(2 * math.ceil(rpm * seconds / 60), 10)
    with AzureOpenAIEmulator(latency_ms=latency_ms, requests_per_minute=rpm) as emulator:
        result = measure(root, "rate-limit", rows, concurrency, emulator, seconds, client_rpm=client_rpm)
        window = emulator.rate_window_seconds
    admitted = result["emulator"]["completed"]
    result["rpm_budget"] = rpm
    result["client_rpm"] = client_rpm
    result["rate_window_seconds"] = window
    result["sustained_requests_per_minute"] = admitted * 60 / result["seconds"]
    return result


def show(levels: list[dict[str, Any]], limited: dict[str, Any] | None, latency_ms: float) -> None:
    if levels:
        rows = levels[0]["rows"]
        print(f"azure_llm, {rows:,} rows, emulator latency {latency_ms:g} ms, full audit; cores: {os.cpu_count()}")
        print(
            f"  {'concurrency':>11} {'wall s':>8} {'rows/s':>8} {'bound':>8} {'ratio':>6} {'peak in flight':>15}"
            f" {'CPU s':>7} {'CPU ms/call':>12} {'SDK alone':>10} {'engine':>7} {'failed':>7} {'echo rows/s':>12}"
        )
        for r in levels:
            print(
                f"  {r['concurrency']:>11} {r['seconds']:8.2f} {r['rows_per_second']:8.1f} "
                f"{r['bound_rows_per_second']:8.1f} {r['ratio']:5.2f}x {r['emulator']['peak_in_flight']:>15} "
                f"{r['cpu_seconds']:7.2f} {r['cpu_ms_per_call']:12.2f} {r['sdk_cpu_ms_per_call']:10.2f} "
                f"{r['engine_cpu_ms_per_call']:7.2f} {r['outcomes'].get('failed', 0):>7} "
                f"{r['engine_only_rows_per_second']:12.1f}"
            )
        print(
            "  CPU ms/call: the whole pipeline process per recorded call; SDK alone: the same requests through "
            "the same client\n  and threads, no engine; engine: the same pipeline with `bench_echo` in place of "
            "azure_llm (the same request and\n  completion recorded, the latency waited on the engine's clock, "
            "no SDK, no HTTP), CPU ms per call, and its rows/s (echo rows/s)"
        )
    if limited is not None:
        r, recorded = limited, limited["recorded_calls"]
        print(
            f"rate limit: {r['rpm_budget']:,} RPM (checked per {r['rate_window_seconds']:g} s window), "
            f"plugin's requests_per_minute {r['client_rpm'] or 'unset'}, "
            f"concurrency {r['concurrency']}, latency {latency_ms:g} ms, stopped after {r['seconds']:.1f} s "
            f"({r['status']})"
        )
        sustained = r["sustained_requests_per_minute"]
        print(
            f"  sustained {sustained:,.0f} requests/min admitted ({sustained / r['rpm_budget']:.2f}x the budget); "
            f"429s answered: {r['emulator']['throttled']:,}"
        )
        print(
            f"  Landscape: {recorded['calls']:,} calls, {recorded['ok']:,} ok, {recorded['error']:,} error "
            f"({recorded['429']:,} of them HTTP 429); rows completed {r['outcomes'].get('completed', 0):,}, "
            f"failed {r['outcomes'].get('failed', 0):,} (of {r['rows']:,} in the source)"
        )
        print(f"  engine CPU {r['cpu_seconds']:.2f} s, {r['cpu_ms_per_call']:.2f} ms per recorded call")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2000, help="rows of each concurrency level")
    parser.add_argument("--latency-ms", type=float, default=200.0, help="the emulator's answer delay")
    parser.add_argument("--levels", default="1,8,32,64", help="comma-separated concurrency levels")
    parser.add_argument("--rpm", type=int, default=1200, help="the rate-limited run's requests-per-minute budget")
    parser.add_argument("--seconds", type=float, default=120.0, help="the rate-limited run's length (0: skip it)")
    parser.add_argument(
        "--rate-concurrency", type=int, help="concurrency of the rate-limited run (default: the highest level)"
    )
    parser.add_argument(
        "--client-rpm",
        type=int,
        help="the plugin's own requests_per_minute in the rate-limited run (default: none, 429s and back-off only)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON, not a table")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--sdk-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child))
        return
    if args.sdk_child:
        sdk_child(Path(args.sdk_child))
        return
    if args.latency_ms <= 0:
        parser.error("--latency-ms must be more than 0: the bound of a level is concurrency / latency")
    concurrencies = [int(n) for n in args.levels.split(",") if n]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        levels = [level(root, args.rows, n, args.latency_ms) for n in concurrencies]
        limited = None
        if args.seconds > 0:
            concurrency = args.rate_concurrency or max(concurrencies, default=1)
            limited = rate_limited(root, args.rpm, args.seconds, concurrency, args.latency_ms, args.client_rpm)
    if args.json:
        print(json.dumps({"latency_ms": args.latency_ms, "levels": levels, "rate_limit": limited}, indent=2))
    else:
        show(levels, limited, args.latency_ms)


if __name__ == "__main__":
    main()
