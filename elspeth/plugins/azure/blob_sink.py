"""The `azure_blob` sink: rows appended to one block blob, as CSV or JSON Lines.

Each `write()` encodes its rows exactly as the csv/jsonl file sinks would and stages them as ONE block
(Put Block), with an id derived from the block's number; nothing written earlier is sent again, and no
more than one batch is held in memory. `flush()` commits every block staged so far, in order (Put Block
List), which is what makes them durable: so many writes never overwrite each other, and the artifact's
hash and size, kept up to date incrementally, describe every committed byte.

Resuming from an artifact's state reads the committed blob back (streamed) to restore the hash, checks it
is the one the earlier attempt made durable, drops committed blocks that attempt added after it (a crash
between commit and the engine's record), and goes on numbering blocks after it. Blocks staged and never
committed are not part of the blob; the next commit discards them.

Commits are conditional on the blob's etag (or on its absence), so a blob changed by something else since
this sink last saw it is an error, not silently overwritten; a retried commit whose first answer was lost
is recognised by its block list. A fresh run refuses an existing blob unless `overwrite: true`. Each commit
puts the run id in the blob's metadata, so a resumed run that never flushed knows the blob it finds is its
own. `blob_path` may hold `{run_id}` and `{date}` (UTC, of the run's first attempt: the resume state keeps
the name).
"""

from __future__ import annotations

import hashlib
import string
import time
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar
from urllib.parse import unquote

from attrs import field, frozen

from elspeth.api import Artifact, Capability, Context, Location, Row, Sink
from elspeth.errors import ConfigError, ElspethError, ResumeError
from elspeth.formats import CsvEncoder, encode_jsonl
from elspeth.options import no_duplicates, single_character
from elspeth.plugins.azure.blob_auth import (
    BlobAccessConfig,
    blob_client,
    blob_location,
    blob_name_problem,
    blob_url,
)
from elspeth.plugins.azure.blob_calls import BlobCalls, error_code_of, status_of
from elspeth.plugins.azure.blob_source import format_of

_FORMATS = ("csv", "jsonl")
_TEMPLATE_FIELDS = frozenset({"run_id", "date"})
_RUN_METADATA = "elspeth_run_id"
MAX_BLOCKS = 50_000
"""Committed blocks a block blob may hold."""


def template_problem(template: str) -> str | None:
    """Why `template` is not a blob_path template of literal text, `{run_id}` and `{date}`, or None."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        return f"it is not a valid template ({exc}); write a literal brace as {{{{ or }}}}"
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in _TEMPLATE_FIELDS or spec or conversion:
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            return f"it uses {shown}; only {{run_id}} and {{date}} (YYYY-MM-DD, UTC) may be filled in"
    return blob_name_problem(template.format_map({"run_id": "r", "date": "2000-01-01"}))


def block_id(number: int) -> str:
    """The id of the `number`-th block (from 0). The SDK sends it base64-encoded; all ids of a blob must
    have the same length, hence the fixed width."""
    return f"{number:08d}"


@frozen
class AzureBlobSinkConfig(BlobAccessConfig):
    format: str | None = None
    """csv or jsonl; default: from the blob's extension."""
    fields: list[str] | None = field(default=None, validator=no_duplicates)
    """csv only: columns in order; default: the keys of the first row written."""
    delimiter: str = field(default=",", validator=single_character)
    """csv only."""
    overwrite: bool = False
    """What a fresh run does when the blob already exists: refuse (false) or replace it (true)."""

    def __attrs_post_init__(self) -> None:
        problem = template_problem(self.blob_path)
        if problem:
            raise ConfigError(f"option `blob_path` is {self.blob_path!r}, which cannot be written: {problem}")
        super().__attrs_post_init__()
        if self.resolved_format != "csv":
            if self.fields is not None:
                raise ConfigError("option `fields` applies to format csv only; drop it")
            if self.delimiter != ",":
                raise ConfigError("option `delimiter` applies to format csv only; drop it")

    @property
    def resolved_format(self) -> str:
        return format_of(self.blob_path, self.format, _FORMATS)


