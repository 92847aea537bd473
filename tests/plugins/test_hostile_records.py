"""Records built to break a reader: nesting deep enough to exhaust the stack, fields longer than Python's
csv limit. Each is one quarantined record; the good records around it are read as usual."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from elspeth.api import Quarantine
from elspeth.canonical import MAX_DEPTH, canonical_bytes, describe_non_canonical, dumps
from elspeth.errors import ConfigError, NonCanonicalValueError
from elspeth.plugins.csv_files import CsvSource, CsvSourceConfig
from elspeth.plugins.jsonl_files import JsonlSource, JsonlSourceConfig


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1_000, 100_000])
def test_deep_json_lines_are_quarantined(tmp_path: Path, ctx: Any, depth: int) -> None:
    path = tmp_path / "in.jsonl"
    deep = '{"d":' + "[" * depth + "]" * depth + "}"
    path.write_text(f'{{"a":1}}\n{deep}\n{{"b":2}}\n', encoding="utf-8")
    records = list(JsonlSource(JsonlSourceConfig(path=str(path))).load(ctx))
    assert records[0] == {"a": 1} and records[2] == {"b": 2}
    assert isinstance(records[1], Quarantine)
    assert records[1].reason.startswith("line 2: nested deeper than")


def test_canonical_json_refuses_deep_values_and_cycles_as_non_canonical() -> None:
    ok = {"d": nested(MAX_DEPTH - 1)}
    assert canonical_bytes(ok) and dumps(ok)
    for value in ({"d": nested(MAX_DEPTH)}, {"d": nested(5_000)}):
        with pytest.raises(NonCanonicalValueError, match="nested deeper than"):
            canonical_bytes(value)
        with pytest.raises(NonCanonicalValueError, match="nested deeper than"):
            dumps(value)
        assert describe_non_canonical(value) is not None
    cycle: dict[str, Any] = {}
    cycle["self"] = cycle
    with pytest.raises(NonCanonicalValueError):
        canonical_bytes(cycle)


def test_csv_fields_beyond_128_kib_are_data(tmp_path: Path, ctx: Any) -> None:
    big = "x" * 300_000
    path = tmp_path / "in.csv"
    path.write_text(f'id,text\n1,"{big}"\n2,short\n', encoding="utf-8")
    assert list(CsvSource(CsvSourceConfig(path=str(path))).load(ctx)) == [
        {"id": "1", "text": big},
        {"id": "2", "text": "short"},
    ]


def test_csv_field_limit_is_an_option_and_per_source(tmp_path: Path, ctx: Any) -> None:
    path = tmp_path / "in.csv"
    path.write_text("id,text\n1,0123456789\n2,short\n", encoding="utf-8")
    small = CsvSource(CsvSourceConfig(path=str(path), max_field_size=8)).load(ctx)
    large = CsvSource(CsvSourceConfig(path=str(path))).load(ctx)
    # Read in turn, each keeps its own limit although the csv module has one for the whole process.
    assert next(large) == {"id": "1", "text": "0123456789"}
    first = next(small)
    assert isinstance(first, Quarantine) and "longer than 8 characters" in first.reason
    assert "max_field_size" in first.reason
    assert next(large) == {"id": "2", "text": "short"}
    assert next(small) == {"id": "2", "text": "short"}
    with pytest.raises(ConfigError, match="max_field_size"):
        CsvSourceConfig(path=str(path), max_field_size=0)
