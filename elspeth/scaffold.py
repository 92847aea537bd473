"""`elspeth plugins new`: a plugin package that installs, registers and passes the conformance suite as
generated. The files are `string.Template`s in `elspeth/scaffold_templates/` (`common/` for every kind, one
folder per kind for the rest), shipped inside the wheel as package data."""

from __future__ import annotations

import re
import string
from importlib import resources
from pathlib import Path

from attrs import frozen

from elspeth import __version__
from elspeth.api import PLUGIN_KINDS
from elspeth.errors import ElspethError, PluginError
from elspeth.plugin_manager import PluginRegistry, make_plugin_manager

KINDS = tuple(PLUGIN_KINDS)
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_LAYOUT = {
    "common/pyproject.toml.tmpl": "pyproject.toml",
    "common/README.md.tmpl": "README.md",
    "common/gitignore.tmpl": ".gitignore",
    "common/workflow.yml.tmpl": ".github/workflows/tests.yml",
    "common/package_init.py.tmpl": "$package/__init__.py",
    "KIND/plugin.py.tmpl": "$package/plugin.py",
    "KIND/conftest.py.tmpl": "conftest.py",
    "KIND/test_plugin.py.tmpl": "tests/test_$name.py",
}
"""Template (under scaffold_templates/, KIND being the plugin's kind) -> the file it becomes."""


@frozen
class Scaffold:
    """What `elspeth plugins new NAME --kind KIND` writes: `files` maps paths relative to `directory` to
    their text."""

    name: str
    kind: str
    directory: Path
    files: dict[str, str]


def _distribution(name: str) -> str:
    return "elspeth-" + name.replace("_", "-").strip("-")


def check_name(name: str, kind: str) -> None:
    """A plugin name is a Python identifier (it names the package `elspeth_NAME`) not taken by an installed
    plugin of the same kind (two plugins of one kind cannot share a name)."""
    if not _NAME.fullmatch(name):
        raise ElspethError(
            f"plugin name {name!r} is not a Python identifier; use letters, digits and underscores, starting "
            "with a letter, e.g. my_sink (it names the package elspeth_NAME and the entry point)"
        )
    try:
        registry = PluginRegistry(make_plugin_manager())
        existing = registry.get(kind, name)
    except PluginError:
        return  # not installed, or the environment cannot load its plugins: nothing to clash with
    raise ElspethError(
        f"a {kind} plugin named {name!r} is already installed (from distribution {existing.distribution!r}); "
        "two plugins of one kind cannot share a name: choose another name"
    )


def plan(name: str, kind: str, directory: Path | None = None) -> Scaffold:
    """The files of a new `kind` plugin `name`, to go into `directory` (default ./elspeth-NAME)."""
    if kind not in KINDS:
        raise ElspethError(f"plugin kind {kind!r} is not one of: {', '.join(KINDS)}")
    check_name(name, kind)
    target = directory if directory is not None else Path(_distribution(name))
    words = {
        "name": name,
        "kind": kind,
        "package": f"elspeth_{name}",
        "distribution": _distribution(name),
        "class_name": "".join(part[:1].upper() + part[1:] for part in name.split("_") if part) + kind.capitalize(),
        "elspeth_version": __version__,
    }
    templates = resources.files("elspeth") / "scaffold_templates"
    usage = templates.joinpath(kind, "usage.yaml.tmpl").read_text(encoding="utf-8")
    words["usage"] = string.Template(usage).substitute(words).rstrip("\n")
    files: dict[str, str] = {}
    for source, path in _LAYOUT.items():
        text = templates.joinpath(*source.replace("KIND", kind).split("/")).read_text(encoding="utf-8")
        files[string.Template(path).substitute(words)] = string.Template(text).substitute(words)
    return Scaffold(name=name, kind=kind, directory=target, files=files)


def write(scaffold: Scaffold) -> list[Path]:
    """Write the files; refuses a `directory` that exists and is not an empty directory."""
    target = scaffold.directory
    if target.exists():
        if not target.is_dir():
            raise ElspethError(f"{target} is a file; give --dir a directory that does not exist yet, or is empty")
        if any(target.iterdir()):
            raise ElspethError(
                f"{target} already exists and is not empty; give --dir a new or empty directory (nothing was written)"
            )
    written = []
    for relative, text in scaffold.files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
