"""`${VAR}` and `${VAR:-default}` in settings values, expanded from the environment."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from elspeth.settings.structuring import KeyPath

# `$${` is a literal `${`; otherwise `${NAME}` or `${NAME:-default}` (default used when NAME is unset or
# empty, as in the shell).
_VAR = re.compile(r"\$(\$)?\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand(value: Any, path: KeyPath, environ: Mapping[str, str], problems: list[tuple[KeyPath, str]]) -> Any:
    if isinstance(value, str):
        return expand_str(value, path, environ, problems)
    if isinstance(value, dict):
        return {k: expand(v, path / str(k), environ, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, path / i, environ, problems) for i, v in enumerate(value)]
    return value


def expand_str(text: str, path: KeyPath, environ: Mapping[str, str], problems: list[tuple[KeyPath, str]]) -> str:
    def substitute(match: re.Match[str]) -> str:
        escaped, name, default = match.groups()
        if escaped:
            return match.group(0)[1:]
        found = environ.get(name)
        if found:
            return found
        if default is not None:
            return default
        if found is None:
            problems.append(
                (
                    path,
                    f"environment variable {name} is not set; set it (export {name}=...) "
                    f"or give a default: ${{{name}:-value}}",
                )
            )
        return ""

    return _VAR.sub(substitute, text)


def references(text: str) -> Iterator[tuple[str, str | None]]:
    for match in _VAR.finditer(text):
        escaped, name, default = match.groups()
        if not escaped:
            yield name, default