class AzureBlobSink(Sink):
    """Rows appended to one block blob: one staged block per write(), all committed at each flush()."""

    name = "azure_blob"
    config_class = AzureBlobSinkConfig
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.EXTERNAL_CALLS, Capability.RESUMABLE, Capability.DETERMINISTIC}
    )
    config: AzureBlobSinkConfig

    @classmethod
    def locations(cls, config: AzureBlobSinkConfig) -> list[Location]:
        return blob_location(config, writes=True)

    def __init__(self, config: AzureBlobSinkConfig) -> None:
        super().__init__(config)
        self.blob_path: str | None = None
        self._calls: BlobCalls | None = None
        self._csv: CsvEncoder | None = None
        self._committed: list[str] = []
        self._staged: list[str] = []
        self._sha256 = hashlib.sha256()
        self._size = 0
        self._row_count = 0
        self._etag: str | None = None
        """The blob's etag as this sink last saw it; None while it does not exist."""
        self._in_sync = False
        """The blob's content is exactly the blocks in `_committed`."""

    # ------------------------------------------------------------ the Sink contract

    def open(self, ctx: Context, resume: Mapping[str, Any] | None) -> None:
        cfg = self.config
        self.blob_path = self._blob_path(ctx, resume)
        calls = self._calls = BlobCalls(cfg, blob_client(cfg, self.blob_path), kind="azure_blob sink")
        if cfg.resolved_format == "csv":
            self._csv = CsvEncoder(cfg.delimiter, cfg.fields, kind="azure_blob sink", where=calls.where)
            self._csv.restore((resume or {}).get("fields"))
        if resume:
            self._continue(ctx, resume)
            return
        exists, owner = self._properties(ctx)
        if exists and not cfg.overwrite and not (resume is not None and owner == ctx.run_id):
            raise ConfigError(
                f"azure_blob sink: {calls.where} already exists ({calls.url}); set `overwrite: true` to replace "
                "it, or set `blob_path` to a new blob"
            )
        if exists and resume is not None:
            # The earlier attempt never flushed as far as the engine knows: what it committed goes.
            self._commit(ctx, [])

    def write(self, rows: list[Row], ctx: Context) -> None:
        calls = self._ready()
        data = self._csv.encode(rows, header=self._size == 0) if self._csv is not None else encode_jsonl(rows)
        if not data:
            return
        number = len(self._committed) + len(self._staged)
        if number >= MAX_BLOCKS:
            raise ElspethError(
                f"azure_blob sink: {calls.where} would need more than {MAX_BLOCKS:,} blocks (one per write), the "
                "most a block blob holds; raise `engine.write_batch_rows` so that each write carries more rows"
            )
        block = block_id(number)
        try:
            calls.run(
                ctx,
                "stage_block",
                lambda hooks: calls.client.stage_block(block, data, length=len(data), **hooks),
                details={"block_id": block, "block_number": number, "length": len(data)},
            )
        except Exception as exc:
            raise self._explain(exc, "staging a block of") from exc
        self._staged.append(block)
        self._sha256.update(data)
        self._size += len(data)
        self._row_count += len(rows)

    def flush(self, ctx: Context) -> Artifact:
        calls = self._ready()
        if self._staged or not self._in_sync:
            self._commit(ctx, self._committed + self._staged, staged=len(self._staged))
        self._committed += self._staged
        self._staged = []
        content_hash = self._sha256.hexdigest()
        resume: dict[str, Any] = {
            "blob_path": self.blob_path,
            "blocks": list(self._committed),
            "size": self._size,
            "row_count": self._row_count,
            "content_hash": content_hash,
        }
        if self._csv is not None:
            resume["fields"] = self._csv.fields
        return Artifact(
            uri=calls.url, content_hash=content_hash, size=self._size, row_count=self._row_count, resume=resume
        )

    def read_back(self, uri: str, ctx: Context) -> Iterator[bytes]:
        """The blob at `uri` (in this config's container), streamed `chunk_bytes` per ranged GET."""
        cfg = self.config
        container_url = blob_url(blob_client(cfg, "-")).rsplit("/", 1)[0] + "/"
        name = unquote(uri.removeprefix(container_url))
        if not uri.startswith(container_url) or blob_url(blob_client(cfg, name)) != uri:
            raise ElspethError(
                f"azure_blob sink: {uri} is not a blob of container {cfg.container!r} at {container_url}; verify "
                "with the settings of the run that wrote it (--settings)"
            )
        calls = BlobCalls(cfg, blob_client(cfg, name), kind="azure_blob sink")
        try:
            yield from calls.download(ctx)
        except ElspethError:
            raise
        except Exception as exc:
            raise calls.explain(exc, "reading back", permission="read (r)") from exc
        finally:
            calls.client.close()

    def close(self) -> None:
        if self._calls is not None:
            self._calls.client.close()
            self._calls = None

    # ------------------------------------------------------------ opening

    def _blob_path(self, ctx: Context, resume: Mapping[str, Any] | None) -> str:
        stored = (resume or {}).get("blob_path")
        if isinstance(stored, str):
            # The run's first attempt decided it: a resume on another day writes the same blob.
            path = stored
        else:
            date = time.strftime("%Y-%m-%d", time.gmtime(ctx.clock.now()))
            path = self.config.blob_path.format_map({"run_id": ctx.run_id, "date": date})
        problem = blob_name_problem(path)
        if problem:
            raise ConfigError(f"azure_blob sink: `blob_path` gives {path!r}, which cannot be written: {problem}")
        return path

    def _properties(self, ctx: Context) -> tuple[bool, str | None]:
        """Whether the blob exists, and the run that last committed it (from its metadata)."""
        calls = self._ready()
        try:
            props = calls.run(ctx, "get_blob_properties", lambda hooks: calls.client.get_blob_properties(**hooks))
        except Exception as exc:
            if error_code_of(exc) == "BlobNotFound" or (status_of(exc) == 404 and error_code_of(exc) is None):
                self._etag = None
                return False, None
            raise self._explain(exc, "looking up") from exc
        self._etag = props.etag
        return True, (props.metadata or {}).get(_RUN_METADATA)

    def _continue(self, ctx: Context, state: Mapping[str, Any]) -> None:
        calls = self._ready()
        blocks, size, row_count, content_hash = (state.get(k) for k in ("blocks", "size", "row_count", "content_hash"))
        if not (
            isinstance(blocks, list)
            and all(isinstance(b, str) for b in blocks)
            and isinstance(size, int)
            and isinstance(row_count, int)
            and isinstance(content_hash, str)
        ):
            raise ResumeError(
                f"azure_blob sink: the resume state for {calls.where} was not written by this sink (it needs "
                "blocks, size, row_count and content_hash)"
            )
        gone = (
            f"azure_blob sink: cannot resume: {calls.where} ({calls.url}) is not what the earlier attempt made durable"
        )
        try:
            committed, _ = calls.run(
                ctx, "get_block_list", lambda hooks: calls.client.get_block_list("committed", **hooks)
            )
        except Exception as exc:
            if status_of(exc) == 404 and error_code_of(exc) != "ContainerNotFound":
                raise ResumeError(f"{gone}: it is gone; restore it, or start a new run") from exc
            raise self._explain(exc, "reading the block list of") from exc
        self._etag = calls.last_headers.get("etag")
        ids = [b.id for b in committed]
        if ids[: len(blocks)] != blocks or sum(b.size for b in committed[: len(blocks)]) != size:
            raise ResumeError(
                f"{gone}: its committed blocks are not those the earlier attempt committed ({len(blocks)} blocks, "
                f"{size} bytes); it was changed since: restore it, or start a new run"
            )
        try:
            for chunk in calls.download(ctx, offset=0, length=size):
                self._sha256.update(chunk)
        except Exception as exc:
            raise self._explain(exc, "reading back") from exc
        if self._sha256.hexdigest() != content_hash:
            raise ResumeError(
                f"{gone}: its first {size} bytes do not hash to the sha256 the earlier attempt recorded; it was "
                "changed since: restore it, or start a new run"
            )
        self._size, self._row_count = size, row_count
        if len(ids) > len(blocks):
            # Committed after the engine's last record of it: those rows come again, so the blocks go.
            self._commit(ctx, list(blocks), staged=0)
        self._committed = list(blocks)
        self._in_sync = True

    # ------------------------------------------------------------ committing

    def _commit(self, ctx: Context, ids: list[str], staged: int = 0) -> None:
        """Commit `ids` as the blob's content: all but the last `staged` already committed, those staged
        since. Conditional on the etag last seen (or on the blob's absence).

        The ids go as <Latest> (the SDK sends that whatever BlockState it is given): an uncommitted block of
        an id, else the committed one. That is exact here: an id in the list either was staged by this
        attempt after its last commit, or is committed and was never staged again (a crashed attempt's
        staged blocks have ids past what it committed, and a resume starts numbering at the end of what
        it verified), and every commit discards whatever uncommitted blocks it did not list."""
        from azure.core import MatchConditions
        from azure.storage.blob import BlobBlock

        calls = self._ready()
        blocks = [BlobBlock(block) for block in ids]
        if self._etag is None:
            condition: dict[str, Any] = {} if self.config.overwrite else {"match_condition": MatchConditions.IfMissing}
        else:
            condition = {"etag": self._etag, "match_condition": MatchConditions.IfNotModified}
        run_id = ctx.run_id

        def settled(exc: BaseException) -> bool:
            # A retried commit refused for its condition: did the attempt whose answer was lost commit it?
            if status_of(exc) not in (409, 412):
                return False
            now, _ = calls.run(ctx, "get_block_list", lambda hooks: calls.client.get_block_list("committed", **hooks))
            return [b.id for b in now] == ids

        try:
            calls.run(
                ctx,
                "commit_block_list",
                lambda hooks: calls.client.commit_block_list(
                    blocks, metadata={_RUN_METADATA: run_id}, **condition, **hooks
                ),
                details={"block_ids": ids, "staged": staged},
                settled=settled,
            )
        except Exception as exc:
            if status_of(exc) in (409, 412):
                raise ElspethError(
                    f"azure_blob sink: {calls.where} ({calls.url}) was changed by something else since this sink "
                    f"last saw it ({error_code_of(exc) or status_of(exc)}); nothing was committed over it: give "
                    "each sink its own `blob_path`, then resume the run"
                ) from exc
            raise self._explain(exc, "committing the blocks of") from exc
        self._etag = calls.last_headers.get("etag")
        self._in_sync = True

    # ------------------------------------------------------------ helpers

    def _ready(self) -> BlobCalls:
        if self._calls is None:
            raise ElspethError(f"azure_blob sink: write() or flush() before open() ({self.config.blob_path})")
        return self._calls

    def _explain(self, exc: BaseException, doing: str) -> ElspethError:
        return self._ready().explain(exc, doing, permission="read, create and write (rcw)")
