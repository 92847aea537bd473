"""Settings data structured into attrs classes with a strict cattrs converter, every problem described with
the key path it is at and the fix, and all of them reported at once."""

from __future__ import annotations

import difflib
import enum
import re
import types
import typing
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

import attrs
import cattrs
from attrs import define
from cattrs.cols import list_structure_factory
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)

from elspeth.errors import ConfigError

T = TypeVar("T")


class _Mismatch(ValueError):
    """A value of the wrong type; its message is shown to the user as is."""


def describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return repr(value)


# cattrs' defaults call int()/str()/bool() on anything, so `plugin:` left empty became the plugin "None",
# `retries: 2.7` became 2 and `overwrite: "false"` became True. These hooks accept what YAML and `${VAR}`
# expansion naturally produce and refuse the rest with a message the user can act on.
def _structure_str(value: Any, _: type) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    hint = " (quote it if you meant the word)" if isinstance(value, bool) else ""
    raise _Mismatch(f"expected a string, got {describe(value)}{hint}")


def _structure_int(value: Any, _: type) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise _Mismatch(f"expected an integer, got {describe(value)}")


def _structure_float(value: Any, _: type) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise _Mismatch(f"expected a number, got {describe(value)}")


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _structure_bool(value: Any, _: type) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise _Mismatch(f"expected true or false, got {describe(value)}")


def _is_list(tp: Any) -> bool:
    return tp is list or typing.get_origin(tp) is list


def _strict_list(tp: Any, converter: cattrs.BaseConverter) -> Any:
    """cattrs would iterate a string into its characters and a mapping into its keys."""
    structure_items = list_structure_factory(tp, converter)

    def structure_list(value: Any, cl: Any) -> list[Any]:
        if not isinstance(value, list | tuple):
            raise _Mismatch(f"expected a list, got {describe(value)}")
        return structure_items(value, cl)

    return structure_list


converter = cattrs.Converter(forbid_extra_keys=True)
converter.register_structure_hook(str, _structure_str)
converter.register_structure_hook(int, _structure_int)
converter.register_structure_hook(float, _structure_float)
converter.register_structure_hook(bool, _structure_bool)
converter.register_structure_hook_factory(_is_list, _strict_list)


def structure(data: Any, cls: type[T], *, where: str, file: str | None = None) -> T:
    """Structure `data` into `cls`. A ConfigError lists every problem, one per line, each as
    `FILE: where.key: what is wrong; how to fix it`."""
    try:
        return converter.structure(data, cls)
    except cattrs.BaseValidationError as exc:
        problems = list(_problems(exc, data, KeyPath(prefix=where)))
        raise ConfigError(join_problems(file, problems)) from None
    except (ConfigError, _Mismatch) as exc:
        # Not about one field: an attrs validator of `cls` itself, or `data` is not even the right shape.
        raise ConfigError(join_problems(file, [(KeyPath(prefix=where), str(exc))])) from None


@define
class KeyPath:
    """A key path like `sinks.output.options.path` or `transforms[0].plugin`."""

    parts: tuple[str | int, ...] = ()
    prefix: str = ""

    def __truediv__(self, part: str | int) -> KeyPath:
        return KeyPath((*self.parts, part), self.prefix)

    def __str__(self) -> str:
        text = self.prefix
        for part in self.parts:
            if isinstance(part, int):
                text += f"[{part}]"
            elif re.fullmatch(r"[A-Za-z0-9_-]+", part):
                text += f".{part}" if text else part
            else:
                text += f"[{part!r}]"
        return text or "(top level)"


def _problems(exc: BaseException, value: Any, path: KeyPath) -> Iterator[tuple[KeyPath, str]]:
    """Walk cattrs' exception tree, carrying the offending value along so messages can quote it."""
    if isinstance(exc, ForbiddenExtraKeysError):
        allowed = [a.name for a in attrs.fields(exc.cl)]
        for key in sorted(exc.extra_fields):
            if not allowed:
                yield path / key, "unknown key; this takes no options, remove it"
                continue
            close = difflib.get_close_matches(key, allowed, n=1)
            fix = f"did you mean {close[0]!r}?" if close else "remove it or check its spelling;"
            yield path / key, f"unknown key; {fix} (allowed here: {', '.join(allowed)})"
        return
    if isinstance(exc, ClassValidationError | IterableValidationError):
        with_notes, without = exc.group_exceptions()
        for sub, note in with_notes:
            if isinstance(note, AttributeValidationNote):
                child = value.get(note.name) if isinstance(value, Mapping) else None
                if isinstance(sub, KeyError):
                    yield path / note.name, _missing_fix(note.name)
                else:
                    yield from _problems_at(sub, child, path / note.name, note.type)
            elif isinstance(note, IterableValidationNote):
                child = _child(value, note.index)
                if note.startswith("Structuring mapping key"):
                    yield (
                        path / str(note.index),
                        f"key {note.index!r} is not valid: {_reason(sub, note.type)}",
                    )
                else:
                    yield from _problems_at(sub, child, path / note.index, note.type)
        for sub in without:
            yield from _problems_at(sub, value, path, None)
        return
    yield path, _reason(exc, None, value)


def _problems_at(exc: BaseException, value: Any, path: KeyPath, expected: Any) -> Iterator[tuple[KeyPath, str]]:
    if isinstance(exc, cattrs.BaseValidationError | ForbiddenExtraKeysError):
        yield from _problems(exc, value, path)
    else:
        yield path, _reason(exc, expected, value)


def _child(value: Any, index: Any) -> Any:
    if isinstance(value, Mapping):
        return value.get(index)
    if isinstance(value, list | tuple) and isinstance(index, int) and 0 <= index < len(value):
        return value[index]
    return None


def _reason(exc: BaseException, expected: Any, value: Any = None) -> str:
    if isinstance(exc, _Mismatch | ConfigError):
        return str(exc)
    if expected is not None:
        return f"expected {_type_name(expected)}, got {describe(value)}"
    return str(exc) or type(exc).__name__


def _missing_fix(name: str) -> str:
    if name == "plugin":
        return "required field missing; add 'plugin: <name>' (see 'elspeth plugins')"
    if name == "sinks":
        return "required field missing; add 'sinks:' with at least one sink, e.g. 'output: {plugin: csv, ...}'"
    if name == "source":
        return "required field missing; add 'source:' with 'plugin:' and 'options:'"
    return f"required field missing; add '{name}: <value>'"


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in args]
        optional = len(args) < len(typing.get_args(tp))
        return " or ".join(names) + (" (or nothing)" if optional else "")
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (dict, Mapping) or tp is dict:
        return "a mapping"
    if origin in (list, tuple, set, frozenset) or tp in (list, tuple):
        return "a list"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in tp)
    if attrs.has(tp):
        return "a mapping with keys " + ", ".join(a.name for a in attrs.fields(tp))
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def join_problems(file: str | None, problems: list[tuple[KeyPath, str]]) -> str:
    lead = f"{file}: " if file else ""
    return "\n".join(f"{lead}{path}: {message}" for path, message in problems)
