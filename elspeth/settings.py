"""The pipeline settings: attrs models, and loading them from a YAML file.

Loading reads the YAML, expands `${VAR}` / `${VAR:-default}` from the environment, structures the result into
`Settings` with cattrs and cross-checks what one field says about another (sink names). Every error names
the file, the key and the fix, and all problems are reported at once rather than one per attempt.
"""

from __future__ import annotations

import difflib
import enum
import errno
import os
import re
import stat
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs
import cattrs
import yaml
from attrs import define, field
from cattrs.cols import list_structure_factory
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from elspeth.errors import ConfigError, LandscapeError
from elspeth.landscape.database import check_url
from elspeth.landscape.redaction import REDACTED, Redactor, embedded_credentials, looks_secret
from elspeth.retries import RetryPolicy

T = TypeVar("T")
MAX_CONCURRENCY = 256
"""Rows in flight in one node: each is a thread and a connection, and a reorder buffer slot."""


@define
class SourceSettings:
    plugin: str
    options: dict[str, Any] = field(factory=dict)
    on_quarantine: str | None = None
    """Sink that receives quarantined records (they are recorded in the Landscape either way)."""


@define
class TransformSettings:
    plugin: str
    options: dict[str, Any] = field(factory=dict)
    name: str | None = None
    on_error: str | None = None
    """Sink for rows this node returns an Error for; falls back to the pipeline's `on_error`."""
    concurrency: int | None = None
    """Rows in flight at once in this node (plugins with external calls only); the plugin's default if unset."""


@define
class TriggerSettings:
    count: int | None = None
    timeout_seconds: float | None = None


@define
class AggregationSettings:
    plugin: str
    options: dict[str, Any] = field(factory=dict)
    name: str | None = None
    on_error: str | None = None
    trigger: TriggerSettings = field(factory=TriggerSettings)


@define
class SinkSettings:
    plugin: str
    options: dict[str, Any] = field(factory=dict)


@define
class RetrySettings:
    """The engine's retries of a row (or batch) whose plugin answered a retryable Error."""

    max_attempts: int = 3
    backoff_seconds: float = 1.0

    def policy(self) -> RetryPolicy:
        return RetryPolicy(max_attempts=self.max_attempts, backoff_seconds=self.backoff_seconds)


@define
class EngineSettings:
    write_batch_rows: int = 1000
    """Rows handed to a sink's write() at a time."""
    checkpoint_every_rows: int = 20_000
    """Sinks are flushed and a checkpoint taken after this many source rows..."""
    checkpoint_every_seconds: float = 30.0
    """...or this many seconds, whichever comes first."""
    retry: RetrySettings = field(factory=RetrySettings)


@define
class LandscapeSettings:
    url: str | None = None
    """SQLAlchemy URL; default sqlite:///.elspeth/landscape.db beside the current directory."""
    payload_dir: str | None = None
    """Content-addressed payload store; default .elspeth/payloads."""


@define
class Settings:
    source: SourceSettings
    sinks: dict[str, SinkSettings]
    transforms: list[TransformSettings] = field(factory=list)
    aggregations: list[AggregationSettings] = field(factory=list)
    default_sink: str | None = None
    """Where rows that finish the pipeline go; may be omitted when there is only one sink."""
    on_error: str | None = None
    landscape: LandscapeSettings = field(factory=LandscapeSettings)
    engine: EngineSettings = field(factory=EngineSettings)


# ---------------------------------------------------------------- structuring


class _Mismatch(ValueError):
    """A value of the wrong type; its message is shown to the user as is."""


def _describe(value: Any) -> str:
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
    raise _Mismatch(f"expected a string, got {_describe(value)}{hint}")


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
    raise _Mismatch(f"expected an integer, got {_describe(value)}")


def _structure_float(value: Any, _: type) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise _Mismatch(f"expected a number, got {_describe(value)}")


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _structure_bool(value: Any, _: type) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise _Mismatch(f"expected true or false, got {_describe(value)}")


def _is_list(tp: Any) -> bool:
    return tp is list or typing.get_origin(tp) is list


