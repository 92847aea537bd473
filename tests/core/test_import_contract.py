"""The plugin author's surface is a short list of public modules, and every plugin we ship (the built-ins,
the Azure plugins, contrib, the scaffold's templates) keeps to it: third-party plugins copy what ours do,
so a shipped plugin that reaches into the engine teaches everyone to. The engine and the Landscape, in
turn, know nothing of any plugin."""

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


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "elspeth":  # `from elspeth import retries`
                yield from ((node.lineno, f"elspeth.{alias.name}") for alias in node.names)
            else:
                yield node.lineno, node.module


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
