"""Rows to bytes, exactly as elspeth's local `csv` and `jsonl` sinks write them, so the same rows give the
same bytes (and the same content hash) whether they land in a file or in S3. The local sinks' encoders are
methods of file-bound classes, so the few lines are repeated here; tests compare the bytes with theirs."""

from __future__ import annotations

import csv
import io
import math
from typing import Any

from elspeth.api import Row
from elspeth.canonical import dumps
from elspeth.errors import ElspethError, NonCanonicalValueError


def jsonl_bytes(rows: list[Row]) -> bytes:
    """Each row as one line of compact JSON (UTF-8), keys in row order."""
    return "".join([dumps(row) + "\n" for row in rows]).encode("utf-8")


def _cell(column: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        raise NonCanonicalValueError(f"s3 sink: column {column!r} is {value!r}, which is not a number")
    if isinstance(value, int | float):
        return repr(value)
    return dumps(value)


class CsvEncoder:
    """CSV lines (UTF-8) under one header, written at the very start of the object. None is written empty;
    lists and dicts as JSON. The columns are the `fields` option, or the keys of the first row."""

    def __init__(self, fields: list[str] | None, delimiter: str, where: str) -> None:
        self.delimiter = delimiter
        self.where = where
        self.fields: list[str] | None = None
        self._known: frozenset[str] = frozenset()
        if fields is not None:
            self.set_fields(fields)

    def set_fields(self, fields: list[str]) -> None:
        self.fields = list(fields)
        self._known = frozenset(fields)

    def encode(self, rows: list[Row], *, at_start: bool) -> bytes:
        if self.fields is None:
            if not rows:
                return b""
            self.set_fields(list(rows[0]))
        fields = self.fields
        assert fields is not None
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=self.delimiter)
        if at_start:
            writer.writerow(fields)
        for row in rows:
            if not row.keys() <= self._known:
                extra = next(key for key in row if key not in self._known)
                raise ElspethError(
                    f"s3 sink: a row has field {extra!r}, which is not a column of {self.where} "
                    f"(columns: {', '.join(fields)}); list it in the sink's `fields` option, or drop or rename it "
                    "with a field_map transform"
                )
            writer.writerow([_cell(col, row.get(col)) for col in fields])
        return buffer.getvalue().encode("utf-8")
