"""Prompt templates that would stall or exhaust memory fail their row with a PromptError, quickly; ordinary
templates, large row values and big numbers render as before."""

from __future__ import annotations

import time

import pytest

from elspeth.errors import ConfigError
from elspeth.plugins.azure.prompts import MAX_CHARS, PromptError, PromptTemplate

ROW = {"text": "hi", "big": 5e9, "n": 200_000_000}

RUNAWAY = {
    "repeat": "{{ 'a' * 200000000 }}",
    "repeat-by-a-field": "{{ 'a' * n }}",
    "nested-loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "nested-loops-over-strings": "{% for i in 'a' * 10000 %}{% for j in 'b' * 10000 %}{% endfor %}{% endfor %}",
    "doubling-join": (
        "{% set ns = namespace(s='a') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}"
    ),
    "recursive-macro": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "recursive-loop": "{% for x in [[1]] recursive %}{{ loop([x]) }}{% endfor %}",
    "center-filter": "{{ 'a'|center(2000000000) }}",
    "indent-filter": "{{ 'a\nb'|indent(2000000000) }}",
    "ljust-method": "{{ 'a'.ljust(2000000000) }}",
    "power": "{{ 10 ** 100000000 }}",
    "printf-width": "{{ '%999999999d' % 1 }}",
    "format-filter-width": "{{ '%999999999d'|format(1) }}",
    "str-format-width": "{{ '{:>999999999}'.format(1) }}",
    "str-format-nested-width": "{{ '{:>{}}'.format(1, 999999999) }}",
    "huge-output": "{% for i in range(300000) %}{{ 'abcdefghijklmnop' }}{% endfor %}",
}


@pytest.mark.parametrize("source", RUNAWAY.values(), ids=RUNAWAY.keys())
def test_runaway_templates_fail_the_row_quickly(source: str) -> None:
    template = PromptTemplate(source, "prompt")
    started = time.monotonic()
    with pytest.raises(PromptError, match="option `prompt`: the template"):
        template.render(ROW)
    assert time.monotonic() - started < 3


def test_ordinary_templates_large_values_and_big_numbers_render() -> None:
    text = "x" * (MAX_CHARS // 2)
    template = PromptTemplate(
        "{{ text|length }} {% for k in row %}{{ k ~ '!' }}{% endfor %} {{ '%.2f'|format(big) }} "
        "{{ '{:,}'.format(big) }} {{ 'ab' * 3 }} {{ '-'|center(9) }}",
        "prompt",
    )
    assert template.render({"text": text, "big": 5e9}) == (
        f"{len(text)} text!big! 5000000000.00 5,000,000,000.0 ababab     -    "
    )
    busy = PromptTemplate("{% for i in range(60000) %}{% for j in range(10) %}{% endfor %}{% endfor %}ok", "p")
    for _ in range(3):  # most of the step budget, and a fresh budget for every row
        assert busy.render({}) == "ok"


def test_the_counting_names_are_reserved() -> None:
    with pytest.raises(ConfigError, match="option `prompt` is not a valid template: the name"):
        PromptTemplate("{{ __elspeth_bounded_loop }}", "prompt")


@pytest.mark.parametrize("depth", [200, 5_000])
def test_templates_nested_too_deep_to_compile_are_config_errors(depth: int) -> None:
    for source in ["{{ " + "(" * depth + "1" + ")" * depth + " }}", "{% if 1 %}" * depth + "{% endif %}" * depth]:
        with pytest.raises(ConfigError, match="option `prompt` is not a valid template: it nests"):
            PromptTemplate(source, "prompt")
