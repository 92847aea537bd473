"""Hostile and broken input through a real `elspeth` process: a message naming the file, the field and the
fix, exit code 2, no traceback; never minutes of work, gigabytes, or a crash."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PIPELINE = """\
source: {plugin: csv, options: {path: in.csv}}
sinks: {out: {plugin: csv, options: {path: out.csv, if_exists: overwrite}}}
"""


def elspeth(cwd: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "elspeth", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_user_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, f"{fragment!r} not in {result.stderr!r}"


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    (tmp_path / "in.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    return tmp_path


def _alias_bomb(levels: int) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        pytest.param(_alias_bomb(9), ["line 6", "alias bomb"], id="alias-bomb"),
        pytest.param("source: " + "[" * 500 + "]" * 500 + "\n", ["nested more than 100 levels"], id="nested-500"),
        pytest.param("source: &a [*a]\n", ["recursive"], id="recursive-alias"),
        pytest.param(PIPELINE + "landscape: {url: notaurl}\n", ["landscape.url", "not a database URL"], id="notaurl"),
        pytest.param(PIPELINE + "landscape: {url: 'foo://x/y'}\n", ["landscape.url", "'foo'"], id="unknown-dialect"),
    ],
)
def test_hostile_settings_fail_fast_with_a_message(cwd: Path, text: str, fragments: list[str]) -> None:
    (cwd / "s.yaml").write_text(text, encoding="utf-8")
    started = time.monotonic()
    result = elspeth(cwd, "validate", "s.yaml")
    assert time.monotonic() - started < 20
    assert_user_error(result, "s.yaml: ", *fragments)


def test_a_huge_settings_file_is_refused_unread(cwd: Path) -> None:
    (cwd / "s.yaml").write_text(PIPELINE + "# " + "x" * (3 * 1024 * 1024) + "\n", encoding="utf-8")
    assert_user_error(elspeth(cwd, "validate", "s.yaml"), "s.yaml: larger than 2 MiB")


def test_a_settings_path_that_is_a_directory_too_long_or_holds_nul(cwd: Path) -> None:
    from elspeth.errors import ConfigError
    from elspeth.settings import read_settings_file

    (cwd / "d.yaml").mkdir()
    result = elspeth(cwd, "validate", "d.yaml")  # click's own check of the argument
    assert result.returncode == 2 and "is a directory" in result.stderr and "Traceback" not in result.stderr
    for path, fragment in [(cwd / "d.yaml", "is a directory"), ("a" * 5000, "too long"), ("a\x00b", "null")]:
        with pytest.raises(ConfigError, match=fragment):
            read_settings_file(path)


def _bad_landscapes(cwd: Path) -> list[tuple[str, str]]:
    (cwd / "not-a-db").write_text("hello, I am text and not SQLite\n", encoding="utf-8")
    return [
        ("notaurl", "not a database URL"),
        ("foo://x/y", "not a kind of database"),
        (f"sqlite:///{cwd}/not-a-db", "not a SQLite database"),
        (f"sqlite:///{cwd}/{'a' * 5000}.db", "too long"),
        (f"sqlite:///{cwd}/a%00b.db", "NUL"),
        (f"sqlite:///{cwd}", "is a directory"),
        (f"sqlite:///{cwd}/in.csv/x.db", "a directory in this path is a file"),
    ]


def test_bad_landscape_urls_on_the_command_line(cwd: Path) -> None:
    (cwd / "s.yaml").write_text(PIPELINE, encoding="utf-8")
    for url, fragment in _bad_landscapes(cwd):
        assert_user_error(elspeth(cwd, "run", "s.yaml", "--landscape", url), fragment)
        assert_user_error(elspeth(cwd, "runs", "--landscape", url), fragment)
    assert (cwd / "not-a-db").read_text(encoding="utf-8").startswith("hello")


def test_bad_landscape_urls_in_the_settings(cwd: Path) -> None:
    from elspeth.errors import ConfigError
    from elspeth.settings import load_settings

    for url, fragment in _bad_landscapes(cwd):
        (cwd / "s.yaml").write_text(PIPELINE + f"landscape: {{url: '{url}'}}\n", encoding="utf-8")
        with pytest.raises(ConfigError) as raised:
            load_settings(cwd / "s.yaml")
        assert f"s.yaml: landscape.url: landscape URL {url!r}" in str(raised.value)
        assert fragment in str(raised.value)


def test_the_landscape_and_its_wal_are_private(tmp_path: Path) -> None:
    from sqlalchemy import text

    from elspeth.landscape.database import open_database

    path = tmp_path / "new" / "landscape.db"
    engine = open_database(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT count(*) FROM runs"))
            created = [p for p in path.parent.iterdir()]
            assert {p.name for p in created} >= {"landscape.db", "landscape.db-wal", "landscape.db-shm"}
            for p in created:
                assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    finally:
        engine.dispose()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_ordinary_aliases_still_load(cwd: Path) -> None:
    (cwd / "s.yaml").write_text(
        "x-csv: &csv {plugin: csv, options: {path: in.csv}}\n"
        "source: *csv\n"
        "sinks: {out: {plugin: csv, options: {path: out.csv, if_exists: overwrite}}}\n",
        encoding="utf-8",
    )
    result = elspeth(cwd, "validate", "s.yaml")
    assert "unknown key" in result.stderr and "x-csv" in result.stderr  # loaded: only the extra key is refused


HOSTILE_TEXT = (
    "clear\x1b[2J osc8 \x1b]8;;http://evil.example\x07click\x1b]8;;\x07 csi\x9b31m bidi\u202eevil\rover\nline"
)
RAW_CONTROLS = ("\x1b", "\x07", "\x9b", "\u202e", "\r")


def test_explain_escapes_terminal_controls_in_everything_it_prints(cwd: Path) -> None:
    import json

    row = {"text": HOSTILE_TEXT, HOSTILE_TEXT: 1}
    (cwd / "in.jsonl").write_text(json.dumps(row) + "\n" + json.dumps({"bad": float("nan")}) + "\n", encoding="utf-8")
    (cwd / "s.yaml").write_text(
        "source: {plugin: jsonl, options: {path: in.jsonl}}\n"
        "sinks: {out: {plugin: jsonl, options: {path: out.jsonl, if_exists: overwrite}}}\n",
        encoding="utf-8",
    )
    ran = elspeth(cwd, "run", "s.yaml", "--run-id", "r1")
    assert ran.returncode == 0, ran.stderr
    for args in (("explain", "r1"), ("explain", "r1", "--row", "0"), ("explain", "r1", "--row", "1"), ("runs",)):
        shown = elspeth(cwd, *args)
        assert shown.returncode == 0, shown.stderr
        for control in RAW_CONTROLS:
            assert control not in shown.stdout, (args, control)
    text = elspeth(cwd, "explain", "r1", "--row", "0").stdout
    assert "clear\\u001b[2J" in text and "bidi\\u202eevil" in text  # shown, as text
    as_json = elspeth(cwd, "explain", "r1", "--row", "0", "--json").stdout
    for control in RAW_CONTROLS:
        assert control not in as_json
    assert json.loads(as_json)["payload"] == row  # still valid JSON, with the same values


def test_a_payload_dir_that_cannot_be_one(cwd: Path) -> None:
    from elspeth.errors import ConfigError
    from elspeth.settings import load_settings

    cases = [(str(cwd / "in.csv"), "is not a directory"), ("a\\x00b", "NUL"), ("d" * 5000, "too long")]
    for payload_dir, fragment in cases:
        (cwd / "s.yaml").write_text(PIPELINE + f'landscape: {{payload_dir: "{payload_dir}"}}\n', encoding="utf-8")
        with pytest.raises(ConfigError, match=f"s.yaml: landscape.payload_dir: .*{fragment}"):
            load_settings(cwd / "s.yaml")
