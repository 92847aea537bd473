"""The report as one self-contained HTML file: page.html with page.css, page.js, the pipeline's picture and
the data inlined. The data travels as JSON inside <script type="application/json">, with every `<`, `>` and
`&` written as a \\u escape, so no value (`</script>` in a row, say) can end the element early; the page's
own script puts values into the page as text only. A Content-Security-Policy allows the page's own style
and script (by hash) and nothing else: no network, no other script, whatever the data holds."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html import escape
from importlib import resources
from typing import Any

from elspeth.report.picture import pipeline_svg

_SLOT = re.compile(r"@@([A-Z_]+)@@")
_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def render_page(data: dict[str, Any]) -> str:
    css = _asset("page.css")
    js = _asset("page.js")
    slots = {
        "TITLE": escape(f"Elspeth run {data['run']['run_id']}"),
        "STYLE_HASH": _csp_hash(css),
        "SCRIPT_HASH": _csp_hash(js),
        "CSS": css,
        "JS": js,
        "SVG": pipeline_svg(data["nodes"], data["flows"]),
        "DATA": embedded_json(data),
    }
    # One pass: a slot's text is never searched for further slots, so data holding "@@JS@@" stays data.
    return _SLOT.sub(lambda m: slots[m.group(1)], _asset("page.html"))


def embedded_json(value: Any) -> str:
    """`value` as JSON that is safe inside a <script> element of an HTML page."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return re.sub("[<>&\u2028\u2029]", lambda m: _JSON_ESCAPES[m.group()], text)


def _asset(name: str) -> str:
    return resources.files("elspeth.report").joinpath(name).read_text(encoding="utf-8")


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"
