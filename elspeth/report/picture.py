"""The pipeline as an inline SVG: its steps left to right (source, transforms, aggregations), its sinks in a
row below, and an arrow from wherever tokens ended to the sink that took them, labelled with how many and
how they ended. Every text is escaped: node names come from settings, which may hold anything."""

from __future__ import annotations

import itertools
from collections import defaultdict
from html import escape
from typing import Any

_BOX_W, _BOX_H, _GAP_X, _TOP, _SINK_Y, _MARGIN = 170, 46, 60, 20, 190, 20


def pipeline_svg(nodes: list[dict[str, Any]], flows: list[dict[str, Any]]) -> str:
    chain = [n for n in nodes if n["kind"] != "sink"]
    sinks = [n for n in nodes if n["kind"] == "sink"]
    place: dict[str, tuple[float, float]] = {}
    for i, node in enumerate(chain):
        place[node["node_id"]] = (_MARGIN + i * (_BOX_W + _GAP_X), _TOP)
    for i, node in enumerate(sinks):
        place[node["node_id"]] = (_MARGIN + i * (_BOX_W + _GAP_X), _SINK_Y)
    width = _MARGIN * 2 + max(len(chain), len(sinks), 1) * (_BOX_W + _GAP_X) - _GAP_X
    height = _SINK_Y + _BOX_H + _MARGIN
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="pipeline" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="the pipeline">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>',
    ]
    for a, b in itertools.pairwise(chain):
        (ax, ay), (bx, _) = place[a["node_id"]], place[b["node_id"]]
        y = ay + _BOX_H / 2
        parts.append(_line(ax + _BOX_W, y, bx, y, "chain"))
    parts += _flow_arrows(place, chain, flows)
    for node in nodes:
        parts.append(_box(node, *place[node["node_id"]]))
    parts.append("</svg>")
    return "\n".join(parts)


def _flow_arrows(
    place: dict[str, tuple[float, float]], chain: list[dict[str, Any]], flows: list[dict[str, Any]]
) -> list[str]:
    """One arrow per (deciding node, sink). A token that completed was decided by its sink (the default
    sink takes what reaches the end of the chain): its arrow starts at the last step."""
    last = chain[-1]["node_id"] if chain else None
    counts: dict[tuple[str, str], list[str]] = defaultdict(list)
    for flow in flows:
        sink = flow["sink_node_id"]
        if sink is None or sink not in place:
            continue
        start = last if flow["node_id"] == sink else flow["node_id"]
        if start is None or start not in place:
            continue
        counts[(start, sink)].append(f"{flow['outcome']} {flow['tokens']:,}")
    parts = []
    for (start, sink), labels in counts.items():
        (sx, sy), (tx, ty) = place[start], place[sink]
        x1, y1, x2, y2 = sx + _BOX_W / 2, sy + _BOX_H, tx + _BOX_W / 2, ty
        parts.append(_line(x1, y1, x2, y2, "flow", f"data-sink={_attr(sink)}"))
        parts.append(
            f'<text class="flow-label" x="{(x1 + x2) / 2 + 4:.0f}" y="{(y1 + y2) / 2:.0f}">'
            f"{escape(', '.join(labels))}</text>"
        )
    return parts


def _line(x1: float, y1: float, x2: float, y2: float, cls: str, extra: str = "") -> str:
    return (
        f'<line class="{cls}" x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" '
        f'marker-end="url(#arrow)" {extra}/>'
    )


def _box(node: dict[str, Any], x: float, y: float) -> str:
    kind, _, name = node["node_id"].partition(":")
    sink = f" data-sink={_attr(node['node_id'])}" if node["kind"] == "sink" else ""
    return (
        f'<g class="node {escape(node["kind"])}"{sink}>'
        f"<title>{escape(node['node_id'])}: {escape(node['plugin'])} ({escape(node['distribution'])} "
        f"{escape(node['plugin_version'])})</title>"
        f'<rect x="{x:.0f}" y="{y:.0f}" width="{_BOX_W}" height="{_BOX_H}" rx="6"/>'
        f'<text x="{x + 8:.0f}" y="{y + 19:.0f}" class="name">{escape(_cut(name or kind))}</text>'
        f'<text x="{x + 8:.0f}" y="{y + 36:.0f}" class="plugin">{escape(kind)} · {escape(_cut(node["plugin"]))}</text>'
        "</g>"
    )


def _attr(value: str) -> str:
    return f'"{escape(value, quote=True)}"'


def _cut(text: str, limit: int = 22) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
