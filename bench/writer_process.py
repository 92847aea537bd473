"""Would a separate writer process help (issue 11)? The audit's four inserts per row, done in this process,
against the same inserts sent to a writer process over a pipe (pickled), which runs them: the CPU each
process spends, so the CPU the engine's process would save and the CPU the machine would spend.

    python bench/writer_process.py --rows 200000

Rows are made up (the typed benchmark's shape: a 100-byte payload, SHA-256 hex hashes); only the database
work and the hand-over are timed, not the making of the rows.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import pickle
import resource
import sqlite3
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

CHUNK = 5_000
"""Rows per hand-over: the recorder sends its buffer about this often."""
COMMIT_EVERY = 20_000


def cpu(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def landscape(path: Path) -> tuple[sqlite3.Connection, dict[str, str]]:
    from sqlalchemy.dialects import sqlite as sqlite_dialect

    from elspeth.landscape import schema
    from elspeth.landscape.database import open_database

    if not path.exists():
        open_database(f"sqlite:///{path}").dispose()
    conn = sqlite3.connect(path)
    for pragma in ("foreign_keys=ON", "journal_mode=WAL", "synchronous=FULL"):
        conn.execute(f"PRAGMA {pragma}")
    dialect = sqlite_dialect.dialect()
    return conn, {t.name: str(t.insert().compile(dialect=dialect)) for t in schema.metadata.tables.values()}


def prepare(path: Path) -> None:
    conn, sql = landscape(path)
    conn.execute(sql["runs"], ("b", "running", "{}", "0" * 64, None, "b", 1, None, 0.0, None, None))
    for position, node in enumerate(("source", "transform", "sink")):
        conn.execute(sql["nodes"], ("b", node, node, "p", "d", "1", position, "{}", "0" * 64))
    conn.execute(sql["node_states"], ("b", -1, "sink", None, "flush", 1, "completed", None, None, None, 0.0, 0.0))
    conn.execute(sql["artifacts"], ("b", -1, "sink", -1, "file:///x", "0" * 64, 1, 1, 0.0))
    conn.commit()
    conn.close()


def chunks(rows: int) -> list[dict[str, list[tuple[Any, ...]]]]:
    out = []
    for start in range(0, rows, CHUNK):
        ids = range(start, min(rows, start + CHUNK))
        digests = [hashlib.sha256(str(i).encode()).hexdigest() for i in ids]
        payloads = [f'{{"id":{i},"name":"Customer {i:07d}","amount":{i * 1.37:.2f},"city":"Springfield"}}' for i in ids]
        out.append(
            {
                "rows": [("b", i, p, d, False) for i, p, d in zip(ids, payloads, digests, strict=True)],
                "tokens": [("b", i, i, None, "source", None, None) for i in ids],
                "node_states": [
                    ("b", i, "transform", i, "process", 1, "completed", d, d, None, 0.0, 0.0)
                    for i, d in zip(ids, digests, strict=True)
                ],
                "token_outcomes": [("b", i, "completed", "sink", "sink", -1, None, None, 0.0) for i in ids],
            }
        )
    return out


def write(conn: sqlite3.Connection, sql: dict[str, str], chunk: dict[str, list[tuple[Any, ...]]], n: int) -> None:
    for table in ("rows", "tokens", "node_states", "token_outcomes"):
        conn.executemany(sql[table], chunk[table])
    if n % (COMMIT_EVERY // CHUNK) == 0:
        conn.commit()


def writer(path: Path, pipe: Connection) -> None:
    conn, sql = landscape(path)
    n = 0
    while (data := pipe.recv_bytes()) != b"":
        n += 1
        write(conn, sql, pickle.loads(data), n)
    conn.commit()
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = chunks(args.rows)
        here, there = work / "here.db", work / "there.db"
        prepare(here)
        prepare(there)

        conn, sql = landscape(here)
        started, used = time.perf_counter(), cpu()
        for n, chunk in enumerate(data, 1):
            write(conn, sql, chunk, n)
        conn.commit()
        in_process, in_wall = cpu() - used, time.perf_counter() - started
        conn.close()

        ours, theirs = multiprocessing.Pipe(duplex=False)
        child = multiprocessing.get_context("fork").Process(target=writer, args=(there, ours))
        child.start()
        started, used, children = time.perf_counter(), cpu(), cpu(resource.RUSAGE_CHILDREN)
        for chunk in data:
            theirs.send_bytes(pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL))
        theirs.send_bytes(b"")
        handed = cpu() - used
        child.join()
        wall = time.perf_counter() - started
        written = cpu(resource.RUSAGE_CHILDREN) - children

    per_row = 1e6 / args.rows
    print(f"the audit's four inserts per row, {args.rows:,} rows, commit every {COMMIT_EVERY:,}")
    print(
        f"  in this process:       CPU {in_process:6.2f} s ({in_process * per_row:5.2f} us/row)  wall {in_wall:6.2f} s"
    )
    print(f"  writer process: ours   CPU {handed:6.2f} s ({handed * per_row:5.2f} us/row, pickling and the pipe)")
    print(f"                  theirs CPU {written:6.2f} s ({written * per_row:5.2f} us/row)  wall {wall:6.2f} s")
    total = handed + written
    print(
        f"  the engine's process would save {(in_process - handed) * per_row:5.2f} us/row; the machine would spend "
        f"{(total - in_process) * per_row:+5.2f} us/row ({total / in_process:.2f}x the CPU)"
    )


if __name__ == "__main__":
    main()
