"""Plugins: the table `plugins`, `install` and `uninstall` print, and the package `plugins new` scaffolded."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from elspeth import installer
from elspeth.console import table


def render_plugins(rows: list[installer.Listed]) -> str:
    return table(("NAME", "KIND", "DISTRIBUTION", "VERSION", "HOOK"), rows)


def plugins_json(rows: list[installer.Listed]) -> list[dict[str, Any]]:
    return [dict(zip(installer.LISTED_KEYS, row, strict=True)) for row in rows]


def render_scaffold(name: str, kind: str, where: Path, written: Iterable[Path]) -> str:
    """The files written for a new `kind` plugin `name` in `where`, and the commands to try it."""
    article = "an" if kind == "aggregate" else "a"
    lines = [f"Created {article} {kind} plugin {name!r} in {where}/:"]
    lines += [f"  {path.relative_to(where)}" for path in sorted(written)]
    lines.append(
        "\nNext:\n"
        f"  cd {where}\n"
        "  elspeth install -e .\n"
        f"  python -m pytest --elspeth-conformance --elspeth-plugin {kind}:{name}"
    )
    return "\n".join(lines)
