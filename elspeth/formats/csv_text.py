"""CSV as rows and rows as CSV: `read_csv` (a header line, typed columns, malformed records quarantined) and
`CsvEncoder` (one header, None written empty, lists and dicts as JSON), for any plugin that reads or writes CSV,
wherever the bytes live."""

from __future__ import annotations

import csv
import io
import itertools
import math
from collections.abc import Callable, Iterator
from itertools import chain, compress, repeat
from operator import is_, itemgetter
from typing import Any, Protocol, TextIO

from elspeth.api import Quarantine, Row
from elspeth.canonical import dumps
from elspeth.errors import ConfigError, ElspethError, NonCanonicalValueError, ResumeError
from elspeth.formats.text import UNDECODABLE, Origin, show_undecodable

_MAX_SAFE_INT = 2**53 - 1
DEFAULT_MAX_FIELD_SIZE = 16 * 1024 * 1024
"""Characters in one CSV field; Python's own default (128 KiB) quarantines ordinary long texts."""
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})
_WRITTEN_AS_IS = frozenset({str, int, type(None)})
"""Cell types csv.writer writes as `_cell` would (a bool is not an int here: its type is bool)."""
_PLAIN_CELLS = _WRITTEN_AS_IS | {float}
"""The same, with floats that are finite."""


def _to_int(text: str) -> int | None:
    if text == "":
        return None
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an int") from None
    if abs(value) > _MAX_SAFE_INT:
        raise ValueError(f"{text} is beyond 2**53 and cannot be hashed exactly; leave the column as str")
    return value


def _to_float(text: str) -> float | None:
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def _to_bool(text: str) -> bool | None:
    if text == "":
        return None
    folded = text.strip().lower()
    if folded in _TRUE:
        return True
    if folded in _FALSE:
        return False
    raise ValueError(f"{text!r} is not a bool (true/false, yes/no, 1/0)")


_COERCIONS: dict[str, Callable[[str], Any]] = {"int": _to_int, "float": _to_float, "bool": _to_bool}


class _RecordText:
    """The text of the record csv.reader parsed last, so a bad record can be quarantined as it stands in the
    file. The reader reads `ahead`; `take` draws the same lines from `behind`, a copy held back by as many
    (csv.reader counts the lines it read), without a Python call per line in between."""

    def __init__(self, lines: TextIO) -> None:
        self.ahead, self._behind = itertools.tee(lines)
        self.taken = 0

    def take(self, line_num: int) -> tuple[int, str]:
        """The line number the record started on, and its text as read (line breaks included); `line_num`:
        the reader's count of lines read so far."""
        start, self.taken = self.taken + 1, line_num
        count = line_num - start + 1
        text = next(self._behind) if count == 1 else "".join(itertools.islice(self._behind, count))
        return start, text


class CsvReading(Protocol):
    """The options that say how CSV text becomes rows (those of the csv source, and of any source that
    reads CSV from elsewhere). A `max_field_size` attribute, if there is one, bounds a field's characters
    (default DEFAULT_MAX_FIELD_SIZE)."""

    @property
    def delimiter(self) -> str: ...

    @property
    def encoding(self) -> str: ...

    @property
    def types(self) -> dict[str, str]: ...


def read_csv(f: TextIO, options: CsvReading, origin: Origin) -> Iterator[Row | Quarantine]:
    """Rows of CSV text with a header line, as dicts in column order; malformed records are quarantined.
    `f` is opened with newline="" (`open_text`, `text_stream`)."""
    records = _RecordText(f)
    reader = csv.reader(records.ahead, delimiter=options.delimiter, strict=True)
    limit: int = getattr(options, "max_field_size", DEFAULT_MAX_FIELD_SIZE)
    csv.field_size_limit(limit)
    header = _header(reader, records, options, origin)
    if not header:
        return
    coercions = [(col, _COERCIONS[kind]) for col, kind in options.types.items() if kind != "str"]
    take = records.take
    while True:
        # The limit is the csv module's, for the whole process: set it for every record, so that two
        # sources read in turn each keep their own.
        csv.field_size_limit(limit)
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            line, text = take(reader.line_num)
            reason = f"line {line}: malformed CSV: {exc}"
            if "field limit" in str(exc):
                reason = (
                    f"line {line}: a field is longer than {limit:,} characters; raise the "
                    "`max_field_size` option if such fields are real data"
                )
            yield _quarantine(text, reason, options)
            continue
        line, text = take(reader.line_num)
        if not values:
            continue
        # Bytes the encoding rejected are lone surrogates: never in ASCII text (which str knows without a scan).
        if not text.isascii() and UNDECODABLE.search(text):
            yield _quarantine(
                text,
                f"line {line}: not valid {options.encoding} (bad bytes shown as \\xNN); fix the {origin.noun}, "
                f"or set the `encoding` option to the {origin.noun}'s encoding",
                options,
            )
            continue
        if len(values) != len(header):
            yield _quarantine(
                text, f"line {line}: the header has {len(header)} fields, this record {len(values)}", options
            )
            continue
        row: Row = dict(zip(header, values, strict=False))  # as long as each other: checked above
        try:
            for col, coerce in coercions:
                row[col] = coerce(row[col])
        except ValueError as exc:
            yield _quarantine(text, f"line {line}: column {col!r}: {exc}", options)
            continue
        yield row


