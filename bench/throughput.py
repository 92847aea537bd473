"""CSV -> passthrough -> CSV: the fully audited engine against the same plugins with no audit, against a
plain `csv` read/write loop, and against the SQLite ceiling (the audit's four inserts per row, raw), in one
run (the ratios are what to trust on a noisy machine).

    python bench/throughput.py                 # 100,000 rows
    python bench/throughput.py --typed --rows 1000000   # an int and a float column, as the source types them
    python bench/throughput.py --rows 20000 --memory 20000,100000,400000
    python bench/throughput.py --index-cost ix_tokens_row,ix_tokens_parent --repeat 3
    python bench/throughput.py --typed --against /tmp/before,. --repeat 3   # code trees, interleaved
    python bench/throughput.py --postgres postgresql+psycopg://elspeth@127.0.0.1:54330/elspeth_test --repeat 3

Each measurement runs in a fresh subprocess so peak RSS and CPU seconds (user + sys) are its own. With
--postgres the audited run goes on a SQLite file and on PostgreSQL (a fresh database on that server each
time) in turn, and the server's CPU for each run is read from /proc: the server must run on this machine.
"""

from __future__ import annotations

import argparse
import contextlib
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
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy.engine import make_url

FIELDS = ["id", "name", "email", "amount", "city", "note"]
TYPES = {"id": "int", "amount": "float"}
"""What the source makes of the columns with --typed: an int and a float column (issue 11)."""


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


def plugins_only(src: Path, dst: Path, typed: bool) -> None:
    """The same plugin instances the engine runs, driven by a bare loop: no Landscape, no hashing."""
    from elspeth.plugins.csv_files import CsvSink, CsvSinkConfig, CsvSource, CsvSourceConfig
    from elspeth.plugins.passthrough import Passthrough

    class Ctx:
        run_id, node_id, state_id, checkpoint = "bench", "bench", 0, None

    ctx = Ctx()
    source = CsvSource(CsvSourceConfig(path=str(src), types=TYPES if typed else {}))
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


def audited(src: Path, dst: Path, work: Path, typed: bool, landscape: str | None = None) -> dict[str, object]:
    return run_audited(
        {
            "source": {"plugin": "csv", "options": {"path": str(src), "types": TYPES if typed else {}}},
            "transforms": [{"plugin": "passthrough"}],
            "sinks": {"out": {"plugin": "csv", "options": {"path": str(dst), "if_exists": "overwrite"}}},
        },
        work,
        landscape,
    )


def run_audited(pipeline: dict[str, object], work: Path, landscape: str | None = None) -> dict[str, object]:
    """One run of `pipeline` with its Landscape at `landscape`, by default a SQLite file in `work`; the size
    of a SQLite audit, closed."""
    from elspeth.engine.orchestrator import run_pipeline
    from elspeth.plugin_manager import PluginRegistry, make_plugin_manager
    from elspeth.settings import Settings, structure

    settings = structure({**pipeline, "landscape": {"payload_dir": str(work / "payloads")}}, Settings, where="bench")
    db = work / "landscape.db"
    summary = run_pipeline(
        settings, registry=PluginRegistry(make_plugin_manager()), landscape_url=landscape or f"sqlite:///{db}"
    )
    assert summary.status == "completed", summary
    return {} if landscape else {"audit_bytes": closed_size(db)}


