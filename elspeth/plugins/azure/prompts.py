"""Prompt templates: Jinja2 in a sandbox, over one row's fields and nothing else.

A template sees the row's fields as variables (`{{ text }}`) and the whole row as `row` (`{{ row["a b"] }}`
for a name that is no identifier). A field the row lacks is an error naming it (StrictUndefined), never an
empty string in the prompt. The sandbox (immutable) refuses attribute access beyond plain data, so a
template cannot reach Python internals (`{{ row.__class__ }}`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from elspeth.api import Row
from elspeth.errors import ConfigError

if TYPE_CHECKING:
    import jinja2

# "'text' is undefined" for a variable; "'dict object' has no attribute 'text'" for row.text or row["text"].
_UNDEFINED_NAME = re.compile(r"^'([^']+)' is undefined$|^'dict object' has no (?:attribute|element) '?([^']+?)'?$")


class PromptError(Exception):
    """A template could not be rendered for this row (the row's fault: a missing field, say)."""


def _environment() -> jinja2.Environment:
    try:
        from jinja2 import StrictUndefined
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:  # pragma: no cover - jinja2 comes with elspeth[azure]
        raise ConfigError("prompt templates need jinja2: pip install 'elspeth[azure]'") from None
    return ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


class PromptTemplate:
    """One compiled template; `option` names where it came from, for messages."""

    def __init__(self, source: str, option: str) -> None:
        environment = _environment()
        import jinja2

        self.source = source
        self.option = option
        try:
            self._template = environment.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigError(
                f"option `{option}` is not a valid template: {exc.message} (line {exc.lineno}); templates are "
                "Jinja2, e.g. 'Classify: {{ text }}'"
            ) from None

    def render(self, row: Row) -> str:
        import jinja2
        from jinja2.exceptions import SecurityError

        context: dict[str, Any] = {**row, "row": row}
        try:
            return self._template.render(context)
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
        except (jinja2.TemplateError, TypeError, ValueError, ArithmeticError) as exc:
            raise PromptError(
                f"option `{self.option}`: the template failed on this row: {type(exc).__name__}: {exc}"
            ) from None


def check_template(option: str, source: str) -> None:
    """Raise ConfigError naming `option` when `source` does not compile."""
    PromptTemplate(source, option)
