"""Reading a settings file: YAML with bounds that hold before any tree is built (size, depth, values)."""

from __future__ import annotations

import errno
import typing
from pathlib import Path
from typing import Any

import yaml

from elspeth.errors import ConfigError
from elspeth.settings.structuring import describe

# A settings file is a few KiB. These bounds hold before any tree is built: an alias bomb (a few hundred bytes
# whose aliases expand to billions of values) or a document nested hundreds deep is refused with a message,
# instead of costing minutes, gigabytes or a RecursionError.
MAX_SETTINGS_BYTES = 2 * 1024 * 1024
MAX_YAML_DEPTH = 100
MAX_YAML_VALUES = 200_000
"""Values in the document once every alias is expanded (each scalar, list and mapping counts one)."""


class _TooBig(yaml.composer.ComposerError):
    """Valid YAML beyond the bounds above."""


class _BoundedLoader(yaml.SafeLoader):
    """safe_load with bounds: the nesting depth and the number of values once aliases are expanded are
    counted as the document is composed (an alias costs what its anchor expands to), and a key given twice
    is an error: the second `output:` sink would otherwise silently replace the first."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._expanded: dict[int, tuple[int, int]] = {}
        """id(node) -> (values it expands to, its depth), for every node composed completely."""

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        mark = self.peek_event().start_mark
        if self._depth >= MAX_YAML_DEPTH:
            raise _TooBig(None, None, f"nested more than {MAX_YAML_DEPTH} levels deep; flatten it", mark)
        alias = self.check_event(yaml.AliasEvent)
        self._depth += 1
        try:
            composed = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        assert composed is not None  # None only at the end of a stream, which get_single_node checks first
        node: yaml.Node = composed
        if alias:  # what its anchor expands to, counted again wherever it is used
            if id(node) not in self._expanded:
                raise _TooBig(
                    None, None, "an alias refers to the value it is part of (a recursive structure); remove it", mark
                )
            values, depth = self._expanded[id(node)]
        elif isinstance(node, yaml.ScalarNode):
            values, depth = 1, 1
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else [n for kv in node.value for n in kv]
            counted = [self._expanded[id(child)] for child in children]
            values = 1 + sum(c[0] for c in counted)
            depth = 1 + max((c[1] for c in counted), default=0)
        if values > MAX_YAML_VALUES or depth > MAX_YAML_DEPTH:
            raise _TooBig(
                None,
                None,
                f"its aliases expand to more than {MAX_YAML_VALUES:,} values or {MAX_YAML_DEPTH} levels (an alias "
                "bomb?); write the values out or use fewer aliases",
                mark,
            )
        self._expanded[id(node)] = (values, depth)
        return node


def _construct_mapping(loader: _BoundedLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        if isinstance(key, typing.Hashable) and key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice (lines {seen[key]} and {line})", key_node.start_mark
            )
        if isinstance(key, typing.Hashable):
            seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_BoundedLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_settings_file(path: str | Path) -> dict[str, Any]:
    """The YAML mapping in `path`, before `${VAR}` expansion (the "raw" settings)."""
    file = str(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_SETTINGS_BYTES + 1)
        if len(raw) > MAX_SETTINGS_BYTES:
            raise ConfigError(
                f"{file}: larger than {MAX_SETTINGS_BYTES // (1024 * 1024)} MiB, which no settings file needs; "
                "check the path (settings are a YAML file) or move the data into a source"
            )
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such file; check the path (settings are a YAML file)") from None
    except IsADirectoryError:
        raise ConfigError(f"{file}: is a directory; give the path of the settings YAML file") from None
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise ConfigError(f"{file[:80]}...: too long a path for this system; use a shorter one") from None
        raise ConfigError(f"{file}: cannot read the settings file: {exc.strerror}; check the path") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{file}: cannot read the settings file: {exc}") from None
    try:
        data = yaml.load(text, Loader=_BoundedLoader)  # a SafeLoader subclass: plain data only
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        if isinstance(exc, _TooBig):
            raise ConfigError(f"{file}: {where}{problem}") from None
        raise ConfigError(f"{file}: {where}YAML syntax error: {problem}; fix the YAML there") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: YAML syntax error: {exc}") from None
    if data is None:
        raise ConfigError(f"{file}: the file is empty; it needs at least 'source:' and 'sinks:'")
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: the top level must be a mapping with 'source:' and 'sinks:', not {describe(data)}")
    return data
