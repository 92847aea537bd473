"""attrs validators for plugin options, public for every plugin. They raise ConfigError, whose message
survives cattrs (a ValueError's would be reduced to "invalid value"), and name the option and what to put
there instead. An option left at None (optional) passes the number checks."""

from __future__ import annotations

import codecs
import math
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from elspeth.errors import ConfigError

Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def one_of(*choices: str) -> Validator:
    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value not in choices:
            raise ConfigError(f"option `{attribute.name}` is {value!r}; use one of: {', '.join(choices)}")

    return check


def values_one_of(*choices: str) -> Validator:
    """For a dict option whose values are choices, e.g. `types: {age: int}`."""

    def check(_instance: Any, attribute: attrs.Attribute[Any], value: dict[str, Any]) -> None:
        for key, choice in value.items():
            if choice not in choices:
                raise ConfigError(f"option `{attribute.name}.{key}` is {choice!r}; use one of: {', '.join(choices)}")

    return check


def single_character(_instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if len(value) != 1:
        raise ConfigError(f"option `{attribute.name}` must be a single character, not {value!r}")


def known_encoding(_instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    try:
        codecs.lookup(value)
    except LookupError:
        raise ConfigError(
            f"option `{attribute.name}`: {value!r} is not an encoding Python knows; use e.g. utf-8, latin-1 or cp1252"
        ) from None


def no_duplicates(_instance: Any, attribute: attrs.Attribute[Any], value: Iterable[str] | None) -> None:
    seen: set[str] = set()
    for item in value or ():
        if item in seen:
            raise ConfigError(f"option `{attribute.name}` lists {item!r} twice; list it once")
        seen.add(item)


def positive(_instance: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"option `{attribute.name}` must be a number greater than 0, not {value!r}")


def not_negative(_instance: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not (value >= 0 and math.isfinite(value)):
        raise ConfigError(f"option `{attribute.name}` must be a number of 0 or more, not {value!r}")


def at_least(minimum: float, *, maximum: float | None = None, unit: str = "") -> Validator:
    """A number from `minimum` (to `maximum`, if given); `unit` is said after the bounds (" MiB")."""

    def check(_instance: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
        if value is not None and (value < minimum or (maximum is not None and value > maximum)):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
            raise ConfigError(f"option `{attribute.name}` is {value!r}; it must be {bound}{unit}")

    return check


__all__ = [
    "Validator",
    "at_least",
    "known_encoding",
    "no_duplicates",
    "not_negative",
    "one_of",
    "positive",
    "single_character",
    "values_one_of",
]
