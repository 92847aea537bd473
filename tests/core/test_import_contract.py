"""The plugin author's surface is a short list of public modules, and every plugin we ship (the built-ins,
the Azure plugins, contrib, the scaffold's templates) keeps to it: third-party plugins copy what ours do,
so a shipped plugin that reaches into the engine teaches everyone to. The engine and the Landscape, in
turn, know nothing of any plugin. The conformance kit, like any tool of a third party, uses the public
modules and a short declared list besides: it reads the Landscape through the read API, never its tables,
so a migration that moves a column cannot break it."""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PUBLIC = frozenset(
    {
        "elspeth.api",
        "elspeth.canonical",
        "elspeth.errors",
        "elspeth.formats",
        "elspeth.hookspecs",
        "elspeth.options",
        "elspeth.rate_budgets",
        "elspeth.retries",
    }
)
"""What docs/writing-plugins.md teaches. A module added here is a promise to plugin authors."""

KIT = "elspeth_testkit"
"""The kit's own surface for a plugin's conformance setups (PluginSetup, Service, ...): the package, not its
modules."""

PLUGIN_PACKAGES = {
    "elspeth.plugins": ROOT / "elspeth" / "plugins",
    "elspeth.plugins.azure": ROOT / "elspeth" / "plugins" / "azure",
    "elspeth_s3": ROOT / "contrib" / "elspeth-s3" / "elspeth_s3",
    "elspeth_http": ROOT / "contrib" / "elspeth-http" / "elspeth_http",
}
"""Each plugin package may import the public modules, its own modules and third-party libraries."""


KIT_DECLARED: dict[str, tuple[str, frozenset[str] | None]] = {
    "elspeth.landscape.reading": ("the declared read API: everything the kit checks of a run", None),
    "elspeth.engine": ("the engine's entry points: it runs and resumes pipelines as a user would", None),
    "elspeth.settings": ("it builds each scenario's settings as a user writes them, and knows the secret ones", None),
    "elspeth.plugin_manager": ("it finds the installed plugins under test and registers watched subclasses", None),
    "elspeth.landscape.redaction": ("it looks for secrets, and at the wire, as the recorder redacts them", None),
    "elspeth.landscape.database": (
        "audit_refused creates its Landscape as `elspeth db upgrade` does before adding a trigger",
        frozenset({"upgrade_database"}),
    ),
    "elspeth.evidence.verify": ("read_back runs `elspeth verify`'s own check of an artifact", None),
    "elspeth.evidence.read_back": ("read_back hands the sink the ctx `elspeth verify` does", None),
    "elspeth.cassettes": ("the elspeth_cassette fixture records and replays as `elspeth run` does", None),
}
"""What the kit (elspeth_testkit) may import from elspeth besides the public modules: each exactly that
module (names: only those names), for the reason given. No `elspeth.landscape.schema`, no SQL."""

KIT_FORBIDDEN_LIBRARIES = ("sqlalchemy", "psycopg", "sqlite3")
"""The kit reads the Landscape only through the read API (the one SQLite connection it opens, to add the
audit_refused trigger, is the exception below)."""

KIT_SQLITE = ROOT / "elspeth_testkit" / "checks.py"


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    for line, module, _ in _imported(path):
        yield line, module