def _header(reader: Any, records: _RecordText, options: CsvReading, origin: Origin) -> list[str]:
    kind, where = origin.kind, origin.where
    try:
        header: list[str] = next((values for values in reader if values), [])
    except csv.Error as exc:
        raise ConfigError(f"{kind}: the header of {where} is not valid CSV ({exc}); fix the {origin.noun}") from None
    _, text = records.take(reader.line_num)
    if not header:
        return header
    if UNDECODABLE.search(text):
        raise ConfigError(
            f"{kind}: the header of {where} is not valid {options.encoding}; "
            f"set the `encoding` option to the {origin.noun}'s encoding"
        )
    seen: set[str] = set()
    for col in header:
        if col in seen:
            raise ConfigError(f"{kind}: column {col!r} appears twice in the header of {where}; rename one")
        seen.add(col)
    for col in options.types:
        if col not in seen:
            raise ConfigError(
                f"{kind}: option `types` names {col!r}, which is not a column of {where} (columns: {', '.join(header)})"
            )
    return header


def _quarantine(text: str, reason: str, options: CsvReading) -> Quarantine:
    return Quarantine(raw=show_undecodable(text.rstrip("\r\n"), options.encoding), reason=reason)


def _cell(column: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        raise NonCanonicalValueError(f"csv sink: column {column!r} is {value!r}, which is not a number")
    if isinstance(value, int | float):
        return repr(value)
    return dumps(value)


class CsvEncoder:
    """Rows as CSV bytes (UTF-8) under one header, wherever they are stored: None is written empty, lists
    and dicts as JSON. `kind` and `where` name the sink and its destination in messages."""

    def __init__(self, delimiter: str, fields: list[str] | None, *, kind: str, where: str) -> None:
        self.delimiter = delimiter
        self.wanted = fields
        self.kind = kind
        self.where = where
        self.fields: list[str] | None = None
        self._known: frozenset[str] = frozenset()
        self._getter: Callable[[Row], tuple[Any, ...]] | None = None
        """The cells of a row in column order, for two columns or more (itemgetter of one gives the cell)."""
        if fields is not None:
            self._set_fields(list(fields))

    def encode(self, rows: list[Row], *, header: bool) -> bytes:
        """`rows` as CSV lines, after the header line when `header` (the destination is still empty)."""
        fields = self.fields
        if fields is None:
            if not rows:
                return b""
            fields = self._set_fields(list(rows[0]))
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=self.delimiter)
        if header:
            writer.writerow(fields)
        plain = self._plain(rows)
        if plain is not None:
            writer.writerows(plain)
            return buffer.getvalue().encode("utf-8")
        for row in rows:
            if not row.keys() <= self._known:
                extra = next(key for key in row if key not in self._known)
                raise ElspethError(
                    f"{self.kind}: a row has field {extra!r}, which is not a column of {self.where} "
                    f"(columns: {', '.join(fields)}); list it in the sink's `fields` option, or drop or "
                    "rename it with a field_map transform"
                )
            # Text, ints, None and finite floats (a NaN or an infinity less itself is not 0), most cells, go to
            # csv.writer as they are, without a call per cell: it writes None empty and numbers by repr, as
            # _cell would.
            cells = map(row.get, fields)
            writer.writerow(
                [
                    v if type(v) in _WRITTEN_AS_IS or (type(v) is float and v - v == 0) else _cell(col, v)
                    for col, v in zip(fields, cells, strict=True)
                ]
            )
        return buffer.getvalue().encode("utf-8")

    def _plain(self, rows: list[Row]) -> list[tuple[Any, ...]] | None:
        """The cells of `rows` in column order, when every row holds every column and nothing else, and every
        cell is text, an int, None or a finite float (the sum of finite floats is finite or overflows, and
        one NaN or infinity in it makes it neither): csv.writer writes them as `_cell` would, and the whole
        batch goes to it without a Python call per row. None otherwise: the rows take the path row by row."""
        getter, width = self._getter, len(self._known)
        if getter is None:
            return None
        if not all(map(self._known.issuperset, rows)) or not all(map(width.__eq__, map(len, rows))):
            return None
        plain = list(map(getter, rows))
        cells = list(chain.from_iterable(plain))
        if not _PLAIN_CELLS.issuperset(map(type, cells)):
            return None
        if not math.isfinite(sum(compress(cells, map(is_, map(type, cells), repeat(float))))):
            return None
        return plain

    def restore(self, stored: list[str] | None) -> None:
        """Take back the columns an earlier attempt wrote under (None: it wrote nothing)."""
        wanted = self.wanted
        if stored is not None and wanted is not None and list(stored) != wanted:
            raise ResumeError(
                f"{self.kind}: {self.where} was started with columns {list(stored)}, but option `fields` is now "
                f"{wanted}; set it back to resume, or start a new run"
            )
        if stored is not None:
            self._set_fields(list(stored))

    def _set_fields(self, fields: list[str]) -> list[str]:
        self.fields = fields
        self._known = frozenset(fields)
        self._getter = itemgetter(*fields) if len(fields) > 1 else None
        return fields
