"""The `s3` sink: rows appended to one S3 object through multipart uploads, resumable after a crash.

S3 cannot append. The object is rewritten at every flush, without moving the bytes already stored:

- `write()` encodes rows (the bytes elspeth's local csv/jsonl sinks would write), keeps them in a buffer and
  uploads a part whenever `part_size_mb` are ready, so memory stays near one part.
- `flush()` completes the upload: the object then holds every byte written so far, and the artifact names
  the sha256 and size of all of them. An object whose bytes are all in memory (nothing uploaded since the
  last flush, the previous object under 5 MiB) is written with a single PutObject instead.
- The next write continues in a NEW multipart upload whose first parts are `UploadPartCopy`s of the object
  as it stands (server side, up to 5 GiB per part, If-Match its ETag). A part other than the last must be
  at least 5 MiB, so an object smaller than that is not copied but re-sent: its bytes are kept in memory
  (they are fewer than 5 MiB) and go in front of the new data.
- Every write-out is conditional: If-None-Match * when the object must not exist yet, If-Match the ETag of
  the last flush afterwards, so a concurrent writer is detected instead of overwritten.

Resuming from an artifact's state {size, row_count, content_hash, etag}: abort the multipart uploads the
crashed attempt left for this key, re-read the first `size` bytes (the running sha256 needs them, and they
must hash to `content_hash`), and when the object holds more than `size` bytes (a flush the engine never
recorded) rebuild it from its first `size` bytes, by copy or by PutObject. Rows after `size` come again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from attrs import define, field, frozen
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from elspeth import retries
from elspeth.api import Artifact, Capability, Context, Row, Sink
from elspeth.errors import ConfigError, ElspethError, ResumeError
from elspeth.formats import CsvEncoder, encode_jsonl
from elspeth.options import at_least, no_duplicates, single_character
from elspeth_s3 import USER_AGENT
from elspeth_s3.calls import S3_ERRORS, MalformedResponse, Reply, S3Calls, code_of, explained, status_of
from elspeth_s3.options import S3ObjectConfig

MiB = 1 << 20
MIN_PART = 5 * MiB
"""S3's smallest part but the last."""
MAX_COPY_PART = 5 * 1024 * MiB
"""S3's largest part, copied or uploaded."""
_PERMISSIONS = "s3:ListBucket, s3:GetObject, s3:PutObject, s3:AbortMultipartUpload and s3:ListBucketMultipartUploads"


@frozen
class S3SinkConfig(S3ObjectConfig):
    overwrite: bool = False
    """What a fresh run does when the object exists: refuse (false) or replace it at the first flush."""
    part_size_mb: int = field(default=8, validator=at_least(5, maximum=5120, unit=" MiB"))
    """Bytes per uploaded part; the memory the sink needs is about one part."""
    delimiter: str = field(default=",", validator=single_character)
    """csv only."""
    fields: list[str] | None = field(default=None, validator=no_duplicates)
    """csv only: columns in order; default: the keys of the first row written."""


@define
class _Upload:
    upload_id: str
    parts: list[dict[str, Any]] = field(factory=list)

    @property
    def next_number(self) -> int:
        return len(self.parts) + 1


@define
class _Stored:
    """What the object holds since the last write-out: every byte up to `size`, under `etag`."""

    size: int = 0
    row_count: int = 0
    content_hash: str = hashlib.sha256().hexdigest()
    etag: str | None = None
    small: bytes | None = b""
    """The stored bytes when there are fewer than MIN_PART (re-sent at the head of the next object)."""


