"""Times the whole conformance run over the plugins this repository ships (target: under 60 s on 2 cores).

python bench/conformance.py
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--elspeth-conformance", "-p", "no:cacheprovider", "-q", "-n", "2"],
        cwd=ROOT / "conformance",
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - started
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-500:]
    print(f"conformance run over the shipped plugins: {elapsed:.1f} s on {os.cpu_count()} cores ({summary})")
    scenarios = re.search(r"(\d+) passed", summary)
    if done.returncode != 0 or not scenarios:
        sys.exit(done.returncode or 1)


if __name__ == "__main__":
    main()
