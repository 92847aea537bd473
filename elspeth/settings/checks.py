"""What one setting says about another (sink names, directories, numbers), checked after structuring."""

from __future__ import annotations

import difflib
import errno
import os
import stat
from collections.abc import Iterator

from elspeth.errors import LandscapeError
from elspeth.landscape.database import check_url
from elspeth.settings.model import MAX_CONCURRENCY, AggregationSettings, Settings, TransformSettings
from elspeth.settings.structuring import KeyPath


def cross_check(settings: Settings) -> Iterator[tuple[KeyPath, str]]:
    sinks = settings.sinks
    names = ", ".join(sinks) or "none defined"
    root = KeyPath()
    if not sinks:
        yield (
            root / "sinks",
            "at least one sink is required; add one, e.g. 'output: {plugin: csv, options: ...}'",
        )
        return

    def check_sink(path: KeyPath, name: str | None) -> Iterator[tuple[KeyPath, str]]:
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
    seen: dict[str, KeyPath] = {}
    steps: list[tuple[KeyPath, TransformSettings | AggregationSettings]] = [
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


def _positive(path: KeyPath, value: float | None) -> Iterator[tuple[KeyPath, str]]:
    if value is not None and value <= 0:
        yield path, f"must be greater than 0, got {value}; give a positive number or remove the key"
