"""The `jsonl` source and sink (one JSON object per line, on the local disk), with `elspeth.formats`."""

from __future__ import annotations

from collections.abc import Iterator

from attrs import field, frozen

from elspeth.api import Context, Quarantine, Row, Source
from elspeth.formats import Origin, encode_jsonl, open_text, read_jsonl
from elspeth.options import known_encoding
from elspeth.plugins.local_file_sink import LocalFileSink, LocalFileSinkConfig


@frozen
class JsonlSourceConfig:
    path: str
    encoding: str = field(default="utf-8", validator=known_encoding)


class JsonlSource(Source):
    """One row per line, each a JSON object. Blank lines are skipped; bad lines are quarantined."""

    name = "jsonl"
    config_class = JsonlSourceConfig
    config: JsonlSourceConfig

    def load(self, ctx: Context) -> Iterator[Row | Quarantine]:
        encoding = self.config.encoding
        with open_text(self.config.path, encoding, kind="jsonl source", newline="\n") as f:
            yield from read_jsonl(f, encoding, Origin("jsonl source", self.config.path))


class JsonlSink(LocalFileSink):
    """Each row as one line of compact JSON (UTF-8), keys in row order."""

    name = "jsonl"
    config_class = LocalFileSinkConfig

    def encode(self, rows: list[Row]) -> bytes:
        return encode_jsonl(rows)
