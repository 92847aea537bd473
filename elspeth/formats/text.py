"""What the record sources share: opening the input (a file, or bytes arriving in chunks), and spotting and
showing bytes the encoding rejects."""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Iterable, Iterator
from typing import TextIO

from attrs import frozen

from elspeth.errors import ConfigError

# Undecodable bytes come through `surrogateescape` as lone surrogates, which a strict decode never yields.
UNDECODABLE = re.compile("[\ud800-\udfff]")


@frozen
class Origin:
    """Where records come from, for messages: `kind` is the plugin ("csv source"), `where` the input
    ("/data/in.csv", "blob 'in.csv' in container 'c'"), `noun` what the user fixes ("file", "blob")."""

    kind: str
    where: str
    noun: str = "file"


def _reading_encoding(encoding: str) -> str:
    # A UTF-8 byte-order mark is dropped: it is never data.
    return "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding


def open_text(path: str, encoding: str, *, kind: str, newline: str) -> TextIO:
    """Open `path` for streaming; bad bytes are kept (as surrogates) so one bad record cannot stop the read."""
    try:
        return open(path, encoding=_reading_encoding(encoding), errors="surrogateescape", newline=newline)
    except FileNotFoundError:
        raise ConfigError(f"{kind}: {path} does not exist; set the `path` option to an existing file") from None
    except IsADirectoryError:
        raise ConfigError(f"{kind}: {path} is a directory; set the `path` option to a file") from None


def text_stream(chunks: Iterable[bytes], encoding: str, *, newline: str) -> TextIO:
    """Bytes arriving in chunks (a download) as text, read exactly as `open_text` reads a file: the same
    decoding, line splitting and byte-order-mark handling, one chunk in memory at a time. Closing the
    stream closes `chunks` when it is a generator."""
    return io.TextIOWrapper(
        io.BufferedReader(_ChunkReader(iter(chunks))),
        encoding=_reading_encoding(encoding),
        errors="surrogateescape",
        newline=newline,
    )


class _ChunkReader(io.RawIOBase):
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                self._pending = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()
        super().close()


def show_undecodable(text: str, encoding: str) -> str:
    """`text` with each byte the encoding rejected written as \\xNN, so it can be stored as JSON."""
    return text.encode(encoding, "surrogateescape").decode(encoding, "backslashreplace")
