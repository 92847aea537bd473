"""The azure_blob sink writing ~1 GiB in 1,000 writes to Azurite, against a plain SDK upload of the same
bytes, in one run (the ratio is what to trust on a noisy machine).

    python bench/blob_sink.py                          # 1,000 writes x 1,000 rows x 1,074 bytes = 1.0 GiB
    python bench/blob_sink.py --writes 100 --verify    # smaller; also download and hash the blob

Engine-free: the sink is driven directly (open, write per batch, a flush every `--flush-every` writes, as
checkpoints would) with a context whose record_call stores nothing, so the figures are the sink's and the
SDK's, not the Landscape's. Each measurement runs in a fresh subprocess so its peak RSS is its own. Needs
Azurite (`npm ci`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PEAK_RSS_LIMIT_MIB = 150
_PREFIX = 33  # {"id":"0000000000","payload":""}\n without the payload


def batch(number: int, rows: int, row_bytes: int) -> list[dict[str, Any]]:
    """The rows of write `number`: each encodes to exactly `row_bytes` bytes of JSON Lines."""
    filler = "abcdefghijklmnopqrstuvwxyz0123456789" * (row_bytes // 36 + 1)
    payload = filler[: row_bytes - _PREFIX]
    first = number * rows
    return [{"id": f"{i:010d}", "payload": payload} for i in range(first, first + rows)]


class _Clock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _Ctx:
    """The engine's ctx with nothing recorded: the sink still builds every call record and hands it over."""

    run_id, node_id, state_id, checkpoint = "bench", "sink:bench", 0, None
    clock = _Clock()

    def __init__(self) -> None:
        self.calls = 0

    def record_call(self, **call: Any) -> None:
        self.calls += 1


def run_sink(args: argparse.Namespace) -> dict[str, Any]:
    from elspeth.plugins.azure.blob_sink import AzureBlobSink, AzureBlobSinkConfig
    from elspeth.settings import structure

    config = structure(
        {
            "container": args.container,
            "blob_path": "bench/sink.jsonl",
            "connection_string": args.connection_string,
            "overwrite": True,
        },
        AzureBlobSinkConfig,
        where="bench",
    )
    sink = AzureBlobSink(config)
    ctx = _Ctx()
    sink.open(ctx, None)  # type: ignore[arg-type]
    artifact = None
    for number in range(args.writes):
        sink.write(batch(number, args.rows, args.row_bytes), ctx)  # type: ignore[arg-type]
        if (number + 1) % args.flush_every == 0 or number + 1 == args.writes:
            artifact = sink.flush(ctx)  # type: ignore[arg-type]
    sink.close()
    assert artifact is not None
    return {"bytes": artifact.size, "sha256": artifact.content_hash, "calls": ctx.calls}


class _Stream:
    """The same bytes as the sink writes, produced write by write, as a file-like object for upload_blob."""

    def __init__(self, args: argparse.Namespace) -> None:
        from elspeth.formats import encode_jsonl

        self._parts: Iterator[bytes] = (encode_jsonl(batch(n, args.rows, args.row_bytes)) for n in range(args.writes))
        self._buffer = b""
        self.sha256 = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            part = next(self._parts, None)
            if part is None:
                break
            self._buffer += part
        if size < 0:
            size = len(self._buffer)
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        self.sha256.update(out)
        self.size += len(out)
        return out


def run_upload(args: argparse.Namespace) -> dict[str, Any]:
    from azure.storage.blob import BlobClient

    client = BlobClient.from_connection_string(args.connection_string, args.container, "bench/upload.jsonl")
    stream = _Stream(args)
    client.upload_blob(stream, overwrite=True, max_concurrency=1)
    client.close()
    return {"bytes": stream.size, "sha256": stream.sha256.hexdigest()}


def run_encode(args: argparse.Namespace) -> dict[str, Any]:
    stream = _Stream(args)
    while stream.read(4 << 20):
        pass
    return {"bytes": stream.size, "sha256": stream.sha256.hexdigest()}


def child(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    result = {"sink": run_sink, "upload": run_upload, "encode": run_encode}[args.child](args)
    elapsed = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"mode": args.child, "seconds": elapsed, "peak_rss_mib": peak_kib / 1024, **result}))


def measure(mode: str, args: argparse.Namespace, connection_string: str, container: str) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--writes",
        str(args.writes),
        "--rows",
        str(args.rows),
        "--row-bytes",
        str(args.row_bytes),
        "--flush-every",
        str(args.flush_every),
        "--container",
        container,
        "--connection-string",
        connection_string,
    ]
    out = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writes", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=1000, help="rows per write")
    parser.add_argument("--row-bytes", type=int, default=1074, help="bytes per encoded row (JSON Lines)")
    parser.add_argument("--flush-every", type=int, default=100, help="writes between flushes (commits)")
    parser.add_argument("--verify", action="store_true", help="download the sink's blob and check its sha256")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--container", help=argparse.SUPPRESS)
    parser.add_argument("--connection-string", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    from azure.storage.blob import BlobServiceClient

    from elspeth_testkit.azurite import Azurite

    with Azurite() as azurite:
        service = BlobServiceClient.from_connection_string(azurite.connection_string)
        service.create_container("bench")
        results = {
            mode: measure(mode, args, azurite.connection_string, "bench") for mode in ("encode", "upload", "sink")
        }
        sink, upload = results["sink"], results["upload"]
        stored = service.get_blob_client("bench", "bench/sink.jsonl").get_blob_properties().size
        assert stored == sink["bytes"] == upload["bytes"], (stored, sink["bytes"], upload["bytes"])
        assert sink["sha256"] == upload["sha256"], "the sink and the plain upload wrote different bytes"
        if args.verify:
            digest = hashlib.sha256()
            for chunk in service.get_blob_client("bench", "bench/sink.jsonl").download_blob().chunks():
                digest.update(chunk)
            assert digest.hexdigest() == sink["sha256"], "the blob does not hash to the artifact's sha256"

    gib = sink["bytes"] / 2**30
    print(f"command: python bench/blob_sink.py {' '.join(sys.argv[1:])}".rstrip())
    print(
        f"data: {args.writes:,} writes x {args.rows:,} rows x {args.row_bytes:,} bytes = {sink['bytes']:,} bytes "
        f"({gib:.2f} GiB); a flush every {args.flush_every} writes; Azurite in memory; cores: {os.cpu_count()}"
    )
    for mode, label in (
        ("encode", "encoding only (no I/O)"),
        ("upload", "plain SDK upload_blob"),
        ("sink", "azure_blob sink"),
    ):
        r = results[mode]
        print(
            f"  {label:<24} {r['seconds']:7.2f} s  {r['bytes'] / 2**20 / r['seconds']:7.1f} MiB/s  "
            f"peak RSS {r['peak_rss_mib']:6.1f} MiB"
        )
    print(f"  sink throughput / plain upload: {upload['seconds'] / sink['seconds']:.2f}x")
    print(f"  calls the sink handed to record_call: {sink['calls']:,}")
    verdict = "under" if sink["peak_rss_mib"] < PEAK_RSS_LIMIT_MIB else "OVER"
    print(f"  sink peak RSS {sink['peak_rss_mib']:.1f} MiB: {verdict} the {PEAK_RSS_LIMIT_MIB} MiB limit")
    if args.verify:
        print("  verified: the blob's sha256 is the artifact's")


if __name__ == "__main__":
    main()
