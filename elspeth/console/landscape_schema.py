"""A Landscape's schema: the version `db version` shows beside the one this elspeth needs, and the
migrations `db upgrade` applied."""

from __future__ import annotations

from elspeth import __version__
from elspeth.landscape import migrations


def render_schema_state(shown_url: str, state: migrations.SchemaState, landscape_hint: str) -> str:
    """`shown_url` is the Landscape's URL without its password; `landscape_hint` is what the `elspeth db
    upgrade` suggested for pending migrations must add to name this Landscape."""
    lines = [
        f"landscape  {shown_url}",
        f"schema     {state.version}",
        f"elspeth    {__version__} (needs {migrations.HEAD})",
    ]
    if state.pending:
        pending = ", ".join(m.name for m in state.pending)
        lines.append(f"pending    {pending}: back it up, then elspeth db upgrade{landscape_hint}")
    return "\n".join(lines)


def render_upgrade(shown_url: str, before: str, applied: list[str]) -> str:
    if not applied:
        return f"{shown_url} is at schema {before}, the current one; nothing to do."
    return "\n".join(
        [f"Upgraded {shown_url} from schema {before} to {applied[-1]}:"] + [f"  applied {name}" for name in applied]
    )
