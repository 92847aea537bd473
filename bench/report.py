"""`elspeth report` on a big run: CSV -> field_map (every row changed, so every row's values are kept) ->
route, fully audited into SQLite, then the report of it: how long it takes and how big the page is. Both
must stay bounded however many rows the run has (a bounded choice of rows is shown in full).

    python bench/report.py --rows 1000000
    python bench/report.py --rows 200000 --work /tmp/big   # keeps the run there; later calls report it again
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from throughput import closed_size, cpu_seconds, make_input


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, help="keep the run in this directory, and reuse it when it is there")
    args = parser.parse_args()
    if args.work:
        args.work.mkdir(parents=True, exist_ok=True)
        measure(args.rows, args.work)
        return
    with tempfile.TemporaryDirectory() as tmp:
        measure(args.rows, Path(tmp))


def measure(rows: int, root: Path) -> None:

    from elspeth.engine.orchestrator import run_pipeline
    from elspeth.landscape.database import open_database
    from elspeth.landscape.payloads import FilePayloadStore
    from elspeth.plugin_manager import PluginRegistry, make_plugin_manager
    from elspeth.report.collect import report_data
    from elspeth.report.page import render_page
    from elspeth.settings import Settings, structure

    db = root / "landscape.db"
    url = f"sqlite:///{db}"
    run_id = f"bench-{rows}"
    if not db.exists():
        make_input(root / "input.csv", rows)
        pipeline = {
            "source": {"plugin": "csv", "options": {"path": str(root / "input.csv")}},
            "transforms": [
                {"plugin": "field_map", "options": {"constants": {"tier": "gold"}}},
                {"plugin": "route", "options": {"field": "city", "routes": {"Springfield": "town"}}},
            ],
            "default_sink": "out",
            "sinks": {
                "out": {"plugin": "csv", "options": {"path": str(root / "out.csv")}},
                "town": {"plugin": "csv", "options": {"path": str(root / "town.csv")}},
            },
        }
        started = time.perf_counter()
        settings = structure(pipeline, Settings, where="bench")
        summary = run_pipeline(
            settings, registry=PluginRegistry(make_plugin_manager()), landscape_url=url, run_id=run_id
        )
        assert summary.status == "completed", summary
        took = time.perf_counter() - started
        print(f"run: {rows:,} rows in {took:.1f} s; audit {closed_size(db) / rows:.0f} bytes per row")
    engine = open_database(url)
    started, cpu = time.perf_counter(), cpu_seconds()
    with engine.connect() as conn:
        data = report_data(conn, run_id, FilePayloadStore(root / "payloads").get)
    gathered = time.perf_counter() - started
    page = render_page(data)
    elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    engine.dispose()
    print(
        f"report: {elapsed:.2f} s wall ({gathered:.2f} s gathering), {cpu:.2f} s CPU; page {len(page.encode()):,} "
        f"bytes; {data['rows']['detailed']:,} rows in full, {len(data['index']):,} in the index"
    )


if __name__ == "__main__":
    main()
