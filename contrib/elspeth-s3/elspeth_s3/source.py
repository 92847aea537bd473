"""The `s3` source: one S3 object of CSV or JSON Lines, read in ranged GETs, parsed by elspeth's own parsers.

Each GET fetches `chunk_size_mb` and is one recorded call holding the bytes received; later chunks are asked
for with `If-Match` on the ETag of the first, so an object replaced mid-read fails the run instead of
mixing two versions. The chunks are spooled to a private temporary file (memory stays at one chunk) and
read by `elspeth.formats`, the parsers of the built-in `csv` / `jsonl` sources, so bad records are quarantined
exactly as they would be from a local file.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterator
from typing import IO, Any, ClassVar

from attrs import field, frozen

from elspeth.api import Capability, Context, Quarantine, Row, Source
from elspeth.errors import ElspethError
from elspeth.formats import Origin, open_text, read_csv, read_jsonl
from elspeth.options import at_least, known_encoding, single_character, values_one_of
from elspeth_s3 import USER_AGENT
from elspeth_s3.calls import MalformedResponse, Reply, S3Calls, explained, status_of
from elspeth_s3.options import S3ObjectConfig

_MiB = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


@frozen
class S3SourceConfig(S3ObjectConfig):
    delimiter: str = field(default=",", validator=single_character)
    """csv only."""
    encoding: str = field(default="utf-8", validator=known_encoding)
    types: dict[str, str] = field(factory=dict, validator=values_one_of("int", "float", "bool", "str"))
    """csv only: column -> int, float, bool or str (the default)."""
    chunk_size_mb: float = field(default=8.0, validator=at_least(0.0001, maximum=5120, unit=" MiB"))
    """MiB per ranged GET, each one recorded call (tiny values are for tests)."""


class S3Source(Source):
    """Rows of one S3 object (CSV with a header line, or JSON Lines). Malformed records are quarantined."""

    name = "s3"
    config_class = S3SourceConfig
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.EXTERNAL_CALLS, Capability.DETERMINISTIC})
    config: S3SourceConfig

    def __init__(self, config: S3SourceConfig) -> None:
        super().__init__(config)
        self._s3: S3Calls | None = None

    @property
    def s3(self) -> S3Calls:
        if self._s3 is None:
            self._s3 = S3Calls(self.config, USER_AGENT)
        return self._s3

    def load(self, ctx: Context) -> Iterator[Row | Quarantine]:
        cfg = self.config
        with tempfile.TemporaryDirectory(prefix="elspeth-s3-") as tmp:
            path = os.path.join(tmp, f"object.{cfg.format}")
            with open(path, "wb") as spool:
                self._download(ctx, spool)
            origin = Origin("s3 source", cfg.uri, noun="object")
            if cfg.format == "csv":
                with open_text(path, cfg.encoding, kind="s3 source", newline="") as f:
                    yield from read_csv(f, cfg, origin)
            else:
                with open_text(path, cfg.encoding, kind="s3 source", newline="\n") as f:
                    yield from read_jsonl(f, cfg.encoding, origin)

    def close(self) -> None:
        if self._s3 is not None:
            self._s3.close()
            self._s3 = None

    def _download(self, ctx: Context, spool: IO[bytes]) -> None:
        cfg = self.config
        chunk = max(1, int(cfg.chunk_size_mb * _MiB))
        offset, total, etag = 0, None, None
        while total is None or offset < total:
            end = offset + chunk - 1 if total is None else min(offset + chunk, total) - 1
            params: dict[str, Any] = {"Bucket": cfg.bucket, "Key": cfg.path, "Range": f"bytes={offset}-{end}"}
            if etag is not None:
                params["IfMatch"] = etag
            try:
                reply = self.s3.request(
                    ctx, "GetObject", streaming=True, validate=self._range_check(offset, end, total), **params
                )
            except Exception as exc:
                if offset == 0 and status_of(exc) == 416:
                    self._check_empty(ctx)
                    return
                err = self._explain(exc)
                if err is exc:
                    raise
                raise err from exc
            total = self._range(reply)[2]
            etag = etag or reply.etag
            spool.write(reply.body)
            offset += len(reply.body)

    def _range_check(self, offset: int, end: int, total: int | None) -> Callable[[Reply], None]:
        def check(reply: Reply) -> None:
            first, last, size = self._range(reply)
            if first != offset or last - first + 1 != len(reply.body) or (total is not None and size != total):
                raise MalformedResponse(
                    f"s3 source: asked {self.config.uri} for bytes {offset}-{end} of {total or 'unknown'}, got "
                    f"{len(reply.body)} bytes announced as {reply.header('content-range')!r}"
                )

        return check

    def _range(self, reply: Reply) -> tuple[int, int, int]:
        """First and last byte of the answer, and the object's size, from its Content-Range."""
        content_range = reply.header("content-range")
        if reply.status == 200 and content_range is None:  # the whole object, in one answer
            return 0, len(reply.body) - 1, len(reply.body)
        match = _CONTENT_RANGE.fullmatch(content_range or "")
        if reply.status != 206 or match is None or match.group(3) == "*":
            raise MalformedResponse(
                f"s3 source: a ranged GET of {self.config.uri} was answered {reply.status} with Content-Range "
                f"{content_range!r}"
            )
        return int(match.group(1)), int(match.group(2)), int(match.group(3))

    def _check_empty(self, ctx: Context) -> None:
        """A range starting at 0 is unsatisfiable only for an empty object; make sure it is one."""
        cfg = self.config
        try:
            reply = self.s3.request(ctx, "HeadObject", bodiless=True, Bucket=cfg.bucket, Key=cfg.path)
        except Exception as exc:
            err = self._explain(exc)
            if err is exc:
                raise
            raise err from exc
        if int(reply.parsed.get("ContentLength", -1)) != 0:
            raise ElspethError(f"s3 source: {cfg.uri} changed while it was read; run again")

    def _explain(self, exc: BaseException) -> BaseException:
        cfg = self.config
        if status_of(exc) == 412:
            return ElspethError(f"s3 source: {cfg.uri} was replaced while it was read; run again")
        return explained(exc, who="s3 source", uri=cfg.uri, bucket=cfg.bucket, permission="s3:GetObject on it")
