"""CSV -> `stats` aggregation (count trigger 100) -> CSV, fully audited, at several input sizes in one run:
CPU seconds per row must stay flat as the input grows (issue 11: it grew 4.5x per doubling).

    python bench/aggregation.py                      # 10,000, 100,000 and 1,000,000 rows: about 2 minutes
    python bench/aggregation.py --rows 10000,100000  # about 20 seconds
    python bench/aggregation.py --rows 100000 --index-cost ix_tokens_parent,ix_batch_members_token

Each size runs in a fresh subprocess, which reports its own wall time, CPU time (user + sys) and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from throughput import cpu_seconds, drop_indexes, index_cost, make_input, run_audited

BATCH = 100


def audited(src: Path, dst: Path, work: Path) -> dict[str, object]:
    return run_audited(
        {
            "source": {"plugin": "csv", "options": {"path": str(src), "types": {"id": "int", "amount": "float"}}},
            "aggregations": [{"plugin": "stats", "options": {"fields": ["id", "amount"]}, "trigger": {"count": BATCH}}],
            "sinks": {"out": {"plugin": "csv", "options": {"path": str(dst), "if_exists": "overwrite"}}},
        },
        work,
    )


def child(src: Path, work: Path, drop: list[str]) -> None:
    """One audited run; its wall and CPU time exclude the interpreter's start and the imports."""
    import elspeth.engine.orchestrator  # noqa: F401

    drop_indexes(drop)
    started, cpu = time.perf_counter(), cpu_seconds()
    extra = audited(src, work / "out.csv", work)
    elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": elapsed, "cpu_seconds": cpu, "peak_rss_mib": peak_mib, **extra}))


def measure(src: Path, work: Path, drop: tuple[str, ...]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", "--input", str(src), "--work", str(work), "--drop-index", ",".join(drop)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="10000,100000,1000000", help="comma-separated input sizes")
    parser.add_argument("--drop-index", default="", help="comma-separated: build the Landscape without these")
    parser.add_argument("--index-cost", help="comma-separated index names: the run at the first size without each")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of --index-cost")
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--input")
    parser.add_argument("--work")
    args = parser.parse_args()
    if args.child:
        child(Path(args.input), Path(args.work), [n for n in args.drop_index.split(",") if n])
        return
    sizes = [int(n) for n in args.rows.split(",")]
    drop = tuple(name for name in args.drop_index.split(",") if name)
    first_cpu_per_row = None
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.index_cost:
            src = root / "input.csv"
            make_input(src, sizes[0])
            what = f"stats aggregation (count trigger {BATCH})"
            run = lambda work, without: measure(src, work, without)  # noqa: E731
            index_cost(what, run, root, sizes[0], args.index_cost.split(","), args.repeat)
            return
        print(f"stats aggregation, count trigger {BATCH}, full audit; cores: {os.cpu_count()}")
        for n in sizes:
            work = root / f"run-{n}"
            work.mkdir()
            src = work / "input.csv"
            make_input(src, n)
            r = measure(src, work, drop)
            src.unlink()
            cpu_per_row = r["cpu_seconds"] / n
            first_cpu_per_row = first_cpu_per_row or cpu_per_row
            print(
                f"  {n:>9,} rows  wall {r['seconds']:7.2f} s {n / r['seconds']:>8,.0f} rows/s  "
                f"CPU {r['cpu_seconds']:7.2f} s {n / r['cpu_seconds']:>8,.0f} rows/CPU-s  "
                f"CPU/row x{cpu_per_row / first_cpu_per_row:.2f}  peak RSS {r['peak_rss_mib']:6.1f} MiB  "
                f"audit {r['audit_bytes'] / n:.0f} B/row"
            )


if __name__ == "__main__":
    main()
