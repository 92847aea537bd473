"""Prompt templates: Jinja2 in a sandbox, over one row's fields and nothing else.

A template sees the row's fields as variables (`{{ text }}`) and the whole row as `row` (`{{ row["a b"] }}`
for a name that is no identifier). A field the row lacks is an error naming it (StrictUndefined), never an
empty string in the prompt. The sandbox (immutable) refuses attribute access beyond plain data, so a
template cannot reach Python internals (`{{ row.__class__ }}`).

Rendering is bounded: every loop iteration, call, filter and string-building operator is a step, and a
render that takes more than MAX_STEPS steps or MAX_SECONDS, would build a string longer than MAX_CHARS, or
recurses too deep fails that row (PromptError, which the transforms return as an Error), never the run.
The step count, not the clock, is what normally stops a runaway template, so the row fails the same way
on any machine.
"""

from __future__ import annotations

import contextvars
import functools
import math
import re
import string
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from elspeth.api import Row
from elspeth.errors import ConfigError

if TYPE_CHECKING:
    import jinja2

# "'text' is undefined" for a variable; "'dict object' has no attribute 'text'" for row.text or row["text"].
_UNDEFINED_NAME = re.compile(r"^'([^']+)' is undefined$|^'dict object' has no (?:attribute|element) '?([^']+?)'?$")


class PromptError(Exception):
    """A template could not be rendered for this row (the row's fault: a missing field, say)."""


MAX_CHARS = 4_000_000
"""Characters a rendered prompt, or any string built while rendering it, may hold (a million tokens, more
than any model reads)."""
MAX_STEPS = 1_000_000
MAX_SECONDS = 5.0

# Names the compiled template calls to count its loops and string joins; a template may not use them itself.
_LOOP = "__elspeth_bounded_loop"
_CONCAT = "__elspeth_bounded_concat"
# printf-style widths and precisions (`'%999999999d' % 1`) that would build a huge string.
_WIDE_PRINTF = re.compile(r"%[-+ #0]*(?:\*|\d{7,})|%[-+ #0]*\d*\.(?:\*|\d{7,})")
# Filters and str methods whose number argument is a width or a count of what they build.
_SIZING_FILTERS = frozenset({"center", "indent", "slice"})
_SIZING_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})


class _LimitExceeded(Exception):
    """A render went beyond its bounds."""


class _Budget:
    def __init__(self) -> None:
        self.steps = 0
        self.deadline = time.monotonic() + MAX_SECONDS

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise _LimitExceeded(f"it took more than {MAX_STEPS:,} steps (loops, calls, filters)")
        if not self.steps & 1023 and time.monotonic() > self.deadline:
            raise _LimitExceeded(f"it ran for more than {MAX_SECONDS:g} seconds")


# One render's budget; a context variable because rows in flight render at the same time on other threads.
_budget: contextvars.ContextVar[_Budget] = contextvars.ContextVar("elspeth_template_budget")


def _step() -> None:
    budget = _budget.get(None)
    if budget is not None:
        budget.step()


def _check_size(value: Any) -> Any:
    if isinstance(value, str | bytes | list | tuple) and len(value) > MAX_CHARS:
        raise _LimitExceeded(f"it built a value of {len(value):,} items, more than {MAX_CHARS:,}")
    return value


def _check_sizing(what: str, args: Iterable[Any]) -> None:
    """The arguments of a filter or method that builds a string as wide or as many times as a number says
    (`center`, `ljust`, `indent`): refused before the huge string exists."""
    for arg in args:
        if isinstance(arg, int | float) and not isinstance(arg, bool) and abs(arg) > MAX_CHARS:
            raise _LimitExceeded(f"it passed {arg!r} to {what}, more than {MAX_CHARS:,}")


def _check_printf(text: Any) -> None:
    if isinstance(text, str) and _WIDE_PRINTF.search(text):
        raise _LimitExceeded("it formats with a width or precision of a million or more")


