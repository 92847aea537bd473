"""The csv and jsonl sinks: appends across write/flush cycles, artifacts describing the whole file, resume."""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from elspeth.api import Artifact, Capability
from elspeth.errors import ConfigError, ElspethError, NonCanonicalValueError, ResumeError
from elspeth.formats.csv_text import CsvEncoder, _cell
from elspeth.plugins.csv_files import CsvSink, CsvSource
from elspeth.plugins.jsonl_files import JsonlSink, JsonlSource
from elspeth.plugins.local_file_sink import LocalFileSink

from .conftest import FileContext

SINKS: dict[str, type[LocalFileSink]] = {"csv": CsvSink, "jsonl": JsonlSink}
SOURCES = {"csv": CsvSource, "jsonl": JsonlSource}
both = pytest.mark.parametrize("kind", sorted(SINKS))


def make_sink(kind: str, path: Path, **options: Any) -> LocalFileSink:
    cls = SINKS[kind]
    return cls(cls.config_class(path=str(path), **options))


def read_back(kind: str, path: Path, ctx: Any) -> list[Any]:
    """Through the matching source, so the round trip is checked too."""
    source = SOURCES[kind](SOURCES[kind].config_class(path=str(path)))
    return list(source.load(ctx))


def rows(start: int, count: int) -> list[dict[str, Any]]:
    return [{"id": str(i), "name": f"row {i}"} for i in range(start, start + count)]


def assert_describes(artifact: Artifact, path: Path, row_count: int) -> None:
    data = path.read_bytes()
    assert artifact.content_hash == hashlib.sha256(data).hexdigest()
    assert artifact.size == len(data)
    assert artifact.row_count == row_count
    assert artifact.uri == "file://" + os.path.abspath(path)
    assert artifact.resume["size"] == len(data)
    assert artifact.resume["row_count"] == row_count


def uninterrupted(kind: str, path: Path, batches: list[list[dict[str, Any]]], ctx: Any) -> bytes:
    sink = make_sink(kind, path)
    sink.open(ctx, None)
    for batch in batches:
        sink.write(batch, ctx)
    sink.flush(ctx)
    sink.close()
    return path.read_bytes()


@both
def test_declares_resumable(kind: str) -> None:
    assert Capability.RESUMABLE in SINKS[kind].capabilities


@both
def test_every_write_is_kept_and_every_artifact_describes_the_whole_file(kind: str, tmp_path: Path, ctx) -> None:
    path = tmp_path / "out" / f"data.{kind}"
    sink = make_sink(kind, path)
    sink.open(ctx, None)
    sink.write(rows(0, 3), ctx)
    first = sink.flush(ctx)
    assert_describes(first, path, 3)
    sink.write(rows(3, 2), ctx)
    sink.write(rows(5, 4), ctx)
    second = sink.flush(ctx)
    assert_describes(second, path, 9)
    sink.write(rows(9, 1), ctx)
    sink.write([], ctx)
    last = sink.flush(ctx)
    sink.close()
    assert_describes(last, path, 10)
    assert read_back(kind, path, ctx) == rows(0, 10)
    assert first.content_hash != second.content_hash != last.content_hash


@both
def test_resume_discards_the_unflushed_tail_and_continues(kind: str, tmp_path: Path, ctx) -> None:
    batches = [rows(0, 3), rows(3, 3), rows(6, 3), rows(9, 3)]
    expected = uninterrupted(kind, tmp_path / f"reference.{kind}", batches, ctx)

    path = tmp_path / f"resumed.{kind}"
    crashed = make_sink(kind, path)
    crashed.open(ctx, None)
    crashed.write(batches[0], ctx)
    committed = crashed.flush(ctx)
    crashed.write(batches[1], ctx)
    crashed.write(batches[2], ctx)
    crashed.close()  # the crash: the unflushed rows still reach the file, but were never committed
    with path.open("ab") as f:
        f.write(b"half a line")
    assert path.stat().st_size > committed.size

    resumed = make_sink(kind, path)
    resumed.open(ctx, committed.resume)
    for batch in batches[1:]:
        resumed.write(batch, ctx)
    final = resumed.flush(ctx)
    resumed.close()
    assert path.read_bytes() == expected
    assert_describes(final, path, 12)
    assert read_back(kind, path, ctx) == rows(0, 12)


@both
def test_resume_twice_in_a_row(kind: str, tmp_path: Path, ctx) -> None:
    batches = [rows(0, 2), rows(2, 2), rows(4, 2)]
    expected = uninterrupted(kind, tmp_path / f"reference.{kind}", batches, ctx)
    path = tmp_path / f"out.{kind}"
    state: dict[str, Any] | None = None
    for batch in batches:
        sink = make_sink(kind, path)
        sink.open(ctx, state)
        sink.write(batch, ctx)
        state = dict(sink.flush(ctx).resume)
        sink.close()
    assert path.read_bytes() == expected


