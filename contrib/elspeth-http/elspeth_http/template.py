"""URL templates: `{field}` placeholders filled from the row's fields, URL-quoted.

Sandboxed: a placeholder names one row field and nothing else. Attribute and index access (`{row.x}`,
`{a[0]}`), conversions (`{a!r}`) and format specs (`{a:>10}`) are refused when the options are read, and
the URL is assembled by concatenation, never by `str.format`, so a template cannot reach any object but
the row's own values.
"""

from __future__ import annotations

import string
from typing import Any
from urllib.parse import quote

from attrs import frozen

from elspeth.errors import ConfigError


class MissingField(KeyError):
    """The row lacks a field the template names."""


class UnusableValue(ValueError):
    """The row's value cannot go into a URL (an object, a list)."""


@frozen
class UrlTemplate:
    """Literal text and field names, alternating: `parts[0]`, `fields[0]`, `parts[1]`, ... `parts[-1]`."""

    source: str
    parts: tuple[str, ...]
    fields: tuple[str, ...]

    @classmethod
    def parse(cls, template: str, option: str = "url") -> UrlTemplate:
        try:
            pieces = list(string.Formatter().parse(template))
        except ValueError as exc:
            raise ConfigError(
                f"option `{option}`: {exc} in {template!r}; write a literal brace as {{{{ or }}}}"
            ) from None
        parts: list[str] = []
        fields: list[str] = []
        literal = ""
        for text, name, spec, conversion in pieces:
            literal += text
            if name is None:
                continue
            if not name:
                raise ConfigError(f"option `{option}`: an empty placeholder {{}} in {template!r}; name a row field")
            if "." in name or "[" in name or conversion or spec:
                shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
                raise ConfigError(
                    f"option `{option}`: placeholder {shown} in {template!r} is not a plain field name; "
                    "placeholders name a row field only ({field}), without attributes, indexes, "
                    "conversions or format specs"
                )
            parts.append(literal)
            fields.append(name)
            literal = ""
        parts.append(literal)
        return cls(template, tuple(parts), tuple(fields))

    def render(self, row: dict[str, Any]) -> str:
        """The URL for `row`; raises MissingField or UnusableValue naming the field."""
        out = [self.parts[0]]
        for name, literal in zip(self.fields, self.parts[1:], strict=True):
            if name not in row:
                raise MissingField(name)
            out.append(quote(_text(name, row[name]), safe=""))
            out.append(literal)
        return "".join(out)


def _text(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    what = "null" if value is None else type(value).__name__
    raise UnusableValue(f"field {name!r} is {what}, which has no place in a URL; give it a string or a number")
