"""Building plugin managers: built-ins through entry points, limits, duplicates, misspelt hooks."""

import sys

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


def _installed(tmp_path, monkeypatch, module_source: str) -> str:
    """A distribution `elspeth-broken` on sys.path whose entry point's module is `module_source`."""
    package = tmp_path / "elspeth_broken"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "plugin.py").write_text(module_source)
    info = tmp_path / "elspeth_broken-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: elspeth-broken\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[elspeth.plugins]\nbroken = elspeth_broken.plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "elspeth_broken", raising=False)
    return str(package / "plugin.py")


@pytest.mark.parametrize(
    ("source", "line", "error"),
    [
        # An option named `field` shadows attrs' field() in the class body: the exception alone names nothing.
        (
            "from attrs import field, frozen\n\n@frozen\nclass Config:\n    field: str = 'x'\n"
            "    size: int = field(default=1)\n",
            6,
            "TypeError: 'str' object is not callable",
        ),
        ("import os\nimport no_such_library_for_elspeth\n", 2, "ModuleNotFoundError: No module named"),
    ],
)
def test_a_plugin_that_fails_to_import_is_named_with_its_file_and_line(tmp_path, monkeypatch, source, line, error):
    path = _installed(tmp_path, monkeypatch, source)
    with pytest.raises(PluginError) as raised:
        make_plugin_manager()
    message = str(raised.value)
    assert message.startswith("plugin entry point 'broken' of distribution 'elspeth-broken' failed to import: ")
    assert error in message
    assert f"(at {path}, line {line}); fix it there, or remove the plugin (elspeth uninstall elspeth-broken)" in message
