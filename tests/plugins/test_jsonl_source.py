"""The jsonl source: one object per line, bad lines quarantined while the good ones go on."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from elspeth.api import Quarantine
from elspeth.canonical import canonical_bytes
from elspeth.errors import ConfigError
from elspeth.plugins.jsonl_files import JsonlSource, JsonlSourceConfig


def load(path: Path, ctx: Any, **options: Any) -> list[Any]:
    return list(JsonlSource(JsonlSourceConfig(path=str(path), **options)).load(ctx))


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_bytes(data)
    return path


def test_rows_in_file_order_with_their_types(tmp_path: Path, ctx) -> None:
    path = write(tmp_path, b'{"b":1,"a":1.5}\n\n   \r\n{"n":{"z":[true,null,"\\u00e9"]}}\r\n{"last":"no newline"}')
    records = load(path, ctx)
    assert records == [{"b": 1, "a": 1.5}, {"n": {"z": [True, None, "é"]}}, {"last": "no newline"}]
    assert list(records[0]) == ["b", "a"]
    assert type(records[0]["b"]) is int


def test_other_encodings_and_a_utf8_bom(tmp_path: Path, ctx) -> None:
    assert load(write(tmp_path, '{"a":"café"}\n'.encode("latin-1")), ctx, encoding="latin-1") == [{"a": "café"}]
    assert load(write(tmp_path, '\ufeff{"a":"café"}\n'.encode()), ctx) == [{"a": "café"}]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"a": 1', "not valid JSON"),
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "a JSON array where an object was expected"),
        (b"3", "a JSON number where an object was expected"),
        (b'"text"', "a JSON string where an object was expected"),
        (b"null", "a JSON null where an object was expected"),
        (b'{"a": "caf\xe9"}', "not valid utf-8"),
        (b'{"a": NaN}', "NaN is not valid JSON"),
        (b'{"a": [Infinity]}', "Infinity is not valid JSON"),
        (b'{"a": -Infinity}', "-Infinity is not valid JSON"),
        (b'{"a": 1e400}', "$.a: inf is not a JSON number"),
        (b'{"a": 9007199254740993}', "$.a: integer 9007199254740993 is beyond 2**53"),
        (b'{"a": 1, "a": 2}', "key 'a' appears twice"),
        (b'{"a": ["\\udc80"]}', "$.a[0]: contains a lone surrogate"),
        (b'{"\\ud800": 1}', "$ key: contains a lone surrogate"),
    ],
)
def test_a_bad_line_is_quarantined_and_the_good_ones_go_on(tmp_path: Path, ctx, line: bytes, reason: str) -> None:
    path = write(tmp_path, b'{"n": 1}\n' + line + b'\n{"n": 2}\n')
    records = load(path, ctx)
    assert records[0] == {"n": 1}
    assert records[2] == {"n": 2}
    quarantined = records[1]
    assert isinstance(quarantined, Quarantine)
    assert quarantined.reason.startswith("line 2: ")
    assert reason in quarantined.reason
    assert quarantined.raw == line.decode("utf-8", "backslashreplace")
    canonical_bytes(quarantined.raw)  # storable in the Landscape as it is


def test_a_missing_file_names_the_path_and_the_option(tmp_path: Path, ctx) -> None:
    path = tmp_path / "nope.jsonl"
    with pytest.raises(ConfigError) as raised:
        load(path, ctx)
    assert str(path) in str(raised.value)
    assert "`path`" in str(raised.value)


def test_streams_instead_of_reading_the_whole_file(tmp_path: Path, ctx) -> None:
    path = tmp_path / "big.jsonl"
    with path.open("w") as f:
        for i in range(30_000):
            f.write(f'{{"id": {i}, "text": "{"x" * 150}"}}\n')
    assert path.stat().st_size > 5_000_000
    tracemalloc.start()
    try:
        count = sum(1 for _ in JsonlSource(JsonlSourceConfig(path=str(path))).load(ctx))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 30_000
    assert peak < 1_000_000
