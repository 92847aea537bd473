"""The crash-point sweep (issue 8, part 1), in the manner of SQLite's crash tests.

For five small pipelines, the run is SIGKILLed just before and just after EVERY Landscape commit, and its
resume killed again at one of its own commits (depth two); SIGINT or SIGTERM (in turn) is delivered inside every
sink write and flush, the resume signalled again, and both at recorder calls (sampled by stride); Ctrl-C is
followed by a SIGKILL or a second signal while the run stops. After each story the run is resumed until it
completes, then: every sink's bytes equal an uninterrupted run's, the Landscape sweep is clean (every token
one terminal outcome, no state open, no batch draft or executing, artifacts hash to their bytes, FKs
resolve) and SQLite's integrity_check and foreign_key_check are clean. A signalled attempt must return an
`interrupted` (or `completed`) RunSummary, with runs.status to match and nothing left open.

The points are enumerated by an uninterrupted run of each pipeline, made while the tests are collected
(crash_points.py holds the seam, the pipelines and the checks). Each attempt runs in a process forked from
the test's: a real process that SIGKILL ends like any other, whose start costs nothing (no interpreter and
imports to start, which would cost more than these small runs). ELSPETH_TEST_CRASH_SWEEP=full widens it.
"""

from __future__ import annotations

import os
import shutil
import signal
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from attrs import frozen

from elspeth.landscape.database import open_database
from elspeth.plugin_manager import PluginRegistry, make_plugin_manager

from . import sample_plugins
from .crash_points import PIPELINES, Reference, Strike, play, reference

ROWS = 14
FULL = os.environ.get("ELSPETH_TEST_CRASH_SWEEP") == "full"
"""ELSPETH_TEST_CRASH_SWEEP=full: SIGINT and SIGTERM at EVERY recorder call (before and after) and sink
point, about five times as many stories; by default recorder calls are sampled and the signals alternate."""
CALL_SAMPLES = 8
"""Recorder-call points per pipeline and signal (before and after alternately, spread evenly)."""
DEPTH_TWO = [
    (2, "after"),
    (3, "after"),
    (4, "before"),
    (3, "before"),
    (4, "after"),
    (5, "after"),
    (1, "after"),
    (6, "after"),
    (8, "before"),
]
"""Where a resume is killed in turn, as (its Nth commit, before/after). A resume's first commits open the
database, claim the run and close what the killed attempt left open, then its sinks flush; a resume with
fewer commits than N is not killed."""
RESUME_CALLS = [3, 9, 20, 40]
"""Recorder calls of a resume at which it is signalled in turn."""
RESUME_SIGNALLED_EVERY = 3
"""Of the commits a run is killed at, every third has its resume signalled (every one with FULL)."""
POSTGRES_PIPELINES = ("passthrough", "routing", "pending")
POSTGRES_EVERY = 3
"""PostgreSQL takes every third point of these pipelines."""


@frozen
class Point:
    pipeline: str
    chains: tuple[tuple[Strike, ...], ...]

    @property
    def id(self) -> str:
        return self.pipeline + "-" + "-resume-".join("-then-".join(map(str, chain)) for chain in self.chains)