@both
def test_resume_with_empty_state_starts_from_empty(kind: str, tmp_path: Path, ctx) -> None:
    batches = [rows(0, 2), rows(2, 3)]
    expected = uninterrupted(kind, tmp_path / f"reference.{kind}", batches, ctx)
    path = tmp_path / f"out.{kind}"
    crashed = make_sink(kind, path)
    crashed.open(ctx, None)
    crashed.write(batches[0], ctx)
    crashed.close()

    resumed = make_sink(kind, path)
    resumed.open(ctx, {})
    for batch in batches:
        resumed.write(batch, ctx)
    final = resumed.flush(ctx)
    resumed.close()
    assert path.read_bytes() == expected
    assert_describes(final, path, 5)


@both
def test_resume_refuses_a_missing_file(kind: str, tmp_path: Path, ctx) -> None:
    path = tmp_path / f"out.{kind}"
    state = _flushed_state(kind, path, ctx)
    path.unlink()
    with pytest.raises(ResumeError, match=str(path)):
        make_sink(kind, path).open(ctx, state)


@both
def test_resume_refuses_a_shortened_file(kind: str, tmp_path: Path, ctx) -> None:
    path = tmp_path / f"out.{kind}"
    state = _flushed_state(kind, path, ctx)
    with path.open("r+b") as f:
        f.truncate(state["size"] - 1)
    with pytest.raises(ResumeError, match=str(path)):
        make_sink(kind, path).open(ctx, state)


@both
def test_resume_refuses_changed_durable_bytes(kind: str, tmp_path: Path, ctx) -> None:
    path = tmp_path / f"out.{kind}"
    state = _flushed_state(kind, path, ctx)
    data = bytearray(path.read_bytes())
    data[-3] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ResumeError, match="sha256 differs"):
        make_sink(kind, path).open(ctx, state)


@both
def test_resume_refuses_a_foreign_state(kind: str, tmp_path: Path, ctx) -> None:
    with pytest.raises(ResumeError, match="not written by this sink"):
        make_sink(kind, tmp_path / "x").open(ctx, {"offset": 3})


def _flushed_state(kind: str, path: Path, ctx: Any) -> dict[str, Any]:
    sink = make_sink(kind, path)
    sink.open(ctx, None)
    sink.write(rows(0, 3), ctx)
    state = dict(sink.flush(ctx).resume)
    sink.close()
    return state


@both
def test_an_existing_file_is_refused(kind: str, tmp_path: Path, ctx) -> None:
    path = tmp_path / f"out.{kind}"
    path.write_bytes(b"precious")
    with pytest.raises(ConfigError) as raised:
        make_sink(kind, path).open(ctx, None)
    message = str(raised.value)
    assert str(path) in message
    assert "exists" in message
    assert "if_exists: overwrite" in message
    assert path.read_bytes() == b"precious"


@both
def test_overwrite_replaces_an_existing_file(kind: str, tmp_path: Path, ctx) -> None:
    path = tmp_path / f"out.{kind}"
    path.write_bytes(b"old contents, longer than the new ones will be" * 100)
    sink = make_sink(kind, path, if_exists="overwrite")
    sink.open(ctx, None)
    sink.write(rows(0, 1), ctx)
    artifact = sink.flush(ctx)
    sink.close()
    assert_describes(artifact, path, 1)
    assert read_back(kind, path, ctx) == rows(0, 1)


@both
def test_a_run_that_fails_before_writing_leaves_no_file_and_the_rerun_is_not_refused(
    kind: str, tmp_path: Path, ctx
) -> None:
    path = tmp_path / "new" / f"out.{kind}"
    failed = make_sink(kind, path)
    failed.open(ctx, None)
    failed.close()
    assert not path.exists(), "opened, never written nor flushed: no file"
    rerun = make_sink(kind, path)
    rerun.open(ctx, None)
    rerun.write(rows(0, 2), ctx)
    artifact = rerun.flush(ctx)
    rerun.close()
    assert_describes(artifact, path, 2)


@both
def test_a_run_without_rows_still_flushes_an_empty_file(kind: str, tmp_path: Path, ctx) -> None:
    path = tmp_path / f"out.{kind}"
    sink = make_sink(kind, path)
    sink.open(ctx, None)
    artifact = sink.flush(ctx)
    sink.close()
    assert path.read_bytes() == b""
    assert_describes(artifact, path, 0)


