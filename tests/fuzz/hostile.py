"""Hypothesis strategies for hostile input: settings YAML and source files built to break a reader.

Each strategy mixes the plausible (so that generated input gets past the first check and reaches the next)
with the cases that broke elspeth before: nesting deep enough to exhaust the stack, alias bombs, control and
bidi characters, NUL, bad encodings, NaN and Infinity, integers beyond 2**53 and beyond Python's 4300-digit
limit, fields beyond the csv module's 128 KiB, duplicate keys, lone surrogate escapes, unbalanced quotes.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from hypothesis import strategies as st

HOSTILE_CHARS = "\x00\x07\x1b\x9b\u202e\u2066\r\n\t\"',;:{}[]&*!|>%@`#$\\\ufeff\ud7ff\ue000é中"
hostile_text = st.text(alphabet=st.sampled_from(HOSTILE_CHARS) | st.characters(codec="utf-8"), max_size=24)

DEPTHS = [2, 50, 99, 100, 101, 150, 500, 1_000, 5_000, 100_000]
deep = st.sampled_from(DEPTHS)

# ---------------------------------------------------------------- settings

PLUGINS = ["csv", "jsonl", "passthrough", "route", "field_map", "stats", "azure_blob", "nope", "", "CSV"]
KEYS = [
    "source",
    "sinks",
    "plugin",
    "options",
    "path",
    "transforms",
    "aggregations",
    "default_sink",
    "on_error",
    "on_quarantine",
    "landscape",
    "url",
    "payload_dir",
    "engine",
    "trigger",
    "count",
    "name",
    "types",
    "delimiter",
    "encoding",
    "if_exists",
    "fields",
    "max_field_size",
    "retry",
]
SCALAR_WORDS = [
    "${HOME}",
    "${ELSPETH_FUZZ_UNSET}",
    "${ELSPETH_FUZZ_UNSET:-in.csv}",
    "$${X}",
    "${_}",
    "notaurl",
    "foo://x/y",
    "sqlite:///in.csv",
    "sqlite:///.",
    "sqlite:////dev/stdin",
    "sqlite:///" + "a" * 5000,
    "sqlite:///a%00b",
    "in.csv",
    "out.csv",
    "./in.csv",
    "/dev/null",
    "a\x00b",
    "x" * 5000,
    ".",
    "overwrite",
    "fail",
    "utf-8",
    "no-such-codec",
    "yes",
    "~",
    "0x1F",
    "1e400",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(SCALAR_WORDS),
    st.sampled_from(PLUGINS),
    hostile_text,
)
keys = st.sampled_from(KEYS) | hostile_text
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4), max_leaves=16
)


@st.composite
def plausible_settings(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly the right shape, with hostile values where the plugins and options go."""

    def step() -> dict[str, Any]:
        options = draw(st.dictionaries(st.sampled_from(KEYS), values, max_size=4))
        if draw(st.booleans()):
            options["path"] = draw(st.sampled_from(["in.csv", "in.jsonl", "out.csv", "./out.csv"]) | scalars)
        return {"plugin": draw(st.sampled_from(PLUGINS)), "options": options}

    data: dict[str, Any] = {"source": step(), "sinks": {name: step() for name in draw(st.sets(keys, max_size=3))}}
    for key in draw(st.sets(st.sampled_from(KEYS), max_size=3)):
        data[key] = draw(values)
    if draw(st.booleans()):
        data["transforms"] = [step() for _ in range(draw(st.integers(0, 2)))]
    if draw(st.booleans()):
        data["landscape"] = {"url": draw(st.sampled_from(SCALAR_WORDS) | scalars)}
    return data


def alias_bomb(levels: int) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@st.composite
def settings_bytes(draw: st.DrawFn) -> bytes:
    """A settings file: generated settings dumped as YAML, or a known hostile document, then perhaps mutated."""
    kind = draw(st.sampled_from(["plausible", "plausible", "plausible", "any", "nested", "bomb", "recursive"]))
    if kind == "plausible":
        text = yaml.safe_dump(draw(plausible_settings()), allow_unicode=draw(st.booleans()))
    elif kind == "any":
        text = yaml.safe_dump(draw(values), allow_unicode=True)
    elif kind == "nested":
        n = draw(deep)
        text = "source: " + draw(st.sampled_from(["[" * n + "]" * n, "{a: " * n + "1" + "}" * n, "- " * n + "x"]))
    elif kind == "bomb":
        text = alias_bomb(draw(st.integers(2, 10)))
    else:
        text = "source: &a {plugin: csv, options: *a}\nsinks: &b [*b]\n"
    data = text.encode("utf-8", "surrogatepass")
    for _ in range(draw(st.integers(0, 2))):
        mutation = draw(st.sampled_from(["insert", "truncate", "duplicate", "prefix"]))
        at = draw(st.integers(0, len(data)))
        if mutation == "insert":
            data = data[:at] + draw(st.binary(max_size=8) | hostile_text.map(lambda t: t.encode("utf-8", "replace")))
            data += text.encode("utf-8", "surrogatepass")[at:]
        elif mutation == "truncate":
            data = data[:at]
        elif mutation == "duplicate":
            lines = data.splitlines(keepends=True)
            if lines:
                i = draw(st.integers(0, len(lines) - 1))
                data = b"".join([*lines[: i + 1], lines[i], *lines[i + 1 :]])
        else:
            data = draw(
                st.sampled_from([b"\xef\xbb\xbf", b"%YAML 1.1\n---\n", b"--- !!python/object/apply:os.system\n"])
            )
            data += text.encode("utf-8", "surrogatepass")
    return data


