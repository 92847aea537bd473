"""CSV -> passthrough -> CSV: the fully audited engine against the same plugins with no audit, and against a
plain `csv` read/write loop, in one run (the ratios are what to trust on a noisy machine).

    python bench/throughput.py                 # 100,000 rows
    python bench/throughput.py --rows 20000 --memory 20000,100000,400000
    python bench/throughput.py --index-cost ix_tokens_row,ix_tokens_parent --repeat 3

Each measurement runs in a fresh subprocess so peak RSS is its own.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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
    return run_audited(
        {
            "source": {"plugin": "csv", "options": {"path": str(src)}},
            "transforms": [{"plugin": "passthrough"}],
            "sinks": {"out": {"plugin": "csv", "options": {"path": str(dst), "if_exists": "overwrite"}}},
        },
        work,
    )


def run_audited(pipeline: dict[str, object], work: Path) -> dict[str, object]:
    """One run of `pipeline` with a SQLite Landscape in `work`; the size of its audit, closed."""
    from elspeth.engine.orchestrator import run_pipeline
    from elspeth.plugin_manager import PluginRegistry, make_plugin_manager
    from elspeth.settings import Settings, structure

    settings = structure(pipeline, Settings, where="bench")
    db = work / "landscape.db"
    summary = run_pipeline(settings, registry=PluginRegistry(make_plugin_manager()), landscape_url=f"sqlite:///{db}")
    assert summary.status == "completed", summary
    return {"audit_bytes": closed_size(db)}


def closed_size(db: Path) -> int:
    """The Landscape's size as it stands closed on disk: its write-ahead log folded into the file first."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return sum(p.stat().st_size for p in db.parent.iterdir() if p.name.startswith(db.name))


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def drop_indexes(names: list[str]) -> None:
    """Build the Landscape without these indexes (to measure what each costs)."""
    from elspeth.landscape import schema

    for name in names:
        table, index = next((t, i) for t in schema.metadata.tables.values() for i in t.indexes if i.name == name)
        table.indexes.discard(index)


def child(mode: str, src: Path, work: Path, drop: list[str]) -> None:
    """One measurement; wall and CPU time exclude the interpreter's start and the imports."""
    if mode == "plugins":
        import elspeth.plugins.csv_files
        import elspeth.plugins.passthrough
    elif mode == "audited":
        import elspeth.engine.orchestrator  # noqa: F401

        drop_indexes(drop)
    dst = work / f"out-{mode}.csv"
    started, cpu = time.perf_counter(), cpu_seconds()
    extra: dict[str, object] = {}
    if mode == "plain":
        plain_loop(src, dst)
    elif mode == "plugins":
        plugins_only(src, dst)
    else:
        extra = audited(src, dst, work)
    elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"mode": mode, "seconds": elapsed, "cpu_seconds": cpu, "peak_rss_mib": peak_mib, **extra}))


def measure(mode: str, src: Path, work: Path, drop: tuple[str, ...] = ()) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", mode, "--input", str(src), "--work", str(work)]
    out = subprocess.run([*command, "--drop-index", ",".join(drop)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def index_cost(
    what: str,
    run: Callable[[Path, tuple[str, ...]], dict[str, float]],
    root: Path,
    rows: int,
    names: list[str],
    repeat: int,
) -> None:
    """`run(work, indexes_to_drop)` with every index, and without each of `names`, interleaved `repeat` times."""
    variants: dict[str, tuple[str, ...]] = {"all indexes": ()} | {f"without {n}": (n,) for n in names}
    cpu: dict[str, list[float]] = {label: [] for label in variants}
    wall: dict[str, list[float]] = {label: [] for label in variants}
    for round_ in range(repeat):
        for k, (label, drop) in enumerate(variants.items()):
            work = root / f"index-{round_}-{k}"
            work.mkdir()
            r = run(work, drop)
            cpu[label].append(r["cpu_seconds"])
            wall[label].append(r["seconds"])
    print(f"index cost, {what}, {rows:,} rows, median of {repeat} interleaved runs:")
    base = statistics.median(cpu["all indexes"])
    for label in variants:
        c, w = statistics.median(cpu[label]), statistics.median(wall[label])
        print(
            f"  {label:<32} CPU {c:6.2f} s {rows / c:>8,.0f} rows/CPU-s  wall {w:6.2f} s  "
            f"all indexes / this: {base / c:.3f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--memory", help="comma-separated row counts: peak RSS of the audited run at each")
    parser.add_argument("--index-cost", help="comma-separated index names: the audited run without each")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of --index-cost")
    parser.add_argument("--child")
    parser.add_argument("--drop-index", default="")
    parser.add_argument("--input")
    parser.add_argument("--work")
    args = parser.parse_args()
    if args.child:
        child(args.child, Path(args.input), Path(args.work), [n for n in args.drop_index.split(",") if n])
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        src = root / "input.csv"
        make_input(src, args.rows)
        row_bytes = src.stat().st_size / args.rows
        if args.index_cost:
            names = args.index_cost.split(",")
            index_cost(
                "audited passthrough",
                lambda work, drop: measure("audited", src, work, drop),
                root,
                args.rows,
                names,
                args.repeat,
            )
            return
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
                f"CPU {r['cpu_seconds']:6.2f} s  peak RSS {r['peak_rss_mib']:6.1f} MiB"
            )
        audited_cpu = results["audited"]["cpu_seconds"]
        for mode, label in (("plugins", "no-audit plugins"), ("plain", "plain csv loop")):
            wall, cpu = audited_s / results[mode]["seconds"], audited_cpu / results[mode]["cpu_seconds"]
            print(f"  audited / {label + ':':<18} {wall:.2f}x wall, {cpu:.2f}x CPU")
        print(f"  audit written (closed database): {results['audited']['audit_bytes'] / args.rows:.0f} bytes per row")
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