def _imported(path: Path) -> Iterator[tuple[int, str, tuple[str, ...]]]:
    """(line, module, names taken from it) of every absolute import, at any depth (lazy ones too)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = tuple(alias.name for alias in node.names)
            submodules = [n for n in names if _is_module(f"{node.module}.{n}")]
            # `from elspeth import retries`, `from elspeth.landscape import schema`: the submodule is imported
            yield from ((node.lineno, f"{node.module}.{n}", ()) for n in submodules)
            if len(submodules) < len(names):
                yield node.lineno, node.module, tuple(n for n in names if n not in submodules)


def _is_module(name: str) -> bool:
    """A module or package of this repository (elspeth, elspeth_testkit)."""
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _is_public(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in PUBLIC)


def _own(package: str, module: str) -> bool:
    """A module of `package` itself; a subpackage that is a plugin package of its own is not."""
    if not (module == package or module.startswith(package + ".")):
        return False
    return not any(
        other != package and other.startswith(package + ".") and (module == other or module.startswith(other + "."))
        for other in PLUGIN_PACKAGES
    )


def _modules(package: str, directory: Path) -> list[Path]:
    nested = [d for name, d in PLUGIN_PACKAGES.items() if name != package and d.is_relative_to(directory)]
    return sorted(p for p in directory.rglob("*.py") if not any(p.is_relative_to(d) for d in nested))


@pytest.mark.parametrize("package", sorted(PLUGIN_PACKAGES))
def test_shipped_plugins_import_only_the_public_surface(package: str) -> None:
    directory = PLUGIN_PACKAGES[package]
    modules = _modules(package, directory)
    assert modules, f"no modules found for {package} in {directory}"
    wrong = [
        f"{path.relative_to(ROOT)}:{line}: {module}"
        for path in modules
        for line, module in _imports(path)
        if module.split(".")[0] in ("elspeth", "elspeth_testkit", "elspeth_s3", "elspeth_http")
        and not _is_public(module)
        and module != KIT
        and not _own(package, module)
    ]
    assert wrong == [], (
        "plugins import only " + ", ".join(sorted(PUBLIC)) + " and their own package:\n" + "\n".join(wrong)
    )


def test_the_scaffolds_plugin_templates_import_only_the_public_surface() -> None:
    templates = sorted((ROOT / "elspeth" / "scaffold_templates").glob("*/plugin.py.tmpl"))
    assert len(templates) == 4
    found = [
        (path, module)
        for path in templates
        for module in re.findall(r"^\s*(?:from|import) (elspeth[\w.]*)", path.read_text(), re.MULTILINE)
    ]
    assert found and all(_is_public(module) for _, module in found), found


@pytest.mark.parametrize("layer", ["engine", "landscape"])
def test_the_engine_and_the_landscape_know_no_plugin(layer: str) -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{line}: {module}"
        for path in sorted((ROOT / "elspeth" / layer).rglob("*.py"))
        for line, module in _imports(path)
        if module.startswith(("elspeth.plugins", "elspeth_s3", "elspeth_http", "azure", "openai", "boto"))
    ]
    assert wrong == []


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_each_public_module_says_what_it_offers(module: str) -> None:
    """`__all__` is the list a plugin author reads (dir() of a module also shows what it imported)."""
    offered = importlib.import_module(module).__dict__.get("__all__")
    assert offered, f"{module} declares no __all__"
    missing = [name for name in offered if not hasattr(importlib.import_module(module), name)]
    assert missing == [], f"{module}.__all__ names what it does not have: {missing}"


def _kit_breaches(path: Path, sqlite_allowed: bool = False) -> Iterator[str]:
    for line, module, names in _imported(path):
        top = module.split(".")[0]
        where = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name}:{line}: {module}"
        if top in KIT_FORBIDDEN_LIBRARIES and not (module == "sqlite3" and sqlite_allowed):
            yield f"{where} (the kit reads the Landscape through elspeth.landscape.reading, never SQL)"
        if top != "elspeth" or _is_public(module):
            continue
        declared = KIT_DECLARED.get(module)
        if declared is None:
            yield f"{where} (not a public module, nor declared in KIT_DECLARED)"
        elif declared[1] is not None and not set(names) <= declared[1]:
            yield f"{where} {sorted(set(names) - declared[1])} (only {sorted(declared[1])} are declared)"


def test_the_kit_imports_only_the_public_surface_and_the_declared_modules() -> None:
    modules = sorted((ROOT / "elspeth_testkit").rglob("*.py"))
    assert len(modules) > 20
    wrong = [breach for path in modules for breach in _kit_breaches(path, sqlite_allowed=path == KIT_SQLITE)]
    assert wrong == [], "the kit imports from elspeth only the public modules and KIT_DECLARED:\n" + "\n".join(wrong)


def test_every_declared_module_is_used_by_the_kit() -> None:
    """A declared module the kit no longer needs is a promise nobody keeps: take it off the list."""
    used = {module for path in (ROOT / "elspeth_testkit").rglob("*.py") for _, module, _ in _imported(path)}
    assert set(KIT_DECLARED) - used == set()


@pytest.mark.parametrize(
    "line",
    [
        "from elspeth.landscape import schema",
        "from elspeth.landscape.schema import calls",
        "import sqlalchemy",
        "from sqlalchemy import select",
        "from elspeth.engine.orchestrator import run_pipeline",
        "from elspeth.landscape.database import open_database",
        "import sqlite3",
    ],
)
def test_the_kit_check_refuses_a_reach_into_the_internals(tmp_path: Path, line: str) -> None:
    module = tmp_path / "kit_module.py"
    module.write_text(f"def later():\n    {line}\n")
    assert list(_kit_breaches(module)) != []