@both
def test_if_exists_choices_are_checked(kind: str) -> None:
    with pytest.raises(ConfigError, match="if_exists"):
        SINKS[kind].config_class(path="x", if_exists="append")


@both
def test_nan_is_never_written(kind: str, tmp_path: Path, ctx) -> None:
    path = tmp_path / f"out.{kind}"
    sink = make_sink(kind, path)
    sink.open(ctx, None)
    sink.write([{"x": 1.5}], ctx)
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(NonCanonicalValueError):
            sink.write([{"x": 2.5}, {"x": bad}], ctx)
    artifact = sink.flush(ctx)
    sink.close()
    assert_describes(artifact, path, 1)
    assert b"NaN" not in path.read_bytes()
    assert b"nf" not in path.read_bytes()


def test_csv_header_is_written_once_and_missing_keys_are_empty(tmp_path: Path, ctx) -> None:
    path = tmp_path / "out.csv"
    sink = make_sink("csv", path, fields=["b", "a", "c"])
    sink.open(ctx, None)
    sink.write([{"a": 1, "b": "x"}], ctx)
    sink.flush(ctx)
    sink.write([{"c": None, "a": True}, {"a": [1, "two"], "b": {"k": 1.5}}], ctx)
    sink.flush(ctx)
    sink.close()
    assert path.read_bytes().decode() == 'b,a,c\r\nx,1,\r\n,true,\r\n"{""k"":1.5}","[1,""two""]",\r\n'


cells = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.lists(st.integers(), max_size=2)
)


@given(st.lists(st.tuples(cells, cells), max_size=5))
def test_csv_cells_passed_to_csv_writer_as_they_are_read_as_each_written_by_itself(pairs) -> None:
    """The encoder hands most cells to csv.writer untouched (issue 11): the bytes must be those of writing
    every cell's `_cell` text, a single empty cell and a single None included."""
    rows = [{"a": a, "b": b} for a, b in pairs] + [{"a": None}, {"a": ""}]
    expected = io.StringIO()
    writer = csv.writer(expected)
    for row in rows:
        writer.writerow([_cell(col, row.get(col)) for col in ("a", "b")])
    encoded = CsvEncoder(",", ["a", "b"], kind="csv sink", where="out.csv").encode(rows, header=False)
    assert encoded == expected.getvalue().encode()


plain_cells = st.none() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()


@given(st.lists(st.tuples(plain_cells, plain_cells, cells), min_size=1, max_size=5))
@example([(1e308, 1e308, 1.5)])  # finite floats whose sum overflows: written all the same
@example([("x", None, "y"), (-0.0, 2**60, 0.1)])
def test_csv_a_batch_of_whole_rows_reads_as_each_cell_written_by_itself(triples) -> None:
    """A batch whose rows all hold every column, in text, ints, None and finite floats, goes to csv.writer
    whole (issue 11); any other batch row by row: the bytes are the same."""
    rows = [{"a": a, "b": b, "c": c} for a, b, c in triples]
    expected = io.StringIO()
    writer = csv.writer(expected)
    for row in rows:
        writer.writerow([_cell(col, row[col]) for col in ("a", "b", "c")])
    encoded = CsvEncoder(",", ["a", "b", "c"], kind="csv sink", where="out.csv").encode(rows, header=False)
    assert encoded == expected.getvalue().encode()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_csv_a_batch_of_whole_rows_refuses_a_non_finite_float(bad: float) -> None:
    encoder = CsvEncoder(",", ["a", "b"], kind="csv sink", where="out.csv")
    with pytest.raises(NonCanonicalValueError, match="'b'"):
        encoder.encode([{"a": 1.5, "b": 2.5}, {"a": 1, "b": bad}], header=False)


def test_csv_fields_default_to_the_first_rows_keys(tmp_path: Path, ctx) -> None:
    path = tmp_path / "out.csv"
    sink = make_sink("csv", path, delimiter=";")
    sink.open(ctx, None)
    sink.write([], ctx)
    sink.write([{"z": "1", "y": "2"}], ctx)
    sink.write([{"y": "3"}], ctx)
    artifact = sink.flush(ctx)
    sink.close()
    assert path.read_bytes().decode() == "z;y\r\n1;2\r\n;3\r\n"
    assert artifact.resume["fields"] == ["z", "y"]


def test_csv_refuses_a_row_with_an_unknown_key(tmp_path: Path, ctx) -> None:
    path = tmp_path / "out.csv"
    sink = make_sink("csv", path)
    sink.open(ctx, None)
    sink.write([{"a": "1"}], ctx)
    with pytest.raises(ElspethError) as raised:
        sink.write([{"a": "2"}, {"a": "3", "surprise": "x"}], ctx)
    message = str(raised.value)
    assert "'surprise'" in message
    assert "`fields`" in message
    assert "field_map" in message
    artifact = sink.flush(ctx)
    sink.close()
    assert_describes(artifact, path, 1)