def _check_str_format(text: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """`text.format(...)`: every width and precision in its fields' specs, and any number that a nested
    field (`{:>{}}`) could make one, must stay within MAX_CHARS."""
    for _, name, spec, _ in string.Formatter().parse(text):
        if name is None or not spec:
            continue
        if "{" in spec:
            _check_sizing("a nested format width", [*args, *kwargs.values()])
        for number in re.findall(r"\d+", spec):
            if int(number) > MAX_CHARS:
                raise _LimitExceeded(f"it formats with a width or precision of {number}, more than {MAX_CHARS:,}")


def _bounded_loop(iterable: Any) -> Iterator[Any]:
    for item in iterable:
        _step()
        yield item


def _bounded_concat(*parts: Any) -> str:
    total = 0
    for part in parts:
        _step()
        total += len(str(part))
        if total > MAX_CHARS:
            raise _LimitExceeded(f"it joined strings into more than {MAX_CHARS:,} characters")
    return "".join(str(part) for part in parts)


def _bounded_filter(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    sizing = name in _SIZING_FILTERS

    @functools.wraps(fn)  # keeps jinja's pass_context/pass_environment marker
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _step()
        if sizing:
            _check_sizing(f"filter {name!r}", [*args, *kwargs.values()])
        if name == "format" and args:
            _check_printf(args[0])
        return _check_size(fn(*args, **kwargs))

    return bounded


def _binop_size(operator: str, left: Any, right: Any) -> float:
    """How many items (characters, digits) `left operator right` would build, before building it."""
    sized = (str, bytes, list, tuple)
    if operator == "*":
        if isinstance(left, sized) and isinstance(right, int):
            return len(left) * right
        if isinstance(right, sized) and isinstance(left, int):
            return len(right) * left
    if operator == "+" and isinstance(left, sized) and isinstance(right, sized):
        return len(left) + len(right)
    if operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0:
        return right * math.log10(abs(left))  # decimal digits of the result
    if operator == "%":
        _check_printf(left)
    return 0


def _environment() -> jinja2.Environment:
    try:
        from jinja2 import StrictUndefined
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:  # pragma: no cover - jinja2 comes with elspeth[azure]
        raise ConfigError("prompt templates need jinja2: pip install 'elspeth[azure]'") from None

    class BoundedEnvironment(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**", "+", "%"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            _step()
            if _binop_size(operator, left, right) > MAX_CHARS:
                raise _LimitExceeded(f"its {operator!r} would build more than {MAX_CHARS:,} characters or digits")
            return _check_size(super().call_binop(context, operator, left, right))

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
            _step()
            owner = getattr(__obj, "__self__", None)
            method = getattr(__obj, "__name__", None)
            if isinstance(owner, str) and method in _SIZING_METHODS:
                _check_sizing(f"str.{method}", [owner, *args, *kwargs.values()])
            return _check_size(super().call(__context, __obj, *args, **kwargs))

        def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
            wrapped = super().wrap_str_format(value)
            if wrapped is None:
                return None
            text: str = value.__self__
            format_map = value.__name__ == "format_map"

            @functools.wraps(value)
            def checked(*args: Any, **kwargs: Any) -> str:
                _step()
                if format_map and args and isinstance(args[0], dict):
                    _check_str_format(text, (), args[0])
                else:
                    _check_str_format(text, args, kwargs)
                return _check_size(wrapped(*args, **kwargs))  # type: ignore[no-any-return]

            return checked

    environment = BoundedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    environment.filters = {name: _bounded_filter(name, fn) for name, fn in environment.filters.items()}
    # lipsum(n) writes n paragraphs inside one call: nothing a prompt needs.
    environment.globals.pop("lipsum", None)
    environment.globals.update({_LOOP: _bounded_loop, _CONCAT: _bounded_concat})
    return environment


def _bounded_tree(environment: jinja2.Environment, source: str) -> Any:
    """The parsed template with every loop's iterable wrapped in a counting generator and every `~` join in a
    function that checks the size: the two things a template does that no sandbox hook sees."""
    from jinja2 import nodes

    tree = environment.parse(source)
    for name in tree.find_all(nodes.Name):
        if name.name in (_LOOP, _CONCAT):
            raise ConfigError(f"the name {name.name!r} is reserved; use another")
    for loop in list(tree.find_all(nodes.For)):
        loop.iter = nodes.Call(nodes.Name(_LOOP, "load"), [loop.iter], [], None, None, lineno=loop.lineno)
    for parent in list(tree.find_all(nodes.Node)):
        for field_name in parent.fields:
            value = getattr(parent, field_name, None)
            if isinstance(value, nodes.Concat):
                setattr(parent, field_name, _concat_call(value))
            elif isinstance(value, list):
                setattr(parent, field_name, [_concat_call(v) if isinstance(v, nodes.Concat) else v for v in value])
    return tree


def _concat_call(concat: Any) -> Any:
    from jinja2 import nodes

    return nodes.Call(nodes.Name(_CONCAT, "load"), concat.nodes, [], None, None, lineno=concat.lineno)


class PromptTemplate:
    """One compiled template; `option` names where it came from, for messages."""

    def __init__(self, source: str, option: str) -> None:
        environment = _environment()
        import jinja2

        self.source = source
        self.option = option
        try:
            self._template = environment.from_string(_bounded_tree(environment, source))
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigError(
                f"option `{option}` is not a valid template: {exc.message} (line {exc.lineno}); templates are "
                "Jinja2, e.g. 'Classify: {{ text }}'"
            ) from None
        except ConfigError as exc:
            raise ConfigError(f"option `{option}` is not a valid template: {exc}") from None
        except (RecursionError, SyntaxError, MemoryError):  # Jinja's parser and Python's compiler recurse
            raise ConfigError(
                f"option `{option}` is not a valid template: it nests blocks, brackets or filters too deeply "
                "to compile; simplify it"
            ) from None

    def render(self, row: Row) -> str:
        import jinja2
        from jinja2.exceptions import SecurityError

        context: dict[str, Any] = {**row, "row": row}
        token = _budget.set(_Budget())
        try:
            return self._render(context)
        except _LimitExceeded as exc:
            raise PromptError(
                f"option `{self.option}`: the template was stopped on this row: {exc}; simplify the template"
            ) from None
        except (RecursionError, MemoryError):
            raise PromptError(
                f"option `{self.option}`: the template was stopped on this row: it recursed too deep or ran "
                "out of memory; simplify the template"
            ) from None
        except jinja2.UndefinedError as exc:
            message = str(exc.message or exc)
            match = _UNDEFINED_NAME.search(message)
            name = next((g for g in match.groups() if g), None) if match else None
            fields = ", ".join(repr(k) for k in row) or "no fields"
            if name is None:
                raise PromptError(f"option `{self.option}`: the template failed on this row: {message}") from None
            raise PromptError(
                f"option `{self.option}`: the template uses field {name!r}, which the row does not have "
                f"(it has {fields})"
            ) from None
        except SecurityError as exc:
            raise PromptError(
                f"option `{self.option}`: the template did something the sandbox forbids: {exc}"
            ) from None
        except Exception as exc:  # only the template and this row's values were involved: the row's error
            raise PromptError(
                f"option `{self.option}`: the template failed on this row: {type(exc).__name__}: {exc}"
            ) from None
        finally:
            _budget.reset(token)

    def _render(self, context: dict[str, Any]) -> str:
        parts: list[str] = []
        size = 0
        for part in self._template.generate(context):
            size += len(part)
            if size > MAX_CHARS:
                raise _LimitExceeded(f"it rendered more than {MAX_CHARS:,} characters")
            parts.append(part)
        return "".join(parts)


def check_template(option: str, source: str) -> None:
    """Raise ConfigError naming `option` when `source` does not compile."""
    PromptTemplate(source, option)