def closed_size(db: Path) -> int:
    """The Landscape's size as it stands closed on disk: its write-ahead log folded into the file first."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return sum(p.stat().st_size for p in db.parent.iterdir() if p.name.startswith(db.name))


def sqlite_ceiling(src: Path, work: Path, typed: bool, literals: bool = False) -> dict[str, object]:
    """What SQLite alone allows: the inserts the audited run makes per row (rows, tokens, node_states,
    token_outcomes) and per checkpoint (the flush's state, artifact and checkpoint), with the Landscape's own
    schema, pragmas and statements, in batches the size of the recorder's, committed as often. Only the
    database calls are timed: building their parameters (JSON and hashes included) is not, so this is the
    database's share alone, the most any audited run could reach. `literals`: the statements as the recorder
    now sends them (sqlite_inserts.py: each batch's constants written in, many rows a statement), not every
    value bound one row a statement as the issue's ceiling sends them."""
    import hashlib

    from sqlalchemy.dialects import sqlite as sqlite_dialect

    from elspeth.landscape import schema
    from elspeth.landscape.database import open_database
    from elspeth.landscape.sqlite_inserts import statements
    from elspeth.settings import EngineSettings

    db = work / "ceiling.db"
    open_database(f"sqlite:///{db}").dispose()  # the schema and page size, made as the engine makes them
    conn = sqlite3.connect(db)
    for pragma in ("foreign_keys=ON", "journal_mode=WAL", "synchronous=FULL"):
        conn.execute(f"PRAGMA {pragma}")
    dialect = sqlite_dialect.dialect()
    sql = {t.name: str(t.insert().compile(dialect=dialect)) for t in schema.metadata.tables.values()}
    width = {t.name: len(t.columns) for t in schema.metadata.tables.values()}
    head = {name: text.split("VALUES")[0] + "VALUES " for name, text in sql.items()}

    def batches(*tables: tuple[str, list[tuple[object, ...]]]) -> list[tuple[str, list[tuple[object, ...]]]]:
        if not literals:
            return [(sql[name], rows) for name, rows in tables]
        return [s for name, rows in tables for s in statements(head[name], width[name], rows)]

    run, source, transform, sink = "bench", "source:csv", "transform:passthrough", "sink:out"
    conn.execute(sql["runs"], (run, "running", "{}", "0" * 64, None, "bench", 1, None, time.time(), None, None))
    for position, node in enumerate((source, transform, sink)):
        conn.execute(sql["nodes"], (run, node, node.split(":")[0], "p", "d", "1", position, "{}", "0" * 64))
    conn.commit()
    every = EngineSettings().checkpoint_every_rows
    convert = {"int": int, "float": float}
    types = TYPES if typed else {}
    cpu = wall = 0.0
    pending: list[int] = []
    flushes = 0

    def timed(job: Callable[[], None]) -> None:
        nonlocal cpu, wall
        started, used = time.perf_counter(), cpu_seconds()
        job()
        cpu += cpu_seconds() - used
        wall += time.perf_counter() - started

    def send(chunk: list[tuple[int, str]]) -> None:
        now = time.time()
        hashed = [(i, payload, hashlib.sha256(payload.encode()).hexdigest()) for i, payload in chunk]
        rows = [(run, i, payload, digest, False) for i, payload, digest in hashed]
        tokens = [(run, i, i, None, source, None, None) for i, _, _ in hashed]
        states = [
            (run, i, transform, i, "process", 1, "completed", d, d, None, now, now, None, None) for i, _, d in hashed
        ]

        inserts = batches(("rows", rows), ("tokens", tokens), ("node_states", states))

        def job() -> None:
            for statement, params in inserts:
                conn.executemany(statement, params)

        timed(job)
        pending.extend(i for i, _ in chunk)

    def checkpoint() -> None:
        nonlocal flushes, pending
        flushes += 1
        now, ids = time.time(), -flushes  # the flushes' own ids, apart from the rows'
        state = (run, ids, sink, None, "flush", 1, "completed", None, "0" * 64, None, now, now, None, None)
        artifact = (run, ids, sink, ids, "file:///out.csv", "0" * 64, 1, len(pending), now)
        mark = (run, ids, sink, ids, "{}", pending[-1] + 1, now)
        outcomes = [(run, t, "completed", sink, sink, ids, None, None, now) for t in pending]

        inserts = batches(("token_outcomes", outcomes))

        def job() -> None:
            conn.execute(sql["node_states"], state)
            conn.execute(sql["artifacts"], artifact)
            conn.execute(sql["checkpoints"], mark)
            for statement, params in inserts:
                conn.executemany(statement, params)
            conn.commit()

        timed(job)
        pending = []

    chunk: list[tuple[int, str]] = []
    with src.open(newline="") as fh:
        for i, record in enumerate(csv.DictReader(fh)):
            row = {k: convert[types[k]](v) if k in types else v for k, v in record.items()}
            chunk.append((i, json.dumps(row, separators=(",", ":"))))
            # The recorder sends its buffer every 20,000 entries: the rows, tokens and states of 5,000-7,000 rows.
            if len(chunk) == 5_000:
                send(chunk)
                chunk = []
            if len(pending) + len(chunk) >= every:
                send(chunk)
                chunk = []
                checkpoint()
    if chunk:
        send(chunk)
    if pending:
        checkpoint()
    conn.close()
    return {"cpu_seconds": cpu, "seconds": wall}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def drop_indexes(names: list[str]) -> None:
    """Build the Landscape without these indexes (to measure what each costs)."""
    from elspeth.landscape import schema

    for name in names:
        table, index = next((t, i) for t in schema.metadata.tables.values() for i in t.indexes if i.name == name)
        table.indexes.discard(index)


def child(mode: str, src: Path, work: Path, drop: list[str], typed: bool, landscape: str | None) -> None:
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
        plugins_only(src, dst, typed)
    elif mode in ("ceiling", "ceiling-literals"):
        extra = sqlite_ceiling(src, work, typed, mode == "ceiling-literals")  # its own timing: the database calls
    else:
        extra = audited(src, dst, work, typed, landscape)
    elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"mode": mode, "seconds": elapsed, "cpu_seconds": cpu, "peak_rss_mib": peak_mib, **extra}))


