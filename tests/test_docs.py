"""Every hook spec is documented in docs/hooks.md with its exact signature; every export record type and
field in docs/evidence.md."""

import inspect
import re
from pathlib import Path

import pytest

from elspeth import hookspecs
from elspeth.evidence.records import RECORD_TABLES

DOCS = (Path(__file__).parent.parent / "docs" / "hooks.md").read_text()
EVIDENCE = (Path(__file__).parent.parent / "docs" / "evidence.md").read_text()
HOOKS = [
    (name, fn)
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
    if getattr(fn, "elspeth_spec", None) is not None
]


def test_there_are_five_hooks():
    assert sorted(name for name, _ in HOOKS) == [
        "record_call",
        "register_aggregates",
        "register_sinks",
        "register_sources",
        "register_transforms",
    ]


@pytest.mark.parametrize(("name", "fn"), HOOKS, ids=[name for name, _ in HOOKS])
def test_hook_documented_with_signature(name, fn):
    assert f"## {name}{inspect.signature(fn)}" in DOCS


def _evidence_section(record_type: str) -> str:
    match = re.search(rf"^### `{record_type}`\n(.*?)(?=^##)", EVIDENCE, re.M | re.S)
    assert match, f"docs/evidence.md has no section ### `{record_type}`"
    return match.group(1)


@pytest.mark.parametrize(("record_type", "table"), RECORD_TABLES, ids=[name for name, _ in RECORD_TABLES])
def test_export_record_documented_with_every_field(record_type, table):
    section = _evidence_section(record_type)
    missing = [c.name for c in table.columns if c.name != "run_id" and f"`{c.name}`" not in section]
    assert not missing, f"docs/evidence.md, record `{record_type}`: fields {missing} are not described"
