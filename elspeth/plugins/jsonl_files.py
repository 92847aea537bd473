"""The `jsonl` source and sink: one JSON object per line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from attrs import field, frozen

from elspeth.api import Context, Quarantine, Row, Source
from elspeth.canonical import describe_non_canonical, dumps
from elspeth.plugins.local_file_sink import LocalFileSink, LocalFileSinkConfig
from elspeth.plugins.options import known_encoding
from elspeth.plugins.source_files import UNDECODABLE, open_text, show_undecodable


@frozen
class JsonlSourceConfig:
    path: str
    encoding: str = field(default="utf-8", validator=known_encoding)


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


class JsonlSource(Source):
    """One row per line, each a JSON object. Blank lines are skipped; bad lines are quarantined."""

    name = "jsonl"
    config_class = JsonlSourceConfig
    config: JsonlSourceConfig

    def load(self, ctx: Context) -> Iterator[Row | Quarantine]:
        encoding = self.config.encoding
        with open_text(self.config.path, encoding, kind="jsonl source", newline="\n") as f:
            for number, line in enumerate(f, 1):
                text = line.rstrip("\r\n")
                if not text.strip():
                    continue
                try:
                    row = self._parse(text)
                except _Refused as exc:
                    yield Quarantine(raw=show_undecodable(text, encoding), reason=f"line {number}: {exc}")
                    continue
                yield row

    def _parse(self, text: str) -> Row:
        if UNDECODABLE.search(text):
            raise _Refused(
                f"not valid {self.config.encoding} (bad bytes shown as \\xNN); fix the file, or set the "
                "`encoding` option to the file's encoding"
            )
        try:
            value = _DECODER.decode(text)
        except _Refused:
            raise
        except ValueError as exc:
            raise _Refused(f"not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise _Refused(f"a JSON {_JSON_TYPES[type(value)]} where an object was expected")
        found = describe_non_canonical(value)
        # Only a \u escape can put a lone surrogate into a decoded string.
        if found is None and "\\u" in text:
            found = _lone_surrogate(value)
        if found is not None:
            raise _Refused(found)
        return value


class JsonlSink(LocalFileSink):
    """Each row as one line of compact JSON (UTF-8), keys in row order."""

    name = "jsonl"
    config_class = LocalFileSinkConfig

    def encode(self, rows: list[Row]) -> bytes:
        return "".join([dumps(row) + "\n" for row in rows]).encode("utf-8")
