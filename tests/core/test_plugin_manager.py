"""Building plugin managers: built-ins through entry points, limits, duplicates, misspelt hooks."""

import pluggy
import pytest

from elspeth.api import Success, Transform
from elspeth.errors import PluginError
from elspeth.hookspecs import hookimpl
from elspeth.plugin_manager import PluginRegistry, make_plugin_manager


class Twin(Transform):
    name = "passthrough"

    def process(self, row, ctx):
        return Success(row)


class Duplicate:
    @hookimpl
    def register_transforms(self, register):
        register(Twin)


class Misspelt:
    @hookimpl
    def register_transformz(self, register):
        register(Twin)


class NotAPlugin:
    @hookimpl
    def register_sinks(self, register):
        register(Twin)


def test_builtins_register_through_the_entry_point():
    registry = PluginRegistry(make_plugin_manager())
    names = {(info.kind, info.name): info for info in registry.all()}
    assert {("source", "csv"), ("sink", "jsonl"), ("aggregate", "stats"), ("transform", "route")} <= set(names)
    assert names[("source", "csv")].distribution == "elspeth"


def test_each_manager_is_fresh():
    assert make_plugin_manager() is not make_plugin_manager()


def test_duplicate_names_name_both_plugins():
    with pytest.raises(PluginError, match=r"two transform plugins are named 'passthrough'.*elspeth"):
        PluginRegistry(make_plugin_manager([Duplicate()]))


def test_misspelt_hook_fails_loudly():
    with pytest.raises(pluggy.PluginValidationError, match="register_transformz"):
        make_plugin_manager([Misspelt()])


def test_wrong_kind_is_refused():
    with pytest.raises(PluginError, match=r"not a subclass of elspeth\.api\.Sink"):
        PluginRegistry(make_plugin_manager([NotAPlugin()], load_entry_points=False))


def test_load_plugins_env_limits_what_loads(monkeypatch):
    monkeypatch.setenv("ELSPETH_LOAD_PLUGINS", "")
    assert PluginRegistry(make_plugin_manager()).all() == []
    monkeypatch.setenv("ELSPETH_LOAD_PLUGINS", "builtin")
    assert PluginRegistry(make_plugin_manager()).all()


def test_unknown_plugin_lists_what_is_installed():
    registry = PluginRegistry(make_plugin_manager())
    with pytest.raises(PluginError, match=r"no sink plugin named .parquet..*installed sinks: .*csv.*jsonl"):
        registry.get("sink", "parquet")
