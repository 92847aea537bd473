"""The `csv` source and sink: CSV files on the local disk, read and written with `elspeth.formats`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from attrs import field, frozen

from elspeth.api import Context, Quarantine, Row, Source
from elspeth.formats import DEFAULT_MAX_FIELD_SIZE, CsvEncoder, Origin, open_text, read_csv
from elspeth.options import known_encoding, no_duplicates, positive, single_character, values_one_of
from elspeth.plugins.local_file_sink import LocalFileSink, LocalFileSinkConfig


@frozen
class CsvSourceConfig:
    path: str
    delimiter: str = field(default=",", validator=single_character)
    encoding: str = field(default="utf-8", validator=known_encoding)
    types: dict[str, str] = field(factory=dict, validator=values_one_of("int", "float", "bool", "str"))
    """Column -> int, float, bool or str (the default). An empty value becomes None."""
    max_field_size: int = field(default=DEFAULT_MAX_FIELD_SIZE, validator=positive)
    """Characters one field may hold; a record with a longer one is quarantined."""


class CsvSource(Source):
    """Rows of a CSV file with a header line, as dicts in column order. Malformed records are quarantined."""

    name = "csv"
    config_class = CsvSourceConfig
    config: CsvSourceConfig

    def load(self, ctx: Context) -> Iterator[Row | Quarantine]:
        cfg = self.config
        with open_text(cfg.path, cfg.encoding, kind="csv source", newline="") as f:
            yield from read_csv(f, cfg, Origin("csv source", cfg.path))


@frozen
class CsvSinkConfig(LocalFileSinkConfig):
    delimiter: str = field(default=",", validator=single_character)
    fields: list[str] | None = field(default=None, validator=no_duplicates)
    """Columns in order; default: the keys of the first row written."""


class CsvSink(LocalFileSink):
    """Rows as CSV lines (UTF-8) under one header. None is written empty; lists and dicts as JSON."""

    name = "csv"
    config_class = CsvSinkConfig
    config: CsvSinkConfig

    def __init__(self, config: CsvSinkConfig) -> None:
        super().__init__(config)
        self._encoder = CsvEncoder(config.delimiter, config.fields, kind="csv sink", where=self.path)

    def encode(self, rows: list[Row]) -> bytes:
        return self._encoder.encode(rows, header=self.size == 0)

    def resume_extra(self) -> dict[str, Any]:
        return {"fields": self._encoder.fields}

    def restore(self, state: Mapping[str, Any]) -> None:
        self._encoder.restore(state.get("fields"))
