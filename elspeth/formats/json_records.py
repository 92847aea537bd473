"""JSON records as rows and rows as JSON Lines: `read_jsonl` (one object per line), `read_json_array` (a
top-level array of objects, streamed) and `encode_jsonl`, for any plugin that reads or writes them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, TextIO

from elspeth.api import Quarantine, Row
from elspeth.canonical import MAX_DEPTH, describe_non_canonical, dumps
from elspeth.errors import ConfigError
from elspeth.formats.text import UNDECODABLE, Origin, show_undecodable

_JSON_TYPES = {
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


class _Refused(ValueError):
    """JSON that json.loads would accept but that has no faithful, hashable meaning."""


def _refuse_constant(name: str) -> Any:
    raise _Refused(f"{name} is not valid JSON")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused(f"key {key!r} appears twice in one object")
            seen.add(key)
    return obj


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, object_pairs_hook=_object)


def _lone_surrogate(value: Any, path: str = "$") -> str | None:
    """Where a \\uD800-\\uDFFF escape left a string that is not Unicode and cannot be stored as UTF-8."""
    if isinstance(value, str):
        return f"{path}: contains a lone surrogate escape (\\ud800-\\udfff)" if UNDECODABLE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _lone_surrogate(key, f"{path} key") or _lone_surrogate(item, f"{path}.{key}")
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _lone_surrogate(item, f"{path}[{i}]")
            if found:
                return found
    return None


def _parse_object(text: str, encoding: str, noun: str = "file") -> Row:
    """One JSON object from `text`, or _Refused with the reason it cannot be a row."""
    if UNDECODABLE.search(text):
        raise _Refused(
            f"not valid {encoding} (bad bytes shown as \\xNN); fix the {noun}, or set the `encoding` option to "
            f"the {noun}'s encoding"
        )
    try:
        value = _DECODER.decode(text)
    except _Refused:
        raise
    except ValueError as exc:
        raise _Refused(f"not valid JSON: {exc}") from None
    except RecursionError:
        raise _Refused(f"nested deeper than {MAX_DEPTH} levels of lists and objects; flatten it") from None
    if not isinstance(value, dict):
        raise _Refused(f"a JSON {_JSON_TYPES[type(value)]} where an object was expected")
    found = describe_non_canonical(value)
    # Only a \u escape can put a lone surrogate into a decoded string.
    if found is None and "\\u" in text:
        found = _lone_surrogate(value)
    if found is not None:
        raise _Refused(found)
    return value


def read_jsonl(f: TextIO, encoding: str, origin: Origin) -> Iterator[Row | Quarantine]:
    """One row per line of `f` (opened with newline="\\n"); blank lines are skipped, bad ones quarantined."""
    for number, line in enumerate(f, 1):
        text = line.rstrip("\r\n")
        if not text.strip():
            continue
        try:
            row = _parse_object(text, encoding, origin.noun)
        except _Refused as exc:
            yield Quarantine(raw=show_undecodable(text, encoding), reason=f"line {number}: {exc}")
            continue
        yield row


_READ_CHARS = 1 << 16
_WHITESPACE = " \t\r\n"
# Outside a string, the characters that open, close or separate values; inside one, its end or an escape.
_STRUCTURAL = re.compile(r'[\[\]{}",]')
_IN_STRING = re.compile(r'["\\]')


class _ArrayText:
    """The text of a JSON array read piece by piece: splits it into the text of its elements by tracking
    strings and nesting only, so that one bad element is quarantined and the next one read."""

    def __init__(self, f: TextIO) -> None:
        self._f = f
        self._buf = ""
        self._pos = 0
        self._eof = False
        self.line = 1
        """Line number at the read position."""

    def _more(self) -> bool:
        if self._eof:
            return False
        data = self._f.read(_READ_CHARS)
        if not data:
            self._eof = True
            return False
        self._buf = self._buf[self._pos :] + data
        self._pos = 0
        return True

    def _advance(self, to: int) -> None:
        self.line += self._buf.count("\n", self._pos, to)
        self._pos = to

    def next_char(self) -> str:
        """The next character that is not whitespace, left unread; "" at the end of the text."""
        while True:
            at = self._pos
            while at < len(self._buf) and self._buf[at] in _WHITESPACE:
                at += 1
            self._advance(at)
            if at < len(self._buf):
                return self._buf[at]
            if not self._more():
                return ""

    def take(self, n: int) -> str:
        text = self._buf[self._pos : self._pos + n]
        self._advance(self._pos + len(text))
        return text

    def element(self) -> tuple[str, str]:
        """The text of the element at the read position (up to, not including, the `,` or `]` that ends it)
        and that delimiter ("" if the text ended first)."""
        depth = 0
        in_string = False
        at = self._pos
        while True:
            match = (_IN_STRING if in_string else _STRUCTURAL).search(self._buf, at)
            if match is None:
                at = len(self._buf) - self._pos
                if not self._more():
                    return self.take(len(self._buf) - self._pos), ""
                at = self._pos + at
                continue
            char, at = match.group(), match.start()
            if in_string:
                if char == "\\":
                    if at + 1 >= len(self._buf):
                        offset = at - self._pos
                        if not self._more():
                            return self.take(len(self._buf) - self._pos), ""
                        at = self._pos + offset
                        continue
                    at += 2
                    continue
                in_string = False
            elif char == '"':
                in_string = True
            elif char in "[{":
                depth += 1
            elif char in "]}" and depth:
                depth -= 1
            elif char in ",]" and not depth:
                text = self.take(at - self._pos)
                self.take(1)
                return text, char
            at += 1

    def rest(self) -> str:
        while self._more():
            pass
        return self.take(len(self._buf) - self._pos)


def read_json_array(f: TextIO, encoding: str, origin: Origin) -> Iterator[Row | Quarantine]:
    """One row per element of the JSON array that is the whole of `f`, streamed: an element that is not a
    valid JSON object is quarantined and the next one read; empty input has no rows."""
    text = _ArrayText(f)
    first = text.next_char()
    if not first:
        return
    if first != "[":
        raise ConfigError(
            f"{origin.kind}: {origin.where} does not hold a JSON array (it starts with {first!r}); set `format` "
            f"to jsonl for one object per line, or fix the {origin.noun}"
        )
    text.take(1)
    if text.next_char() == "]":
        text.take(1)
        delimiter = "]"
    else:
        delimiter = ","
        number = 0
        while delimiter == ",":
            number += 1
            text.next_char()
            line = text.line
            element, delimiter = text.element()
            where = f"element {number} (line {line})"
            body = element.strip(_WHITESPACE)
            if not delimiter:
                yield Quarantine(
                    raw=show_undecodable(element, encoding),
                    reason=f"{where}: the array ends before this element does (the {origin.noun} is cut short, "
                    "or a string or bracket is left open); nothing after it can be read",
                )
                return
            if not body:
                yield Quarantine(raw="", reason=f"{where}: an empty element (a stray comma)")
                continue
            try:
                row = _parse_object(body, encoding, origin.noun)
            except _Refused as exc:
                yield Quarantine(raw=show_undecodable(body, encoding), reason=f"{where}: {exc}")
                continue
            yield row
    if text.next_char():
        line = text.line
        trailing = text.rest()
        yield Quarantine(
            raw=show_undecodable(trailing, encoding),
            reason=f"line {line}: text after the end of the array; only one top-level array is read",
        )


def encode_jsonl(rows: list[Row]) -> bytes:
    """Each row as one line of compact JSON (UTF-8), keys in row order: what the jsonl sink writes."""
    return "".join([dumps(row) + "\n" for row in rows]).encode("utf-8")