def _strict_list(tp: Any, converter: cattrs.BaseConverter) -> Any:
    """cattrs would iterate a string into its characters and a mapping into its keys."""
    structure_items = list_structure_factory(tp, converter)

    def structure_list(value: Any, cl: Any) -> list[Any]:
        if not isinstance(value, list | tuple):
            raise _Mismatch(f"expected a list, got {_describe(value)}")
        return structure_items(value, cl)

    return structure_list


_converter = cattrs.Converter(forbid_extra_keys=True)
_converter.register_structure_hook(str, _structure_str)
_converter.register_structure_hook(int, _structure_int)
_converter.register_structure_hook(float, _structure_float)
_converter.register_structure_hook(bool, _structure_bool)
_converter.register_structure_hook_factory(_is_list, _strict_list)


def structure(data: Any, cls: type[T], *, where: str, file: str | None = None) -> T:
    """Structure `data` into `cls`. A ConfigError lists every problem, one per line, each as
    `FILE: where.key: what is wrong; how to fix it`."""
    try:
        return _converter.structure(data, cls)
    except cattrs.BaseValidationError as exc:
        problems = list(_problems(exc, data, _Path(prefix=where)))
        raise ConfigError(_join(file, problems)) from None
    except (ConfigError, _Mismatch) as exc:
        # Not about one field: an attrs validator of `cls` itself, or `data` is not even the right shape.
        raise ConfigError(_join(file, [(_Path(prefix=where), str(exc))])) from None


@define
class _Path:
    """A key path like `sinks.output.options.path` or `transforms[0].plugin`."""

    parts: tuple[str | int, ...] = ()
    prefix: str = ""

    def __truediv__(self, part: str | int) -> _Path:
        return _Path((*self.parts, part), self.prefix)

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


def _problems(exc: BaseException, value: Any, path: _Path) -> Iterator[tuple[_Path, str]]:
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


def _problems_at(exc: BaseException, value: Any, path: _Path, expected: Any) -> Iterator[tuple[_Path, str]]:
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
        return f"expected {_type_name(expected)}, got {_describe(value)}"
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


def _join(file: str | None, problems: list[tuple[_Path, str]]) -> str:
    lead = f"{file}: " if file else ""
    return "\n".join(f"{lead}{path}: {message}" for path, message in problems)


# ---------------------------------------------------------------- loading


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
        raise ConfigError(f"{file}: the top level must be a mapping with 'source:' and 'sinks:', not {_describe(data)}")
    return data


def load_settings(path: str | Path) -> Settings:
    """Read, expand, structure and cross-check the settings in `path`."""
    return settings_from_raw(read_settings_file(path), file=str(path))


