"""`elspeth export`, `verify-export` and `verify` on runs of growing size: time and peak RSS of each, to show
that all three stream (memory flat in the number of rows).

    python bench/evidence.py                      # 50,000 and 200,000 rows
    python bench/evidence.py --rows 100000,400000

The run is CSV -> passthrough -> CSV with the full audit; each command runs in a fresh process whose own
peak RSS is read with wait4.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from throughput import make_input  # beside this file, as bench/report.py takes it


def elspeth(work: Path, *args: str) -> tuple[float, float, float]:
    """Run `elspeth ARGS` in `work`; (wall seconds, CPU seconds, peak RSS in MiB) of that process alone, its
    interpreter start and imports included (about 0.6 s of CPU)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "elspeth", *args], cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"elspeth {' '.join(args)} failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def measure(rows: int) -> None:
    with tempfile.TemporaryDirectory(prefix="elspeth-bench-evidence-") as tmp:
        work = Path(tmp)
        make_input(work / "input.csv", rows)
        (work / "settings.yaml").write_text(
            "source: {plugin: csv, options: {path: input.csv}}\n"
            "transforms: [{plugin: passthrough}]\n"
            "sinks: {out: {plugin: csv, options: {path: out.csv}}}\n"
        )
        url = f"sqlite:///{work / 'landscape.db'}"
        elspeth(work, "run", "settings.yaml", "--landscape", url, "--run-id", "bench", "-q")
        elspeth(work, "keygen", "key.pem")
        steps = {
            "export": ("export", "bench", "-o", "run.jsonl", "--key", "key.pem", "--landscape", url),
            "verify-export": ("verify-export", "run.jsonl", "--key", "key.pub.pem"),
            "verify": ("verify", "bench", "--landscape", url),
        }
        for name, args in steps.items():
            seconds, cpu, peak = elspeth(work, *args)
            extra = f"  {os.path.getsize(work / 'run.jsonl') / rows:,.0f} bytes/row" if name == "export" else ""
            print(
                f"  {rows:>9,} rows  {name:<14} {seconds:7.2f} s  CPU {cpu:6.2f} s  {rows / cpu:>8,.0f} rows/CPU-s  "
                f"peak RSS {peak:6.1f} MiB{extra}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="50000,200000", help="comma-separated run sizes")
    for rows in (int(n) for n in parser.parse_args().rows.split(",")):
        measure(rows)


if __name__ == "__main__":
    main()