def enumerate_points(pipeline: str, counts: dict[str, int]) -> Iterator[Point]:
    def point(*chains: Sequence[Strike]) -> Point:
        return Point(pipeline, tuple(tuple(c) for c in chains))

    commits = [(n, when) for n in range(1, counts["commit"] + 1) for when in ("before", "after")]
    for i, (n, when) in enumerate(commits):
        k, then = DEPTH_TWO[i % len(DEPTH_TWO)]
        yield point([Strike("commit", n, when, "KILL")], [Strike("commit", k, then, "KILL")])
        # The resume of a killed run stopped by a signal before it has redone what the kill left (a batch
        # executing, rows in flight): the run is interrupted, and all of that must say so.
        if FULL or i % RESUME_SIGNALLED_EVERY == 0:
            sig = ("INT", "TERM")[i // RESUME_SIGNALLED_EVERY % 2]
            again = Strike("call", RESUME_CALLS[i // RESUME_SIGNALLED_EVERY % len(RESUME_CALLS)], "before", sig)
            yield point([Strike("commit", n, when, "KILL")], [again])
    sinks = [("write", n, "mid") for n in range(1, counts["write"] + 1)]
    sinks += [("flush", n, when) for n in range(1, counts["flush"] + 1) for when in ("before", "after")]
    for i, (site, n, when) in enumerate(sinks):
        for sig in ("INT", "TERM") if FULL else [("INT", "TERM")[i % 2]]:
            again = Strike("call", RESUME_CALLS[i // 2 % len(RESUME_CALLS)], "before", sig)
            yield point([Strike(site, n, when, sig)], [again])
    calls = counts["call"]
    for s, sig in enumerate(("INT", "TERM")):
        if FULL:
            for n in range(1, calls + 1):
                yield point([Strike("call", n, "before", sig)])
                yield point([Strike("call", n, "after", sig)])
            continue
        stride = max(1, calls // CALL_SAMPLES)
        for i, n in enumerate(range(1 + s * stride // 2, calls + 1, stride)):
            yield point([Strike("call", n, ("before", "after")[i % 2], sig)])
    # A signal while the Landscape is being opened (the first commit is the schema's), by a run and a resume.
    yield point([Strike("commit", 1, "before", "INT")])
    yield point([Strike("commit", counts["commit"] // 2, "after", "KILL")], [Strike("commit", 1, "before", "TERM")])
    # A signal, then a SIGKILL or a second signal while the run stops, at its next commit.
    for n in (calls // 3, 2 * calls // 3):
        yield point([Strike("call", n, "after", "INT"), Strike("commit", 1, "before", "KILL")])
        yield point([Strike("call", n + 1, "before", "INT"), Strike("commit", 1, "after", "KILL")])
        yield point([Strike("call", n + 2, "before", "TERM"), Strike("commit", 1, "before", "INT")])


_REFERENCES: dict[str, Reference] = {}
_TEMPLATE: list[Path] = []


def _registry() -> PluginRegistry:
    return PluginRegistry(make_plugin_manager(extra_plugins=[sample_plugins]))


def _references(config: pytest.Config) -> dict[str, Reference]:
    """An uninterrupted run of each pipeline, once per session: the outputs to match, the points to strike."""
    if not _REFERENCES:
        root = config._tmp_path_factory.mktemp("crash-reference")  # type: ignore[attr-defined]
        registry = _registry()
        for name in PIPELINES:
            _REFERENCES[name] = reference(name, ROWS, root / name, registry)
        # An empty Landscape at the current schema, copied for each story: creating one costs as much as a run.
        template = root / "template.db"
        open_database(f"sqlite:///{template}").dispose()
        _TEMPLATE.append(template)
    return _REFERENCES


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "point" not in metafunc.fixturenames:
        return
    references = _references(metafunc.config)
    postgres = metafunc.function.__name__.endswith("postgres")
    points = []
    for name, ref in references.items():
        found = list(enumerate_points(name, ref.counts))
        if postgres:
            found = found[::POSTGRES_EVERY] if name in POSTGRES_PIPELINES else []
        points += found
    metafunc.parametrize("point", points, ids=[p.id for p in points])


def _story(point: Point, root: Path, url: str, run_id: str, registry: PluginRegistry) -> None:
    settings: dict[str, Any] = PIPELINES[point.pipeline](root, ROWS)
    story = play(
        settings,
        url,
        run_id,
        workdir=root,
        registry=registry,
        expected=_REFERENCES[point.pipeline].outputs,
        chains=point.chains,
    )
    first = point.chains[0]
    if len(first) == 1 and first[0].signal == "KILL" and story.codes[0] != -signal.SIGKILL:
        story.failed("the first attempt was not killed where the uninterrupted run says it commits: not deterministic?")
    if story.problems:
        pytest.fail(f"{point.id}\n{story.explain()}", pytrace=False)


def test_crash_point_sqlite(point: Point, tmp_path: Path, registry: PluginRegistry) -> None:
    shutil.copyfile(_TEMPLATE[0], tmp_path / "landscape.db")
    _story(point, tmp_path, f"sqlite:///{tmp_path / 'landscape.db'}", "run-1", registry)


def test_crash_point_postgres(point: Point, tmp_path: Path, registry: PluginRegistry, postgres_url: str) -> None:
    _story(point, tmp_path, postgres_url, f"crash-{uuid.uuid4().hex[:12]}", registry)