def settings_from_raw(raw: Mapping[str, Any], *, file: str, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from an already-read mapping (see `read_settings_file`); `file` names it in errors."""
    problems: list[tuple[_Path, str]] = []
    expanded = _expand(raw, _Path(), os.environ if environ is None else environ, problems)
    if problems:
        raise ConfigError(_join(file, problems))
    settings = structure(expanded, Settings, where="", file=file)
    problems = list(_cross_check(settings))
    if problems:
        raise ConfigError(_join(file, problems))
    return settings


# `$${` is a literal `${`; otherwise `${NAME}` or `${NAME:-default}` (default used when NAME is unset or
# empty, as in the shell).
_VAR = re.compile(r"\$(\$)?\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(value: Any, path: _Path, environ: Mapping[str, str], problems: list[tuple[_Path, str]]) -> Any:
    if isinstance(value, str):
        return _expand_str(value, path, environ, problems)
    if isinstance(value, dict):
        return {k: _expand(v, path / str(k), environ, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, path / i, environ, problems) for i, v in enumerate(value)]
    return value


def _expand_str(text: str, path: _Path, environ: Mapping[str, str], problems: list[tuple[_Path, str]]) -> str:
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


def _references(text: str) -> Iterator[tuple[str, str | None]]:
    for match in _VAR.finditer(text):
        escaped, name, default = match.groups()
        if not escaped:
            yield name, default


def _cross_check(settings: Settings) -> Iterator[tuple[_Path, str]]:
    sinks = settings.sinks
    names = ", ".join(sinks) or "none defined"
    root = _Path()
    if not sinks:
        yield (
            root / "sinks",
            "at least one sink is required; add one, e.g. 'output: {plugin: csv, options: ...}'",
        )
        return

    def check_sink(path: _Path, name: str | None) -> Iterator[tuple[_Path, str]]:
        if name is not None and name not in sinks:
            close = difflib.get_close_matches(name, list(sinks), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            yield path, f"no sink named {name!r}; {hint}add it under 'sinks:' or use one of: {names}"

    if settings.default_sink is None and len(sinks) > 1:
        yield (
            root / "default_sink",
            f"required when there is more than one sink; add 'default_sink: <one of: {names}>'",
        )
    yield from check_sink(root / "default_sink", settings.default_sink)
    yield from check_sink(root / "on_error", settings.on_error)
    yield from check_sink(root / "source" / "on_quarantine", settings.source.on_quarantine)
    for i, t in enumerate(settings.transforms):
        yield from check_sink(root / "transforms" / i / "on_error", t.on_error)
        if t.concurrency is not None and not 1 <= t.concurrency <= MAX_CONCURRENCY:
            yield (
                root / "transforms" / i / "concurrency",
                f"must be a whole number from 1 to {MAX_CONCURRENCY}, got {t.concurrency}",
            )
    seen: dict[str, _Path] = {}
    steps: list[tuple[_Path, TransformSettings | AggregationSettings]] = [
        *((root / "transforms" / i, step) for i, step in enumerate(settings.transforms)),
        *((root / "aggregations" / i, step) for i, step in enumerate(settings.aggregations)),
    ]
    for at, step in steps:
        if step.name is None:
            continue
        if step.name in seen:
            yield at / "name", f"{step.name!r} is already the name of {seen[step.name]}; rename one"
        seen.setdefault(step.name, at)
    for i, agg in enumerate(settings.aggregations):
        at = root / "aggregations" / i
        yield from check_sink(at / "on_error", agg.on_error)
        yield from _positive(at / "trigger" / "count", agg.trigger.count)
        yield from _positive(at / "trigger" / "timeout_seconds", agg.trigger.timeout_seconds)
    if settings.landscape.url:
        try:
            check_url(settings.landscape.url)
        except LandscapeError as exc:
            yield root / "landscape" / "url", str(exc)
    if settings.landscape.payload_dir:
        problem = _directory_problem(settings.landscape.payload_dir)
        if problem:
            yield root / "landscape" / "payload_dir", problem
    engine = root / "engine"
    yield from _positive(engine / "write_batch_rows", settings.engine.write_batch_rows)
    yield from _positive(engine / "checkpoint_every_rows", settings.engine.checkpoint_every_rows)
    yield from _positive(engine / "checkpoint_every_seconds", settings.engine.checkpoint_every_seconds)
    yield from _positive(engine / "retry" / "max_attempts", settings.engine.retry.max_attempts)
    if settings.engine.retry.backoff_seconds < 0:
        yield engine / "retry" / "backoff_seconds", "must be 0 or more; give the seconds to wait before a retry"


def _directory_problem(path: str) -> str | None:
    """Why `path` cannot be a directory elspeth creates or uses, or None."""
    if "\x00" in path:
        return f"{path!r} holds a NUL character, which no file name can; fix the path"
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            return f"{path[:80]}... is too long a path for this system; use a shorter one"
        return None  # a parent that is a file, no permission: creating it says so, naming the path
    if not stat.S_ISDIR(mode):
        return f"{path} exists and is not a directory; name a directory (it is created if missing)"
    return None


def _positive(path: _Path, value: float | None) -> Iterator[tuple[_Path, str]]:
    if value is not None and value <= 0:
        yield path, f"must be greater than 0, got {value}; give a positive number or remove the key"


# ---------------------------------------------------------------- secrets


# Broader than the Landscape's header/field list: environment variables are named by people
# (AZURE_STORAGE_KEY, OPENAI_SAS, DB_PASSWORD), and redacting a harmless value costs nothing.


def is_secret_name(name: str) -> bool:
    """Whether an environment variable or option key of this name holds a credential."""
    return looks_secret(name)


def secret_values(raw_settings: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> set[str]:
    """Every credential the settings resolve to, so the engine can keep it out of the Landscape: the values
    of secret-looking environment variables they reference, every value under a secret-looking option key,
    the credentials written into any value (`?apikey=...` in a URL, `AccountKey=...` in a connection
    string, a URL's password, the landscape URL's included). `raw_settings` is the mapping before expansion."""
    env = os.environ if environ is None else environ
    found: set[str] = set()
    for path, text in _strings(raw_settings, ()):
        found |= embedded_credentials(_expand_str(text, _Path(), env, []))
        for name, default in _references(text):
            if is_secret_name(name):
                found.add(env.get(name) or default or "")
        if _under_secret_option(path):
            # The whole value ("Bearer abc") and each variable in it, which a plugin may send on its own.
            found.add(_expand_str(text, _Path(), env, []))
            found.update(env.get(name) or default or "" for name, default in _references(text))
    landscape = raw_settings.get("landscape")
    if isinstance(landscape, Mapping) and isinstance(landscape.get("url"), str):
        found |= _url_password(_expand_str(landscape["url"], _Path(), env, []))
    found.discard("")
    return found


# The shell's working directories, not passwords, whatever "pwd" means elsewhere.
_NOT_CREDENTIALS = frozenset({"PWD", "OLDPWD"})
# Issued credentials are long (an AWS key id has 20 characters); a short value in a variable the settings
# never name is more likely a local default ("postgres", "testing") that would blank out ordinary words.
_MIN_ENVIRONMENT_SECRET = 10


def environment_secrets(environ: Mapping[str, str] | None = None) -> set[str]:
    """The values of the environment's secret-looking variables. SDKs read credentials from the environment
    without the settings naming them (AWS_SESSION_TOKEN, AZURE_CLIENT_SECRET), so the run knows them too."""
    env = os.environ if environ is None else environ
    return {
        value
        for name, value in env.items()
        if name not in _NOT_CREDENTIALS and is_secret_name(name) and len(value) >= _MIN_ENVIRONMENT_SECRET
    }


def run_secrets(settings_data: Mapping[str, Any]) -> set[str]:
    """What the engine keeps out of everything a run of these settings (expanded, as plain data) writes:
    their `secret_values` and the `environment_secrets`."""
    return secret_values(settings_data, environ={}) | environment_secrets()


def _strings(value: Any, path: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, (*path, i))


def _under_secret_option(path: tuple[Any, ...]) -> bool:
    """Only keys inside `options` count: elsewhere keys are elspeth's own fields and the user's sink names."""
    if "options" not in path:
        return False
    below = path[path.index("options") + 1 :]
    return any(isinstance(k, str) and is_secret_name(k) for k in below)


def _url_password(url: str) -> set[str]:
    try:
        password = make_url(url).password
    except ArgumentError:
        return set()
    return {str(password)} if password else set()


def redacted(settings: Settings, secrets: frozenset[str] | set[str] = frozenset()) -> dict[str, Any]:
    """The settings as plain data, safe to store: values under secret-looking option keys, the landscape
    URL's password and any of `secrets` appearing in a string are replaced by "***"."""
    data: dict[str, Any] = _converter.unstructure(settings)
    redactor = Redactor.of(secrets)
    url = data["landscape"].get("url")
    if url:
        data["landscape"]["url"] = redactor.text(hide_password(url))
    return _redact(data, (), redactor)


def hide_password(url: str) -> str:
    """A database URL fit to print or store: its password shown as ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _redact(value: Any, path: tuple[Any, ...], redactor: Redactor) -> Any:
    if isinstance(value, dict):
        return {k: _redact(v, (*path, k), redactor) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, (*path, i), redactor) for i, v in enumerate(value)]
    if _under_secret_option(path) and value not in (None, ""):
        return REDACTED
    if isinstance(value, str):
        return redactor.text(value)
    return value
