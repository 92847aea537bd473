"""The csv source: rows in file order, bad records quarantined while the good ones go on."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from elspeth.api import Quarantine
from elspeth.canonical import canonical_bytes
from elspeth.errors import ConfigError
from elspeth.plugins.csv_files import CsvSource, CsvSourceConfig


def load(path: Path, ctx: Any, **options: Any) -> list[Any]:
    return list(CsvSource(CsvSourceConfig(path=str(path), **options)).load(ctx))


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "in.csv"
    path.write_bytes(data)
    return path


def split(records: list[Any]) -> tuple[list[dict[str, Any]], list[Quarantine]]:
    return [r for r in records if not isinstance(r, Quarantine)], [r for r in records if isinstance(r, Quarantine)]


def test_rows_keep_header_order_and_file_order(tmp_path: Path, ctx) -> None:
    path = write(tmp_path, b'b,a,c\n1,2,3\n\n4,5,6\r\n7,"x,\ny",9')
    records = load(path, ctx)
    assert records == [
        {"b": "1", "a": "2", "c": "3"},
        {"b": "4", "a": "5", "c": "6"},
        {"b": "7", "a": "x,\ny", "c": "9"},
    ]
    assert [list(r) for r in records] == [["b", "a", "c"]] * 3
    assert load(path, ctx) == records


def test_types_are_coerced_and_empty_values_become_none(tmp_path: Path, ctx) -> None:
    path = write(tmp_path, b"n;x;ok;s\n-3;2.5;TRUE;007\n;;;\n4;1e3;no;x\n")
    types = {"n": "int", "x": "float", "ok": "bool", "s": "str"}
    assert load(path, ctx, delimiter=";", types=types) == [
        {"n": -3, "x": 2.5, "ok": True, "s": "007"},
        {"n": None, "x": None, "ok": None, "s": ""},
        {"n": 4, "x": 1000.0, "ok": False, "s": "x"},
    ]


def test_other_encodings_and_a_utf8_bom(tmp_path: Path, ctx) -> None:
    assert load(write(tmp_path, "name\ncafé\n".encode("latin-1")), ctx, encoding="latin-1") == [{"name": "café"}]
    assert load(write(tmp_path, "\ufeffname\ncafé\n".encode()), ctx) == [{"name": "café"}]


@pytest.mark.parametrize(
    ("line", "types", "reason"),
    [
        (b"1,2,3", {}, "line 3: the header has 2 fields, this record 3"),
        (b"1", {}, "line 3: the header has 2 fields, this record 1"),
        (b"1,caf\xe9", {}, "line 3: not valid utf-8"),
        (b'1,"x"y', {}, "line 3: malformed CSV"),
        (b"one,2", {"a": "int"}, "line 3: column 'a': 'one' is not an int"),
        (b"1,nan", {"b": "float"}, "line 3: column 'b': 'nan' is not a finite number"),
        (b"1,-Infinity", {"b": "float"}, "line 3: column 'b': '-Infinity' is not a finite number"),
        (b"1,1e400", {"b": "float"}, "line 3: column 'b': '1e400' is not a finite number"),
        (b"1,x", {"b": "float"}, "line 3: column 'b': 'x' is not a number"),
        (b"9007199254740993,2", {"a": "int"}, "beyond 2**53"),
        (b"1,maybe", {"b": "bool"}, "line 3: column 'b': 'maybe' is not a bool"),
    ],
)
def test_a_bad_record_is_quarantined_and_the_good_ones_go_on(
    tmp_path: Path, ctx, line: bytes, types: dict[str, str], reason: str
) -> None:
    path = write(tmp_path, b"a,b\n1,1\n" + line + b"\n3,0\n")
    good, bad = split(load(path, ctx, types=types))
    assert len(good) == 2
    assert [row["a"] for row in good] == ([1, 3] if "a" in types else ["1", "3"])
    [quarantined] = bad
    assert reason in quarantined.reason
    canonical_bytes(quarantined.raw)  # storable in the Landscape as it is


def test_the_quarantined_raw_record_is_the_text_in_the_file(tmp_path: Path, ctx) -> None:
    path = write(tmp_path, b'a,b\n1,caf\xe9\n"multi\nline",2,3\n')
    _, bad = split(load(path, ctx))
    assert [q.raw for q in bad] == ["1,caf\\xe9", '"multi\nline",2,3']
    assert bad[1].reason.startswith("line 3:")


def test_an_unterminated_quote_at_the_end_is_quarantined(tmp_path: Path, ctx) -> None:
    good, bad = split(load(write(tmp_path, b'a,b\n1,2\n3,"open\n'), ctx))
    assert good == [{"a": "1", "b": "2"}]
    assert bad[0].raw == '3,"open'
    assert "malformed CSV" in bad[0].reason


def test_an_empty_file_has_no_rows(tmp_path: Path, ctx) -> None:
    assert load(write(tmp_path, b""), ctx, types={"a": "int"}) == []


def test_a_missing_file_names_the_path_and_the_option(tmp_path: Path, ctx) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(ConfigError) as raised:
        load(path, ctx)
    assert str(path) in str(raised.value)
    assert "`path`" in str(raised.value)


@pytest.mark.parametrize(
    ("data", "types", "message"),
    [
        (b"a,a\n1,2\n", {}, "column 'a' appears twice"),
        (b"a,b\n1,2\n", {"c": "int"}, "option `types` names 'c'"),
        (b"a,\xff\n1,2\n", {}, "set the `encoding` option"),
        (b'a,"b"c\n1,2\n', {}, "header of"),
    ],
)
def test_a_bad_header_is_a_config_error(tmp_path: Path, ctx, data: bytes, types: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(write(tmp_path, data), ctx, types=types)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"types": {"a": "decimal"}}, "option `types.a` is 'decimal'"),
        ({"delimiter": ";;"}, "option `delimiter` must be a single character"),
        ({"encoding": "klingon"}, "option `encoding`"),
    ],
)
def test_bad_options_are_config_errors(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        CsvSourceConfig(path="x", **options)


def test_streams_instead_of_reading_the_whole_file(tmp_path: Path, ctx) -> None:
    path = tmp_path / "big.csv"
    with path.open("w") as f:
        f.write("id,text\n")
        for i in range(30_000):
            f.write(f"{i},{'x' * 150}\n")
    assert path.stat().st_size > 4_000_000
    tracemalloc.start()
    try:
        count = sum(1 for _ in CsvSource(CsvSourceConfig(path=str(path))).load(ctx))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 30_000
    assert peak < 1_000_000