# ---------------------------------------------------------------- source files

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | hostile_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=10,
)


def _nested(n: int, closed: bool = True) -> str:
    return '{"d":' + "[" * n + ("]" * n + "}" if closed else "")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False).replace("\n", "\\n").replace("\r", "\\r")


jsonl_line = st.one_of(
    st.dictionaries(hostile_text, json_values, max_size=4).map(_dumps),
    deep.map(_nested),
    deep.map(lambda n: _nested(n, closed=False)),
    st.sampled_from(
        [
            '{"x": NaN}',
            '{"x": -Infinity}',
            '{"x": 1e400}',
            '{"x": 9007199254740993}',
            '{"x": 1' + "0" * 5000 + "}",
            '{"x": "\\ud800"}',
            '{"a": 1, "a": 2}',
            "[1, 2]",
            '"just a string"',
            "null",
            "{",
            "",
            "   ",
            '{"x": "\x1b[2J\x1b]8;;http://evil\x07"}',
        ]
    ),
    hostile_text,
    st.binary(max_size=16).map(lambda b: b.decode("latin-1")),
)


@st.composite
def jsonl_bytes(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(jsonl_line, max_size=8))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = newline.join(line.replace("\n", " ") for line in lines) + draw(st.sampled_from(["", newline]))
    data = draw(st.sampled_from([b"", b"\xef\xbb\xbf"])) + text.encode("utf-8", "surrogateescape")
    if draw(st.booleans()):
        data += draw(st.binary(max_size=8))  # bytes that are not UTF-8, on a line of their own or not
    return data


@st.composite
def json_array_bytes(draw: st.DrawFn) -> bytes:
    """A top-level JSON array (the blob source's `json` format) of hostile elements, perhaps cut short."""
    elements = draw(st.lists(jsonl_line, max_size=6))
    text = (
        "[" + draw(st.sampled_from([",", ", ", ",\n"])).join(elements) + draw(st.sampled_from(["]", "", "] x", "]]"]))
    )
    data = text.encode("utf-8", "surrogateescape")
    if draw(st.booleans()):
        at = draw(st.integers(1, len(data)))
        data = data[:at] + draw(st.binary(max_size=6)) + data[at:]
    return data


def expected_jsonl_records(data: bytes) -> int:
    """Records the jsonl source reads in `data`: its non-blank lines."""
    text = data.decode("utf-8-sig", "surrogateescape")
    return sum(1 for line in text.split("\n") if line.rstrip("\r\n").strip())


csv_field = st.one_of(
    hostile_text,
    st.sampled_from(
        [
            "",
            '"',
            '""',
            'a"b',
            "9007199254740993",
            "1" + "0" * 5000,
            "nan",
            "inf",
            "-0",
            "true",
            "x" * 200_000,
            "\x00",
            "\x1b[2J",
        ]
    ),
)


def _csv_cell(value: str, quote: bool) -> str:
    return '"' + value.replace('"', '""') + '"' if quote else value


@st.composite
def csv_bytes(draw: st.DrawFn) -> bytes:
    header = ["a", "b", "c"]
    lines = [",".join(header)]
    for _ in range(draw(st.integers(0, 6))):
        cells = draw(st.lists(csv_field, min_size=1, max_size=4))
        lines.append(",".join(_csv_cell(c, draw(st.booleans())) for c in cells))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    data = newline.join(lines).encode("utf-8", "surrogateescape")
    start = len(lines[0]) + len(newline)  # the header stays intact: a bad header is a ConfigError, by design
    if len(data) > start and draw(st.booleans()):
        at = draw(st.integers(start, len(data)))
        data = data[:at] + draw(st.binary(max_size=6)) + data[at:]
    return data


# ---------------------------------------------------------------- prompt templates

TEMPLATE_PARTS = [
    "{{ text }}",
    "{{ row }}",
    "{{ n }}",
    "{{ items }}",
    "{{ text * n }}",
    "{{ 'a' * 200000000 }}",
    "{{ text ~ text }}",
    "{{ 10 ** n }}",
    "{{ '%999999999d' % 1 }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ '{a}'.format() }}",
    "{{ '{}'.format() }}",
    "{{ text|center(n) }}",
    "{{ text|indent(n) }}",
    "{{ text|truncate(-5) }}",
    "{{ items|batch(0)|list }}",
    "{{ items|slice(n)|list }}",
    "{{ items|sort }}",
    "{{ row|dictsort(by='x') }}",
    "{{ text.ljust(n) }}",
    "{{ row.__class__ }}",
    "{{ missing }}",
    "{{ lipsum(n) }}",
    "{% for i in range(100000) %}",
    "{% for i in items %}",
    "{% for c in text %}",
    "{% endfor %}",
    "{% if n %}",
    "{% endif %}",
    "{% macro f(x) %}{{ f(x) }}{% endmacro %}{{ f(1) }}",
    "{% set ns = namespace(s='ab') %}",
    "{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    "{% for x in [[1]] recursive %}{{ loop([x]) }}{% endfor %}",
    "{{",
    "}}",
    "\x1b[2J",
    "{{ " + "(" * 300 + "1" + ")" * 300 + " }}",
    "{% if 1 %}" * 150 + "{% endif %}" * 150,
]
templates = st.lists(st.sampled_from(TEMPLATE_PARTS) | hostile_text, min_size=1, max_size=6).map("".join)
template_rows = st.fixed_dictionaries(
    {
        "text": hostile_text,
        "n": st.sampled_from([0, 1, -1, 3, 10**6, 10**9, 2**53]),
        "items": st.lists(json_values, max_size=4),
    }
)