def test_csv_resume_keeps_the_header_it_started_with(tmp_path: Path, ctx) -> None:
    path = tmp_path / "out.csv"
    first = make_sink("csv", path)
    first.open(ctx, None)
    first.write([{"a": "1", "b": "2"}], ctx)
    state = first.flush(ctx).resume
    first.close()

    resumed = make_sink("csv", path)
    resumed.open(ctx, state)
    resumed.write([{"b": "4", "a": "3"}], ctx)
    resumed.flush(ctx)
    resumed.close()
    assert path.read_bytes().decode() == "a,b\r\n1,2\r\n3,4\r\n"


def test_csv_resume_refuses_changed_fields(tmp_path: Path, ctx) -> None:
    path = tmp_path / "out.csv"
    first = make_sink("csv", path, fields=["a", "b"])
    first.open(ctx, None)
    first.write([{"a": "1", "b": "2"}], ctx)
    state = first.flush(ctx).resume
    first.close()
    with pytest.raises(ResumeError, match="`fields`"):
        make_sink("csv", path, fields=["b", "a"]).open(ctx, state)


def test_jsonl_keeps_key_order_and_types(tmp_path: Path, ctx) -> None:
    path = tmp_path / "out.jsonl"
    sink = make_sink("jsonl", path)
    sink.open(ctx, None)
    row = {"z": 1, "a": 1.0, "é": ["ü", None, True], "n": {"b": 2, "a": 1}}
    sink.write([row], ctx)
    sink.flush(ctx)
    sink.close()
    assert path.read_bytes() == '{"z":1,"a":1.0,"é":["ü",null,true],"n":{"b":2,"a":1}}\n'.encode()
    assert json.loads(path.read_text()) == row


def test_write_before_open_is_an_error(tmp_path: Path, ctx) -> None:
    with pytest.raises(ElspethError, match="before open"):
        make_sink("jsonl", tmp_path / "x.jsonl").write(rows(0, 1), ctx)


def test_a_foreign_writer_is_detected_at_flush(tmp_path: Path, ctx) -> None:
    path = tmp_path / "out.jsonl"
    sink = make_sink("jsonl", path)
    sink.open(ctx, None)
    sink.write(rows(0, 1), ctx)
    sink.flush(ctx)
    with path.open("ab") as f:
        f.write(b"{}\n")
    with pytest.raises(ElspethError, match="something else is writing"):
        sink.flush(ctx)
    sink.close()


# Any printable or control text except lone surrogates (never valid in a row), including quotes, delimiters,
# CR and LF, which the CSV writer must quote and the CSV reader must read back.
cell_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
row_lists = st.lists(st.fixed_dictionaries({"id": cell_text, "text": cell_text}), max_size=25)


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(sorted(SINKS)), all_rows=row_lists, data=st.data())
def test_any_batching_and_any_crash_point_give_the_same_bytes(
    kind: str, all_rows: list[dict[str, str]], data: st.DataObject
) -> None:
    ctx = FileContext()  # the fixture is per test, hypothesis runs many examples per test
    cuts = sorted(data.draw(st.lists(st.integers(0, len(all_rows)), max_size=6)))
    bounds = [0, *cuts, len(all_rows)]
    batches = [all_rows[a:b] for a, b in itertools.pairwise(bounds)]
    flushed = data.draw(st.integers(0, len(batches)), label="batches flushed before the crash")
    unflushed = data.draw(st.integers(0, len(batches) - flushed), label="batches written, never flushed")
    with tempfile.TemporaryDirectory() as tmp:
        expected = uninterrupted(kind, Path(tmp) / "reference", batches, ctx)
        path = Path(tmp) / "out"
        crashed = make_sink(kind, path)
        crashed.open(ctx, None)
        state: dict[str, Any] = {}
        for batch in batches[:flushed]:
            crashed.write(batch, ctx)
            state = dict(crashed.flush(ctx).resume)
        for batch in batches[flushed : flushed + unflushed]:
            crashed.write(batch, ctx)
        crashed.close()

        resumed = make_sink(kind, path)
        resumed.open(ctx, state)
        for batch in batches[flushed:]:
            resumed.write(batch, ctx)
        final = resumed.flush(ctx)
        resumed.close()
        assert path.read_bytes() == expected
        assert_describes(final, path, len(all_rows))
        assert read_back(kind, path, ctx) == all_rows