def _copy_ranges(size: int) -> list[tuple[int, int]]:
    """[first, last] byte ranges covering `size` bytes in as few copy parts as S3 allows (each at least
    MIN_PART when size is, at most MAX_COPY_PART)."""
    count = -(-size // MAX_COPY_PART)
    step = -(-size // count)
    return [(start, min(start + step, size) - 1) for start in range(0, size, step)]


def _multipart_etag(parts: list[dict[str, Any]]) -> str | None:
    """The ETag S3 gives an object completed from these parts: md5 of the parts' md5s, dash, count."""
    try:
        digests = b"".join(bytes.fromhex(str(p["ETag"]).strip('"')) for p in parts)
    except ValueError:
        return None
    return f'"{hashlib.md5(digests).hexdigest()}-{len(parts)}"'


class S3Sink(Sink):
    """Rows as CSV or JSON Lines in one S3 object, appended across many writes and flushes."""

    name = "s3"
    config_class = S3SinkConfig
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.EXTERNAL_CALLS, Capability.RESUMABLE, Capability.DETERMINISTIC}
    )
    config: S3SinkConfig

    def __init__(self, config: S3SinkConfig) -> None:
        super().__init__(config)
        self.part_size = config.part_size_mb * MiB
        self._s3: S3Calls | None = None
        self._csv = (
            CsvEncoder(config.delimiter, config.fields, kind="s3 sink", where=config.uri)
            if config.format == "csv"
            else None
        )
        self._sha256 = hashlib.sha256()
        self._size = 0
        self._row_count = 0
        self._buffer = bytearray()
        self._upload: _Upload | None = None
        self._stored = _Stored()
        self._condition: dict[str, str] = {}
        self._dirty = False
        """The object does not hold what `_stored` says (not written yet): the next flush writes it."""
        self._opened = False

    @property
    def s3(self) -> S3Calls:
        if self._s3 is None:
            self._s3 = S3Calls(self.config, USER_AGENT)
        return self._s3

    # ------------------------------------------------------------ the Sink contract

    def open(self, ctx: Context, resume: Mapping[str, Any] | None) -> None:
        self._restore_fields(resume or {})
        if resume is None:
            if not self.config.overwrite:
                self._refuse_existing(ctx)
                self._condition = {"IfNoneMatch": "*"}
            self._dirty = True
        else:
            self._abort_dangling(ctx)
            if resume:
                self._reopen(ctx, resume)
            else:
                # The earlier attempt never flushed: whatever is at the key now was never committed.
                self._dirty = True
        self._opened = True

    def write(self, rows: list[Row], ctx: Context) -> None:
        self._check_open()
        data = self._csv.encode(rows, header=self._size == 0) if self._csv is not None else encode_jsonl(rows)
        self._buffer += data
        self._sha256.update(data)
        self._size += len(data)
        self._row_count += len(rows)
        if len(self._buffer) >= self.part_size:
            self._upload_parts(ctx)

    def flush(self, ctx: Context) -> Artifact:
        self._check_open()
        if self._upload is None and not self._buffer and not self._dirty:
            return self._artifact()
        stored = self._stored
        content_hash = self._sha256.hexdigest()
        if self._upload is None and stored.small is not None:
            content = stored.small + bytes(self._buffer)
            reply = self._write_out(
                ctx,
                "PutObject",
                body=content,
                expected_size=len(content),
                expected_etag=f'"{hashlib.md5(content).hexdigest()}"',
            )
            small = content if len(content) < MIN_PART else None
        else:
            self._upload_parts(ctx, last=True)
            reply = self._complete(ctx, self._size)
            small = None
        self._upload = None
        self._buffer = bytearray()
        self._stored = _Stored(self._size, self._row_count, content_hash, reply.etag, small)
        self._condition = {"IfMatch": reply.etag}
        self._dirty = False
        return self._artifact()

    def read_back(self, uri: str, ctx: Context) -> Iterator[bytes]:
        """The object at `uri` (this config's), one ranged GetObject of `part_size_mb` at a time, all at the
        version found first (If-Match its ETag)."""
        cfg = self.config
        if uri != cfg.uri:
            raise ElspethError(
                f"s3 sink: {uri} is not the object this sink's settings name ({cfg.uri}); verify with the settings "
                "of the run that wrote it (--settings)"
            )
        head = self._head(ctx)
        if head is None:
            raise ElspethError(f"s3 sink: {uri} is gone")
        size, etag, _ = head
        offset = 0
        while offset < size:
            end = min(offset + self.part_size, size) - 1
            reply = self._call(ctx, "GetObject", streaming=True, Range=f"bytes={offset}-{end}", IfMatch=etag)
            if not reply.body:
                raise ElspethError(f"s3 sink: {uri} ended at byte {offset}, but HeadObject said {size}")
            offset += len(reply.body)
            yield reply.body

    def close(self) -> None:
        # An upload left open (a failed run) is aborted when the run resumes: close() has no ctx to record
        # the call with, and every S3 call is recorded.
        if self._s3 is not None:
            self._s3.close()
            self._s3 = None

    # ------------------------------------------------------------ writing

    def _artifact(self) -> Artifact:
        stored = self._stored
        resume: dict[str, Any] = {
            "size": stored.size,
            "row_count": stored.row_count,
            "content_hash": stored.content_hash,
            "etag": stored.etag,
        }
        if self._csv is not None:
            resume["fields"] = self._csv.fields
        return Artifact(
            uri=self.config.uri,
            content_hash=stored.content_hash,
            size=stored.size,
            row_count=stored.row_count,
            resume=resume,
        )

    def _upload_parts(self, ctx: Context, *, last: bool = False) -> None:
        """Upload every full part in the buffer (and with `last`, what remains), starting an upload first."""
        if self._upload is None:
            self._begin(ctx)
        upload = self._upload
        assert upload is not None
        while len(self._buffer) >= self.part_size or (last and self._buffer):
            part = bytes(self._buffer[: self.part_size])
            reply = self._call(
                ctx,
                "UploadPart",
                body=part,
                bodiless=True,
                UploadId=upload.upload_id,
                PartNumber=upload.next_number,
            )
            upload.parts.append({"PartNumber": upload.next_number, "ETag": reply.etag})
            del self._buffer[: len(part)]

    def _begin(self, ctx: Context) -> None:
        """A new multipart upload whose first parts are the object as it stands."""
        cfg = self.config
        reply = self._call(ctx, "CreateMultipartUpload")
        upload = self._upload = _Upload(str(reply.parsed["UploadId"]))
        stored = self._stored
        if stored.small is not None:
            self._buffer[0:0] = stored.small
            return
        for first, last in _copy_ranges(stored.size):
            reply = self._call(
                ctx,
                "UploadPartCopy",
                UploadId=upload.upload_id,
                PartNumber=upload.next_number,
                CopySource={"Bucket": cfg.bucket, "Key": cfg.path},
                CopySourceRange=f"bytes={first}-{last}",
                CopySourceIfMatch=str(stored.etag),
            )
            upload.parts.append({"PartNumber": upload.next_number, "ETag": reply.parsed["CopyPartResult"]["ETag"]})

    def _complete(self, ctx: Context, expected_size: int) -> Reply:
        """Complete the open multipart upload: the object becomes every part uploaded, `expected_size` bytes."""
        upload = self._upload
        assert upload is not None
        return self._write_out(
            ctx,
            "CompleteMultipartUpload",
            expected_size=expected_size,
            expected_etag=_multipart_etag(upload.parts),
            UploadId=upload.upload_id,
            MultipartUpload={"Parts": upload.parts},
        )

    def _write_out(
        self,
        ctx: Context,
        operation: str,
        *,
        expected_size: int,
        expected_etag: str | None,
        body: bytes | None = None,
        **params: Any,
    ) -> Reply:
        """PutObject or CompleteMultipartUpload, under the write condition. A retry after an attempt that got
        no definite answer may find the condition failed or the upload gone because that attempt succeeded:
        the object is then checked to be exactly the one this write makes."""
        bodiless = operation == "PutObject"
        ambiguous = False

        def attempt(_tries: retries.Tries) -> Reply:
            nonlocal ambiguous
            try:
                return self._call(
                    ctx, operation, body=body, retry=False, bodiless=bodiless, **self._condition, **params
                )
            except S3_ERRORS as exc:
                if ambiguous and code_of(exc) in ("PreconditionFailed", "NoSuchUpload", "412", "404"):
                    head = self._head(ctx)
                    if head is not None and head[0] == expected_size and head[1] == expected_etag:
                        return head[2]
                status = status_of(exc)
                ambiguous = ambiguous or status is None or status >= 500
                raise

        try:
            return retries.retry(ctx, self.s3.policy, attempt, self.s3.judge(ctx))
        except S3_ERRORS as exc:
            raise self._failure(exc, operation) from exc

    # ------------------------------------------------------------ opening

    def _refuse_existing(self, ctx: Context) -> None:
        cfg = self.config
        reply = self._call(ctx, "ListObjectsV2", Prefix=cfg.path, MaxKeys=1)
        if any(item.get("Key") == cfg.path for item in reply.parsed.get("Contents", [])):
            raise ConfigError(
                f"s3 sink: {cfg.uri} already exists; set `overwrite: true` to replace it, or set `path` to a new object"
            )

    def _abort_dangling(self, ctx: Context) -> None:
        """Abort the multipart uploads a crashed attempt left open for this key: their parts were never made
        part of the object, and the rows in them come again."""
        cfg = self.config
        markers: dict[str, str] = {}
        while True:
            reply = self._call(ctx, "ListMultipartUploads", Prefix=cfg.path, **markers)
            for upload in reply.parsed.get("Uploads", []):
                if upload.get("Key") == cfg.path:
                    self._call(ctx, "AbortMultipartUpload", bodiless=True, UploadId=upload["UploadId"])
            if not reply.parsed.get("IsTruncated"):
                return
            markers = {
                "KeyMarker": reply.parsed.get("NextKeyMarker", ""),
                "UploadIdMarker": reply.parsed.get("NextUploadIdMarker", ""),
            }

    def _reopen(self, ctx: Context, state: Mapping[str, Any]) -> None:
        cfg = self.config
        size, row_count, content_hash = state.get("size"), state.get("row_count"), state.get("content_hash")
        if not (isinstance(size, int) and isinstance(row_count, int) and isinstance(content_hash, str)):
            raise ResumeError(
                f"s3 sink: the resume state {dict(state)!r} for {cfg.uri} was not written by this sink (it needs "
                "size, row_count and content_hash)"
            )
        head = self._head(ctx)
        if head is None:
            raise ResumeError(
                f"s3 sink: cannot resume: {cfg.uri} is gone, but the earlier attempt had made {size} bytes durable "
                "there; restore the object, or start a new run"
            )
        stored_size, etag, _ = head
        if stored_size < size:
            raise ResumeError(
                f"s3 sink: cannot resume: {cfg.uri} has {stored_size} bytes, but the earlier attempt had made {size} "
                "bytes durable there; the object was cut short since: restore it, or start a new run"
            )
        small = self._rehash(ctx, size, etag)
        if self._sha256.hexdigest() != content_hash:
            raise ResumeError(
                f"s3 sink: cannot resume: the first {size} bytes of {cfg.uri} are not the ones the earlier attempt "
                "made durable (their sha256 differs); the object was changed since: restore it, or start a new run"
            )
        self._size, self._row_count = size, row_count
        self._stored = _Stored(size, row_count, content_hash, etag, small)
        self._condition = {"IfMatch": str(etag)}
        if stored_size > size:
            # A write-out the engine never recorded: its rows come again, so the object goes back to `size`.
            self._rebuild(ctx)

    def _rehash(self, ctx: Context, size: int, etag: str) -> bytes | None:
        """Read the first `size` bytes into the running sha256; returns them when fewer than MIN_PART."""
        cfg = self.config
        kept = bytearray() if size < MIN_PART else None
        offset = 0
        while offset < size:
            end = min(offset + self.part_size, size) - 1
            expected = end - offset + 1

            def check(reply: Reply, expected: int = expected) -> None:
                if len(reply.body) != expected:
                    raise MalformedResponse(f"s3 sink: asked for {expected} bytes of {cfg.uri}, got {len(reply.body)}")

            reply = self._call(
                ctx, "GetObject", streaming=True, validate=check, Range=f"bytes={offset}-{end}", IfMatch=etag
            )
            self._sha256.update(reply.body)
            if kept is not None:
                kept += reply.body
            offset += len(reply.body)
        return bytes(kept) if kept is not None else None

    def _rebuild(self, ctx: Context) -> None:
        """Make the object its own first `_stored.size` bytes: re-sent when they are in memory (fewer than
        MIN_PART), else copied server side."""
        stored = self._stored
        if stored.small is not None:
            reply = self._write_out(
                ctx,
                "PutObject",
                body=stored.small,
                expected_size=stored.size,
                expected_etag=f'"{hashlib.md5(stored.small).hexdigest()}"',
            )
        else:
            self._begin(ctx)
            reply = self._complete(ctx, stored.size)
            self._upload = None
        stored.etag = reply.etag
        self._condition = {"IfMatch": str(stored.etag)}

    def _head(self, ctx: Context) -> tuple[int, str, Reply] | None:
        """Size and ETag of the object, or None when there is none."""
        cfg = self.config
        try:
            reply = self.s3.request(ctx, "HeadObject", bodiless=True, Bucket=cfg.bucket, Key=cfg.path)
        except ClientError as exc:
            if status_of(exc) == 404:
                return None
            raise self._failure(exc, "HeadObject") from exc
        except (BotoCoreError, ResponseParserError, MalformedResponse) as exc:
            raise self._failure(exc, "HeadObject") from exc
        return int(reply.parsed["ContentLength"]), reply.etag, reply

    # ------------------------------------------------------------ plumbing

    def _call(self, ctx: Context, operation: str, **params: Any) -> Reply:
        cfg = self.config
        if operation != "ListObjectsV2" and operation != "ListMultipartUploads":
            params["Key"] = cfg.path
        try:
            return self.s3.request(ctx, operation, Bucket=cfg.bucket, **params)
        except S3_ERRORS as exc:
            if params.get("retry") is False:
                raise
            raise self._failure(exc, operation) from exc

    def _failure(self, exc: BaseException, operation: str) -> BaseException:
        cfg = self.config
        if status_of(exc) == 412 and operation in ("PutObject", "CompleteMultipartUpload", "UploadPartCopy"):
            return ElspethError(
                f"s3 sink: {cfg.uri} was changed by someone else since this sink last wrote it ({operation} "
                "refused: precondition failed); give each sink its own `path`"
            )
        err = explained(exc, who="s3 sink", uri=cfg.uri, bucket=cfg.bucket, permission=_PERMISSIONS)
        if err is exc:
            return ElspethError(f"s3 sink: {operation} on {cfg.uri} failed: {exc}")
        return err

    def _check_open(self) -> None:
        if not self._opened:
            raise ElspethError(f"s3 sink: write() or flush() before open() ({self.config.uri})")

    def _restore_fields(self, state: Mapping[str, Any]) -> None:
        if self._csv is None:
            return
        self._csv.restore(state.get("fields"))