def measure(
    mode: str,
    src: Path,
    work: Path,
    drop: tuple[str, ...] = (),
    *,
    typed: bool = False,
    code: str | None = None,
    landscape: str | None = None,
) -> dict[str, float]:
    """`mode` in a fresh subprocess; `code`: a directory whose `elspeth` package to run instead of the installed one."""
    command = [sys.executable, __file__, "--child", mode, "--input", str(src), "--work", str(work)]
    command += ["--drop-index", ",".join(drop)] + (["--typed"] if typed else [])
    command += ["--landscape", landscape] if landscape else []
    env = os.environ if code is None else {**os.environ, "PYTHONPATH": str(Path(code).resolve())}
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _libpq_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def postmaster_pid(url: str) -> int:
    """The server's main process, found as the parent of this connection's backend (so on this machine)."""
    import psycopg

    with psycopg.connect(_libpq_url(url)) as conn:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
    return int(Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()[1])


def server_cpu_seconds(postmaster: int) -> float:
    """CPU (user + sys) of the server so far: its main process with the children it has reaped, and every
    live child (backends, WAL writer, checkpointer). Another client's work on the server counts too."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        pid, ppid = int(stat.parent.name), int(fields[1])
        if pid == postmaster:
            total += sum(int(f) for f in fields[11:15])  # utime, stime, and those of its reaped children
        elif ppid == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / ticks


@contextlib.contextmanager
def fresh_database(url: str, name: str) -> Iterator[str]:
    """A new empty database on the server of `url`, dropped afterwards: each run starts as SQLite's does."""
    import psycopg

    with psycopg.connect(_libpq_url(url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_libpq_url(url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def measure_postgres(src: Path, work: Path, url: str, postmaster: int, typed: bool) -> dict[str, float]:
    with fresh_database(url, f"elspeth_bench_{os.getpid()}") as landscape:
        before = server_cpu_seconds(postmaster)
        result = measure("audited", src, work, typed=typed, landscape=landscape)
        time.sleep(0.2)  # the server reaps the run's backends, and counts their CPU, as they exit
        result["server_cpu_seconds"] = server_cpu_seconds(postmaster) - before
    return result


def compare_postgres(src: Path, root: Path, rows: int, url: str, repeat: int, typed: bool) -> None:
    """The audited run on SQLite and on PostgreSQL, interleaved `repeat` times; PG/SQLite rows/s per round."""
    postmaster = postmaster_pid(url)
    server = make_url(url).render_as_string()
    print(f"audited passthrough, {rows:,} rows, SQLite file vs PostgreSQL at {server}; cores: {os.cpu_count()}")
    ratios, cpu_ratios = [], []
    for round_ in range(repeat):
        work = {name: root / f"{name}-{round_}" for name in ("sqlite", "postgres")}
        for path in work.values():
            path.mkdir()
        lite = measure("audited", src, work["sqlite"], typed=typed)
        pg = measure_postgres(src, work["postgres"], url, postmaster, typed)
        for label, r in (("SQLite", lite), ("PostgreSQL", pg)):
            server = f"  server CPU {r['server_cpu_seconds']:6.2f} s" if "server_cpu_seconds" in r else ""
            print(
                f"  round {round_ + 1} {label:<10} wall {r['seconds']:6.2f} s {rows / r['seconds']:>8,.0f} rows/s  "
                f"CPU {r['cpu_seconds']:6.2f} s{server}"
            )
        ratios.append(lite["seconds"] / pg["seconds"])
        cpu_ratios.append((pg["cpu_seconds"] + pg["server_cpu_seconds"]) / lite["cpu_seconds"])
        print(f"    PG/SQLite: {ratios[-1]:.2f}x rows/s, {cpu_ratios[-1]:.2f}x CPU (elspeth + server / elspeth)")
    rate, cpu = statistics.median(ratios), statistics.median(cpu_ratios)
    print(f"  median of {repeat} rounds, PG/SQLite: {rate:.2f}x rows/s, {cpu:.2f}x CPU")


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


def against(codes: list[str], src: Path, root: Path, rows: int, repeat: int, typed: bool) -> None:
    """The audited run of each code tree and the SQLite ceiling, interleaved `repeat` times."""
    ceilings = {"sqlite ceiling": "ceiling", "sqlite ceiling, recorder's SQL": "ceiling-literals"}
    labels = [*codes, *ceilings]
    cpu: dict[str, list[float]] = {label: [] for label in labels}
    wall: dict[str, list[float]] = {label: [] for label in labels}
    rss: dict[str, list[float]] = {label: [] for label in labels}
    for round_ in range(repeat):
        for k, label in enumerate(labels):
            work = root / f"against-{round_}-{k}"
            work.mkdir()
            if label in ceilings:
                r = measure(ceilings[label], src, work, typed=typed)
            else:
                r = measure("audited", src, work, typed=typed, code=label)
            cpu[label].append(r["cpu_seconds"])
            wall[label].append(r["seconds"])
            rss[label].append(r["peak_rss_mib"])
    ceiling, literal = (rows / statistics.median(cpu[label]) for label in ceilings)
    kind = "typed" if typed else "all str"
    print(f"audited passthrough by code tree, {rows:,} rows ({kind}), median of {repeat} interleaved runs:")
    for label in labels:
        c, w = statistics.median(cpu[label]), statistics.median(wall[label])
        print(
            f"  {label:<36} CPU {c:7.2f} s {rows / c:>8,.0f} rows/CPU-s  wall {w:7.2f} s  "
            f"of the ceiling: {rows / c / ceiling:5.1%} (recorder's SQL: {rows / c / literal:5.1%})  "
            f"peak RSS {max(rss[label]):6.1f} MiB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--typed", action="store_true", help="the source types 'id' as int and 'amount' as float")
    parser.add_argument("--memory", help="comma-separated row counts: peak RSS of the audited run at each")
    parser.add_argument("--index-cost", help="comma-separated index names: the audited run without each")
    parser.add_argument("--against", help="comma-separated code trees (directories holding elspeth/): each audited")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of --index-cost, --against and --postgres")
    parser.add_argument("--postgres", metavar="URL", help="the audited run on SQLite and on this PostgreSQL")
    parser.add_argument("--child")
    parser.add_argument("--drop-index", default="")
    parser.add_argument("--input")
    parser.add_argument("--work")
    parser.add_argument("--landscape")
    args = parser.parse_args()
    if args.child:
        drop = [n for n in args.drop_index.split(",") if n]
        child(args.child, Path(args.input), Path(args.work), drop, args.typed, args.landscape)
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
                lambda work, drop: measure("audited", src, work, drop, typed=args.typed),
                root,
                args.rows,
                names,
                args.repeat,
            )
            return
        if args.postgres:
            compare_postgres(src, root, args.rows, args.postgres, args.repeat, args.typed)
            return
        if args.against:
            against(args.against.split(","), src, root, args.rows, args.repeat, args.typed)
            return
        results = {}
        for mode in ("plain", "plugins", "audited", "ceiling", "ceiling-literals"):
            work = root / mode
            work.mkdir()
            results[mode] = measure(mode, src, work, typed=args.typed)
        audited_s = results["audited"]["seconds"]
        kind = f"typed ({', '.join(f'{k} {v}' for k, v in TYPES.items())})" if args.typed else "all str"
        print(f"rows: {args.rows:,}  input: {row_bytes:.0f} bytes/row, {kind}  cores: {os.cpu_count()}")
        for mode, label in (
            ("plain", "plain csv loop"),
            ("plugins", "same plugins, no audit"),
            ("audited", "elspeth, full audit"),
            ("ceiling", "sqlite ceiling (its calls)"),
            ("ceiling-literals", "the same, recorder's SQL"),
        ):
            r = results[mode]
            print(
                f"  {label:<26} {r['seconds']:7.2f} s  {args.rows / r['seconds']:>10,.0f} rows/s  "
                f"CPU {r['cpu_seconds']:6.2f} s {args.rows / r['cpu_seconds']:>10,.0f} rows/CPU-s  "
                f"peak RSS {r['peak_rss_mib']:6.1f} MiB"
            )
        audited_cpu = results["audited"]["cpu_seconds"]
        for mode, label in (("plugins", "no-audit plugins"), ("plain", "plain csv loop")):
            wall, cpu = audited_s / results[mode]["seconds"], audited_cpu / results[mode]["cpu_seconds"]
            print(f"  audited / {label + ':':<18} {wall:.2f}x wall, {cpu:.2f}x CPU")
        share = results["ceiling"]["cpu_seconds"] / audited_cpu
        print(f"  audited rows/CPU-s / sqlite ceiling's: {share:.1%} (the database's share of the audited CPU at most)")
        share = results["ceiling-literals"]["cpu_seconds"] / audited_cpu
        print(f"  audited rows/CPU-s / the ceiling with the recorder's SQL (sqlite_inserts.py): {share:.1%}")
        print(f"  audit written (closed database): {results['audited']['audit_bytes'] / args.rows:.0f} bytes per row")
        if args.memory:
            print("peak RSS of the audited run by input size:")
            for n in (int(x) for x in args.memory.split(",")):
                sized = root / f"input-{n}.csv"
                make_input(sized, n)
                work = root / f"mem-{n}"
                work.mkdir()
                r = measure("audited", sized, work, typed=args.typed)
                print(
                    f"  {n:>9,} rows  {r['seconds']:7.2f} s  CPU {r['cpu_seconds']:7.2f} s  "
                    f"peak RSS {r['peak_rss_mib']:6.1f} MiB"
                )


if __name__ == "__main__":
    main()
