"""The built-ins register through the same hooks as any plugin, and their options structure with cattrs."""

from __future__ import annotations

from typing import Any

import cattrs
import pytest

from elspeth.api import PLUGIN_KINDS
from elspeth.plugin_manager import PluginRegistry, make_plugin_manager
from elspeth.plugins import builtin
from elspeth.plugins.csv_files import CsvSourceConfig

EXPECTED = {
    "source": ["csv", "jsonl"],
    "transform": ["field_map", "passthrough", "route"],
    "aggregate": ["stats"],
    "sink": ["csv", "jsonl"],
}


def registry() -> PluginRegistry:
    return PluginRegistry(make_plugin_manager([builtin], load_entry_points=False))


def test_every_builtin_is_registered_under_its_kind() -> None:
    found: dict[str, list[str]] = {}
    for info in registry().all():
        found.setdefault(info.kind, []).append(info.name)
        assert issubclass(info.cls, PLUGIN_KINDS[info.kind])
    assert found == EXPECTED


MINIMAL_OPTIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("source", "csv"): {"path": "in.csv", "types": {"n": "int"}},
    ("source", "jsonl"): {"path": "in.jsonl"},
    ("transform", "field_map"): {"rename": {"a": "b"}, "select": ["b"]},
    ("transform", "passthrough"): {},
    ("transform", "route"): {"field": "k", "routes": {"1": "ones"}},
    ("aggregate", "stats"): {"group_by": "g", "fields": ["n"]},
    ("sink", "csv"): {"path": "out.csv", "fields": ["a"], "if_exists": "overwrite"},
    ("sink", "jsonl"): {"path": "out.jsonl"},
}


@pytest.mark.parametrize(("kind", "name"), sorted(MINIMAL_OPTIONS))
def test_options_structure_and_unknown_options_are_refused(kind: str, name: str) -> None:
    converter = cattrs.Converter(forbid_extra_keys=True)
    cls = registry().get(kind, name).cls
    config = converter.structure(MINIMAL_OPTIONS[kind, name], cls.config_class)
    assert cls(config).config == config
    with pytest.raises(cattrs.ClassValidationError):
        converter.structure({**MINIMAL_OPTIONS[kind, name], "no_such_option": 1}, cls.config_class)


def test_a_bad_option_value_keeps_its_message_through_cattrs() -> None:
    converter = cattrs.Converter(forbid_extra_keys=True)
    with pytest.raises(cattrs.ClassValidationError) as raised:
        converter.structure({"path": "x", "types": {"n": "decimal"}}, CsvSourceConfig)
    assert "option `types.n` is 'decimal'" in " ".join(cattrs.transform_error(raised.value))
