"""Every hook spec is documented in docs/hooks.md with its exact signature."""

import inspect
from pathlib import Path

import pytest

from elspeth import hookspecs

DOCS = (Path(__file__).parent.parent / "docs" / "hooks.md").read_text()
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
