"""The reproducibility grade of a run: what someone holding its record could do again.

- **reproducible**: every node declares DETERMINISTIC and none EXTERNAL_CALLS; running the same settings on
  the same input gives the same outputs.
- **replayable**: what is not deterministic talks to the outside world only through external calls, and
  every call's full request and response is on record: the run replays from the recorded bodies (or a
  cassette made from them).
- **attributable**: the record says who did what, with hashes, but the run cannot be done again: some node is
  nondeterministic without making calls, a plugin's capabilities are unknown, or call bodies were purged.

A past run's nodes record plugin name, distribution and version, not capabilities: they are read from the
plugin installed now. The same distribution at another version is taken at its word, and says so; a plugin
no longer installed counts as unknown, which grades the run attributable.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterable

from attrs import frozen
from sqlalchemy import Connection, select

from elspeth.api import Capability
from elspeth.errors import PluginError
from elspeth.evidence.bodies import purged_bodies
from elspeth.landscape import schema
from elspeth.landscape.payloads import FilePayloadStore
from elspeth.landscape.retention import purge_of
from elspeth.plugin_manager import PluginRegistry, make_plugin_manager


class Level(enum.StrEnum):
    REPRODUCIBLE = "reproducible"
    REPLAYABLE = "replayable"
    ATTRIBUTABLE = "attributable"
    UNKNOWN = "unknown"
    """Not graded: the installed plugins could not be loaded to read their capabilities."""


@frozen
class NodeCapabilities:
    """A recorded node and the capabilities its plugin declares, None when they are not known."""

    node_id: str
    capabilities: frozenset[Capability] | None
    note: str | None = None
    """How the capabilities were found, when that is not simply "the plugin the run used"."""


@frozen
class Grade:
    level: Level
    reasons: tuple[str, ...]
    """Why not a better level (empty for reproducible), then notes on how capabilities were read."""


def grade(nodes: Iterable[NodeCapabilities], *, bodies_purged: int) -> Grade:
    """The grade of a run whose nodes are `nodes` and of whose recorded call bodies `bodies_purged` are gone."""
    nodes = list(nodes)
    notes = tuple(f"{n.node_id}: {n.note}" for n in nodes if n.note is not None)
    unknown = [n.node_id for n in nodes if n.capabilities is None]
    declared = [(n.node_id, n.capabilities) for n in nodes if n.capabilities is not None]
    calling = [node for node, caps in declared if Capability.EXTERNAL_CALLS in caps]
    unreplayable = [
        node
        for node, caps in declared
        if Capability.DETERMINISTIC not in caps and Capability.EXTERNAL_CALLS not in caps
    ]
    against: list[str] = []
    if unknown:
        against.append(f"capabilities unknown: {', '.join(unknown)}")
    if unreplayable:
        against.append(f"nondeterministic without recorded calls: {', '.join(unreplayable)}")
    if bodies_purged and calling:
        against.append(f"{bodies_purged:,} recorded call bodies purged")
    if against:
        return Grade(Level.ATTRIBUTABLE, (*against, *notes))
    if calling:
        return Grade(Level.REPLAYABLE, (f"external calls, every body recorded: {', '.join(calling)}", *notes))
    return Grade(Level.REPRODUCIBLE, notes)


def node_capabilities(
    registry: PluginRegistry, node_id: str, kind: str, plugin: str, distribution: str, version: str
) -> NodeCapabilities:
    """The capabilities of a recorded node, from the plugin installed now under the recorded kind and name."""
    try:
        info = registry.get(kind, plugin)
    except PluginError:
        return NodeCapabilities(node_id, None, f"{kind} plugin {plugin!r} ({distribution} {version}) is not installed")
    if info.distribution != distribution:
        return NodeCapabilities(
            node_id,
            None,
            f"{kind} plugin {plugin!r} now comes from {info.distribution}, not {distribution}: its capabilities "
            "then are not known",
        )
    note = None
    if info.version != version:
        note = f"capabilities as {distribution} {info.version} declares them; the run used {version}"
    return NodeCapabilities(node_id, frozenset(info.cls.capabilities), note)


def grade_of_run(conn: Connection, run_id: str, registry: PluginRegistry, store: FilePayloadStore) -> Grade:
    """The grade of a recorded run, its nodes' capabilities read from the plugins installed now."""
    n = schema.nodes.c
    nodes = [
        node_capabilities(registry, r.node_id, r.kind, r.plugin, r.distribution, r.plugin_version)
        for r in conn.execute(select(schema.nodes).where(n.run_id == run_id).order_by(n.position, n.node_id))
    ]
    purge = purge_of(conn, run_id)
    if purge is not None:
        # A purged run keeps its hashes, not its bodies: whatever its plugins could do, it is attributable only.
        return Grade(Level.ATTRIBUTABLE, (f"purged on {_day(purge.purged_at)}: bodies removed, every hash kept",))
    return grade(nodes, bodies_purged=purged_bodies(conn, run_id, store))


def grader(conn: Connection, store: FilePayloadStore) -> Callable[[str], Grade]:
    """Grades runs of the Landscape on `conn` against the plugins installed now. Showing runs must not fail
    because an installed plugin does: when the plugins cannot be loaded, every grade is unknown and says why."""
    try:
        registry = PluginRegistry(make_plugin_manager())
    except PluginError as exc:
        unknown = Grade(Level.UNKNOWN, (f"the installed plugins could not be loaded: {exc}",))
        return lambda _run_id: unknown
    return lambda run_id: grade_of_run(conn, run_id, registry, store)


def _day(epoch: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(epoch))
