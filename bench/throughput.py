"""CSV -> passthrough -> CSV: the fully audited engine against the same plugins with no audit, and against a
plain `csv` read/write loop, in one run (the ratios are what to trust on a noisy machine).

    python bench/throughput.py                 # 100,000 rows
    python bench/throughput.py --rows 20000 --memory 20000,100000,400000

Each measurement runs in a fresh subprocess so peak RSS is its own.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIELDS = ["id", "name", "email", "amount", "city", "note"]


def make_input(path: Path, rows: int) -> None:
    """About 100 bytes a row, like the earlier system's measurement."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(FIELDS)
        for i in range(rows):
            writer.writerow(
                [i, f"Customer {i:07d}", f"user{i}@example.com", f"{i * 1.37:.2f}", "Springfield", "ordinary row"]
            )


def plain_loop(src: Path, dst: Path) -> None:
    with src.open(newline="") as fh, dst.open("w", newline="") as out:
        reader = csv.DictReader(fh)
        writer = csv.DictWriter(out, fieldnames=FIELDS)
        writer.writeheader()
        for row in reader:
            writer.writerow(row)


def plugins_only(src: Path, dst: Path) -> None:
    """The same plugin instances the engine runs, driven by a bare loop: no Landscape, no hashing."""
    from elspeth.plugins.csv_files import CsvSink, CsvSinkConfig, CsvSource, CsvSourceConfig
    from elspeth.plugins.passthrough import Passthrough

    class Ctx:
        run_id, node_id, state_id, checkpoint = "bench", "bench", 0, None

    ctx = Ctx()
    source = CsvSource(CsvSourceConfig(path=str(src)))
    transform = Passthrough(None)
    sink = CsvSink(CsvSinkConfig(path=str(dst), if_exists="overwrite"))
    sink.open(ctx, None)
    batch = []
    for row in source.load(ctx):
        batch.append(transform.process(row, ctx).rows[0])
        if len(batch) >= 1000:
            sink.write(batch, ctx)
            batch = []
    sink.write(batch, ctx)
    sink.flush(ctx)
    sink.close()


def audited(src: Path, dst: Path, work: Path) -> dict[str, object]:
    from elspeth.engine.orchestrator import run_pipeline
    from elspeth.plugin_manager import PluginRegistry, make_plugin_manager
    from elspeth.settings import Settings, structure

    settings = structure(
        {
            "source": {"plugin": "csv", "options": {"path": str(src)}},
            "transforms": [{"plugin": "passthrough"}],
            "sinks": {"out": {"plugin": "csv", "options": {"path": str(dst), "if_exists": "overwrite"}}},
        },
        Settings,
        where="bench",
    )
    db = work / "landscape.db"
    summary = run_pipeline(settings, registry=PluginRegistry(make_plugin_manager()), landscape_url=f"sqlite:///{db}")
    assert summary.status == "completed", summary
    audit_bytes = sum(p.stat().st_size for p in work.iterdir() if p.name.startswith("landscape.db"))
    return {"audit_bytes": audit_bytes}


def child(mode: str, src: Path, work: Path) -> None:
    dst = work / f"out-{mode}.csv"
    started = time.perf_counter()
    extra: dict[str, object] = {}
    if mode == "plain":
        plain_loop(src, dst)
    elif mode == "plugins":
        plugins_only(src, dst)
    else:
        extra = audited(src, dst, work)
    elapsed = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"mode": mode, "seconds": elapsed, "peak_rss_mib": peak_kib / 1024, **extra}))


def measure(mode: str, src: Path, work: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--input", str(src), "--work", str(work)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--memory", help="comma-separated row counts: peak RSS of the audited run at each")
    parser.add_argument("--child")
    parser.add_argument("--input")
    parser.add_argument("--work")
    args = parser.parse_args()
    if args.child:
        child(args.child, Path(args.input), Path(args.work))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        src = root / "input.csv"
        make_input(src, args.rows)
        row_bytes = src.stat().st_size / args.rows
        results = {}
        for mode in ("plain", "plugins", "audited"):
            work = root / mode
            work.mkdir()
            results[mode] = measure(mode, src, work)
        audited_s = results["audited"]["seconds"]
        print(f"rows: {args.rows:,}  input: {row_bytes:.0f} bytes/row  cores: {os.cpu_count()}")
        for mode, label in (
            ("plain", "plain csv loop"),
            ("plugins", "same plugins, no audit"),
            ("audited", "elspeth, full audit"),
        ):
            r = results[mode]
            print(
                f"  {label:<24} {r['seconds']:7.2f} s  {args.rows / r['seconds']:>10,.0f} rows/s  "
                f"peak RSS {r['peak_rss_mib']:6.1f} MiB"
            )
        print(f"  audited / no-audit plugins: {audited_s / results['plugins']['seconds']:.2f}x")
        print(f"  audited / plain csv loop:   {audited_s / results['plain']['seconds']:.2f}x")
        print(f"  audit written: {results['audited']['audit_bytes'] / args.rows:.0f} bytes per row")
        if args.memory:
            print("peak RSS of the audited run by input size:")
            for n in (int(x) for x in args.memory.split(",")):
                sized = root / f"input-{n}.csv"
                make_input(sized, n)
                work = root / f"mem-{n}"
                work.mkdir()
                r = measure("audited", sized, work)
                print(f"  {n:>9,} rows  {r['seconds']:7.2f} s  peak RSS {r['peak_rss_mib']:6.1f} MiB")


if __name__ == "__main__":
    main()
