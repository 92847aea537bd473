"""What the local-file sinks share: append-only writes, a running sha256 over every byte in the file, and
resuming from the size that the last flushed artifact recorded. A new file is created at the first write or
flush, not at open: a run that fails before it wrote anything leaves no empty file behind to refuse a rerun."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Mapping
from typing import IO, Any, ClassVar

from attrs import field, frozen

from elspeth.api import Artifact, Capability, Context, Row, Sink
from elspeth.errors import ConfigError, ElspethError, ResumeError
from elspeth.options import one_of

_CHUNK = 1 << 20


@frozen
class LocalFileSinkConfig:
    path: str
    if_exists: str = field(default="fail", validator=one_of("fail", "overwrite"))
    """What a fresh run does when `path` already exists."""


class LocalFileSink(Sink):
    """Appends encoded rows to one file. Subclasses say how rows become bytes (`encode`) and what else they
    need to resume (`resume_extra`, `restore`)."""

    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.DETERMINISTIC, Capability.RESUMABLE})
    config: LocalFileSinkConfig

    def __init__(self, config: LocalFileSinkConfig) -> None:
        super().__init__(config)
        self.path = os.path.abspath(config.path)
        self._file: IO[bytes] | None = None
        self._opened = False
        self._overwrite = False
        self._sha256 = hashlib.sha256()
        self._size = 0
        self._row_count = 0
        self._dir_synced = True

    @property
    def size(self) -> int:
        """Bytes in the file so far, including what is not yet flushed."""
        return self._size

    def encode(self, rows: list[Row]) -> bytes:
        raise NotImplementedError

    def resume_extra(self) -> dict[str, Any]:
        """Subclass state to keep in the artifact's `resume` mapping beside size, row count and hash."""
        return {}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Take back what `resume_extra` returned; `state` is {} when the file starts from empty."""

    def open(self, ctx: Context, resume: Mapping[str, Any] | None) -> None:
        self.restore(resume or {})
        self._opened = True
        if resume:
            self._file = self._reopen(resume)
            return
        # An earlier attempt that never flushed (resume == {}) committed nothing of whatever it left there.
        self._overwrite = resume is not None or self.config.if_exists == "overwrite"
        if not self._overwrite and os.path.lexists(self.path):
            raise self._exists()

    def write(self, rows: list[Row], ctx: Context) -> None:
        data = self.encode(rows)
        self._handle().write(data)
        self._sha256.update(data)
        self._size += len(data)
        self._row_count += len(rows)

    def flush(self, ctx: Context) -> Artifact:
        f = self._handle()
        f.flush()
        os.fsync(f.fileno())
        on_disk = os.fstat(f.fileno()).st_size
        if on_disk != self._size:
            raise ElspethError(
                f"{self.name} sink: {self.path} holds {on_disk} bytes but this sink wrote {self._size}; "
                "something else is writing to it: give each sink its own `path`"
            )
        if not self._dir_synced:
            self._fsync_dir()
        content_hash = self._sha256.hexdigest()
        return Artifact(
            uri="file://" + self.path,
            content_hash=content_hash,
            size=self._size,
            row_count=self._row_count,
            resume={
                "size": self._size,
                "row_count": self._row_count,
                "content_hash": content_hash,
                **self.resume_extra(),
            },
        )

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _handle(self) -> IO[bytes]:
        if self._file is None:
            if not self._opened:
                raise ElspethError(f"{self.name} sink: write() or flush() before open() ({self.path})")
            self._file = self._create(overwrite=self._overwrite)
        return self._file

    def _create(self, *, overwrite: bool) -> IO[bytes]:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._dir_synced = False
        try:
            return open(self.path, "wb" if overwrite else "xb")
        except FileExistsError:
            raise self._exists() from None

    def _exists(self) -> ConfigError:
        return ConfigError(
            f"{self.name} sink: {self.path} already exists; set `if_exists: overwrite` to replace it, "
            "or set `path` to a new file"
        )

    def _reopen(self, state: Mapping[str, Any]) -> IO[bytes]:
        size, row_count, content_hash = state.get("size"), state.get("row_count"), state.get("content_hash")
        if not (isinstance(size, int) and isinstance(row_count, int) and isinstance(content_hash, str)):
            raise ResumeError(
                f"{self.name} sink: the resume state {dict(state)!r} for {self.path} was not written by this "
                "sink (it needs size, row_count and content_hash)"
            )
        with contextlib.ExitStack() as on_error:
            try:
                f = on_error.enter_context(open(self.path, "r+b"))
            except FileNotFoundError:
                raise ResumeError(
                    f"{self.name} sink: cannot resume: {self.path} is gone, but the earlier attempt had made "
                    f"{size} bytes durable there; restore the file, or start a new run"
                ) from None
            self._rehash(f, size, content_hash)
            # Bytes past `size` come from an attempt that crashed before flushing; those rows come again.
            f.truncate(size)
            f.seek(size)
            on_error.pop_all()
        self._size, self._row_count = size, row_count
        return f

    def _rehash(self, f: IO[bytes], size: int, content_hash: str) -> None:
        remaining = size
        while remaining:
            chunk = f.read(min(_CHUNK, remaining))
            if not chunk:
                raise ResumeError(
                    f"{self.name} sink: cannot resume: {self.path} has {size - remaining} bytes, but the "
                    f"earlier attempt had made {size} bytes durable there; the output was cut short since: "
                    "restore the file, or start a new run"
                )
            self._sha256.update(chunk)
            remaining -= len(chunk)
        if self._sha256.hexdigest() != content_hash:
            raise ResumeError(
                f"{self.name} sink: cannot resume: the first {size} bytes of {self.path} are not the ones "
                "the earlier attempt made durable (their sha256 differs); the output was changed since: "
                "restore the file, or start a new run"
            )

    def _fsync_dir(self) -> None:
        """Make the new file's directory entry durable too (POSIX only: Windows cannot open a directory)."""
        if os.name == "posix":
            fd = os.open(os.path.dirname(self.path), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        self._dir_synced = True
