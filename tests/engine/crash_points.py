"""Crash points: a test seam that kills or signals a run at the Nth Landscape commit, recorder call or sink
write/flush, and the machinery the crash sweep (test_crash_sweep.py) and scripts/crash-campaign share.

Nothing here is reached by users. A run is struck only in a child process that asked for it: one forked by
`attempt()`, or crashing_run.py when ELSPETH_TEST_CRASH_AT holds a JSON list of strikes. A strike is
{"site", "n", "when", "signal"}:

- site `commit`: every DBAPI commit of a Landscape connection (`when` before or after it);
- site `call`: every call of a public Recorder method from outside the recorder (before or after it);
- site `write`: inside every sink write(), after half its rows were handed on (`when` mid);
- site `flush`: inside every sink flush(), before it or after the bytes are durable (before or after).

Strikes fire in order: the first at the Nth time its site is reached, each later one at the Nth time its
site is reached after the strike before it fired (so `[INT at call 40, KILL at commit 1]` is a Ctrl-C
followed by a SIGKILL while the run stops). A signal is delivered to the process itself with os.kill:
SIGKILL ends it there; SIGINT and SIGTERM go to whatever handler the engine installed. The campaign also
has the parent send signals at a time (`Timed`), counted from the moment the child enters the engine.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sqlite3
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from functools import wraps
from inspect import isfunction
from pathlib import Path
from select import select as ready_fds
from typing import Any

from attrs import define, field, frozen
from sqlalchemy import Engine, NullPool, create_engine, inspect, select
from sqlalchemy.engine import default as sa_default
from sqlalchemy.engine import make_url

from elspeth.api import Artifact, Context, Row, Sink
from elspeth.landscape import schema
from elspeth.landscape.reading import Landscape
from elspeth.landscape.recorder import Recorder
from elspeth.plugin_manager import PluginRegistry
from elspeth_testkit.sweep import report, sweep

CRASH_ENV = "ELSPETH_TEST_CRASH_AT"
SITES = ("commit", "call", "write", "flush")
SIGNALS = {"KILL": signal.SIGKILL, "INT": signal.SIGINT, "TERM": signal.SIGTERM}
EXIT_CODES = {"completed": 0, "failed": 1, "interrupted": 130}
ESCAPED = 3
"""Exit code of a child whose run raised instead of returning a RunSummary (the log has the traceback)."""


@frozen
class Strike:
    site: str
    n: int
    when: str
    signal: str

    def __str__(self) -> str:
        return f"{self.signal}-{self.site}{self.n}{'' if self.when == 'mid' else '-' + self.when}"


@frozen
class Timed:
    """A signal the parent sends `after` seconds into an attempt, wherever the run then is."""

    after: float
    signal: str

    def __str__(self) -> str:
        return f"{self.signal}-at-{self.after * 1000:.0f}ms"


Blow = Strike | Timed


def strikes_from_json(data: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> list[Strike]:
    items = [data] if isinstance(data, Mapping) else list(data)
    return [Strike(d["site"], int(d["n"]), d.get("when", "before"), d.get("signal", "KILL")) for d in items]


# ---------------------------------------------------------------- the seam, inside the struck process


class CrashPoints:
    """Counts the sites a run reaches and strikes where it was told to."""

    def __init__(self, strikes: Sequence[Strike]) -> None:
        self.strikes = list(strikes)
        self.counts: Counter[str] = Counter()
        self._base: Counter[str] = Counter()
        self._inside = threading.local()
        """Per thread: whether a Recorder call is under way (the calls it makes itself are not counted)."""

    def reach(self, site: str, when: str) -> None:
        if when in ("before", "mid"):
            self.counts[site] += 1
        if not self.strikes:
            return
        strike = self.strikes[0]
        if strike.site == site and strike.when == when and self.counts[site] - self._base[site] == strike.n:
            self.strikes.pop(0)
            self._base = Counter(self.counts)
            os.kill(os.getpid(), SIGNALS[strike.signal])

    def install(self, registry: PluginRegistry, sink_plugins: Sequence[str]) -> PluginRegistry:
        """Wrap the DBAPI commit and the Recorder's methods (for this process, for good) and return a
        registry whose sinks `sink_plugins` are served by wrapping subclasses."""
        points = self
        commit = sa_default.DefaultDialect.do_commit

        def do_commit(dialect: Any, dbapi_connection: Any) -> None:
            points.reach("commit", "before")
            commit(dialect, dbapi_connection)
            points.reach("commit", "after")

        sa_default.DefaultDialect.do_commit = do_commit  # type: ignore[method-assign]
        for name, method in list(vars(Recorder).items()):
            if not name.startswith("_") and isfunction(method):
                setattr(Recorder, name, self._recorder_call(method))
        for plugin in sink_plugins:
            sink = registry.get("sink", plugin).cls
            assert issubclass(sink, Sink)
            registry = registry.with_class("sink", plugin, self._sink_class(sink))
        return registry

    def _recorder_call(self, method: Callable[..., Any]) -> Callable[..., Any]:
        points = self

        @wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            if getattr(points._inside, "call", False):
                return method(*args, **kwargs)
            points.reach("call", "before")
            points._inside.call = True
            try:
                result = method(*args, **kwargs)
            finally:
                points._inside.call = False
            points.reach("call", "after")
            return result

        return call

    def _sink_class(self, cls: type[Sink]) -> type[Sink]:
        points = self

        def write(sink: Sink, rows: list[Row], ctx: Context) -> None:
            half = len(rows) // 2
            if half:
                cls.write(sink, rows[:half], ctx)
            points.reach("write", "mid")
            cls.write(sink, rows[half:], ctx)

        def flush(sink: Sink, ctx: Context) -> Artifact:
            points.reach("flush", "before")
            artifact = cls.flush(sink, ctx)
            points.reach("flush", "after")
            return artifact

        return type(f"Crashing{cls.__name__}", (cls,), {"write": write, "flush": flush})


def sink_plugins(settings: Mapping[str, Any]) -> list[str]:
    return sorted({spec["plugin"] for spec in settings["sinks"].values()})


def run_struck(
    settings: Mapping[str, Any],
    url: str,
    run_id: str,
    *,
    resume: bool,
    strikes: Sequence[Strike] | None,
    registry: PluginRegistry,
    entering: Callable[[], None] = lambda: None,
) -> tuple[int, dict[str, Any], Counter[str]]:
    """Run or resume in THIS process with `strikes` installed for good (None: no seam at all, so nothing
    is wrapped and nothing counted): exit code, result, site counts."""
    from elspeth.engine.orchestrator import resume_run, run_pipeline
    from elspeth.settings import Settings, structure

    points = CrashPoints(strikes or ())
    if strikes is not None:
        registry = points.install(registry, sink_plugins(settings))
    structured = structure(dict(settings), Settings, where="$")
    entering()
    if resume:
        summary = resume_run(run_id, structured, registry=registry, landscape_url=url)
    else:
        summary = run_pipeline(structured, registry=registry, landscape_url=url, run_id=run_id)
    result = {"run_id": summary.run_id, "status": summary.status, "error": summary.error}
    return EXIT_CODES.get(summary.status, 1), result, points.counts


# ---------------------------------------------------------------- one attempt, in a child process


@define
class Ended:
    """How one attempt's process ended: its exit code (-N when signal N ended it), the RunSummary it
    returned (status, error) if it returned one, the sites it reached if it got to the end, and its log."""

    code: int
    result: dict[str, Any] | None
    counts: dict[str, int] | None
    log: str

    @property
    def killed(self) -> bool:
        return self.code == -signal.SIGKILL

    def describe(self) -> str:
        how = f"killed by signal {-self.code}" if self.code < 0 else f"exit {self.code}"
        tail = "\n".join(self.log.rstrip().splitlines()[-25:])
        return f"{how}, result {self.result}" + (f"\n    log:\n{tail}" if tail else "")


def attempt(
    settings: Mapping[str, Any],
    url: str,
    run_id: str,
    *,
    workdir: Path,
    registry: PluginRegistry,
    resume: bool = False,
    blows: Sequence[Blow] = (),
    timeout: float = 120.0,
) -> Ended:
    """Run or resume in a forked child (a real process: SIGKILL ends it as it would any other), with the
    `blows` that are Strikes installed there only; the parent sends the Timed ones. The parent holds no
    Landscape connection while the child runs."""
    strikes = [b for b in blows if isinstance(b, Strike)]
    timed = sorted((b for b in blows if isinstance(b, Timed)), key=lambda b: b.after)
    workdir.mkdir(parents=True, exist_ok=True)
    log, out = workdir / "child.log", workdir / "child.json"
    out.unlink(missing_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    # The child says when it enters the engine: the Timed blows count from there, not from the fork.
    entered, entering = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = ESCAPED
        os.close(entered)
        try:
            # Objects inherited from the parent (its database connections among them) must never be
            # finalized here: closing a parent's SQLite handle or PostgreSQL socket from a child breaks it.
            gc.freeze()
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            sys.stdout = sys.stderr = open(fd, "w", buffering=1, closefd=False)  # noqa: SIM115
            code, result, counts = run_struck(
                settings,
                url,
                run_id,
                resume=resume,
                strikes=strikes,
                registry=registry,
                entering=lambda: os.close(entering),
            )
            # A signal the parent sends after the run returned must not be taken for the run's doing.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            # Written whole or not at all: a SIGKILL the parent sends may still land now.
            out.with_suffix(".tmp").write_text(json.dumps({"result": result, "counts": counts}))
            out.with_suffix(".tmp").rename(out)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            os._exit(code)
    os.close(entering)
    began = time.monotonic()
    started: float | None = None
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if started is None and ready_fds([entered], [], [], 0)[0]:
            started = time.monotonic()
        elapsed = time.monotonic() - (started or began)
        if timed and started is not None and elapsed >= timed[0].after:
            os.kill(pid, SIGNALS[timed.pop(0).signal])
            continue
        if elapsed > timeout:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"the run did not end within {timeout}s; its log:\n{log.read_text()}")
        time.sleep(0.001 if timed else 0.005)
    os.close(entered)
    reported = json.loads(out.read_text()) if out.exists() else {}
    return Ended(
        os.waitstatus_to_exitcode(status),
        reported.get("result"),
        reported.get("counts"),
        log.read_text(errors="replace") if log.exists() else "",
    )


# ---------------------------------------------------------------- the pipelines


def _numbers(count: int, **options: Any) -> dict[str, Any]:
    return {"plugin": "test_numbers", "options": {"count": count, **options}}


def _jsonl(root: Path, name: str) -> dict[str, Any]:
    return {"plugin": "test_sink", "options": {"path": str(root / "out" / f"{name}.jsonl"), "tag": name}}


def _engine(rows: int) -> dict[str, Any]:
    return {
        "write_batch_rows": 3,
        "checkpoint_every_rows": max(4, rows // 25),
        "checkpoint_every_seconds": 3600,
        "retry": {"max_attempts": 3, "backoff_seconds": 0},
    }


def _settings(root: Path, rows: int, **parts: Any) -> dict[str, Any]:
    return {
        "transforms": [],
        "aggregations": [],
        "engine": _engine(rows),
        "landscape": {"payload_dir": str(root / "payloads")},
        **parts,
    }


def passthrough(root: Path, rows: int) -> dict[str, Any]:
    return _settings(
        root, rows, source=_numbers(rows), transforms=[{"plugin": "passthrough"}], sinks={"out": _jsonl(root, "out")}
    )


def routing(root: Path, rows: int) -> dict[str, Any]:
    """Every third row routed to sink b, every fifth failed to the error sink, one quarantined there too."""
    source = {**_numbers(rows, b_every=3, quarantine_at=[7]), "on_quarantine": "errors"}
    return _settings(
        root,
        rows,
        source=source,
        transforms=[
            {"plugin": "test_flaky", "options": {"fail_every": 5}, "on_error": "errors"},
            {"plugin": "route", "options": {"field": "dest", "routes": {"b": "b"}}},
        ],
        sinks={name: _jsonl(root, name) for name in ("out", "b", "errors")},
        default_sink="out",
    )


def aggregation(root: Path, rows: int) -> dict[str, Any]:
    """Batches of 3 by a count trigger (the rest at end of source), each recording a call."""
    return _settings(
        root,
        rows,
        source=_numbers(rows),
        aggregations=[{"plugin": "test_batcher", "options": {"tag": "batcher"}, "trigger": {"count": 3}}],
        sinks={"out": _jsonl(root, "out")},
    )


def pending(root: Path, rows: int) -> dict[str, Any]:
    """Batches of 4 that answer Pending once before their result: polled across checkpoints and resumes."""
    return _settings(
        root,
        rows,
        source=_numbers(rows),
        aggregations=[
            {"plugin": "test_batcher", "options": {"tag": "batcher", "pending_polls": 1}, "trigger": {"count": 4}}
        ],
        sinks={"out": _jsonl(root, "out")},
    )


def resumable_sink(root: Path, rows: int) -> dict[str, Any]:
    """The csv sink, whose resume state carries its columns (the header is written once, ever), fed by a
    fan-out that filters, passes and doubles rows."""
    return _settings(
        root,
        rows,
        source=_numbers(rows),
        transforms=[{"plugin": "test_fanout", "options": {"copies_mod": 3}}],
        sinks={"out": {"plugin": "csv", "options": {"path": str(root / "out" / "out.csv")}}},
    )


def in_flight(root: Path, rows: int) -> dict[str, Any]:
    """Rows in flight (4 at a time) at a transform whose calls finish out of order, every fourth row failing
    to the error sink, which every fifth row reaches from a step before them: kills land while several rows'
    states are open, their calls half-committed and deliveries held for order."""
    caller = {"calls": 2, "jitter_ms": 4, "fail_every": 4}
    return _settings(
        root,
        rows,
        source=_numbers(rows),
        transforms=[
            {"plugin": "test_flaky", "options": {"fail_every": 5}, "on_error": "errors"},
            {"plugin": "test_caller", "options": caller, "concurrency": 4, "on_error": "errors"},
        ],
        sinks={name: _jsonl(root, name) for name in ("out", "errors")},
        default_sink="out",
    )


PIPELINES: dict[str, Callable[[Path, int], dict[str, Any]]] = {
    "passthrough": passthrough,
    "routing": routing,
    "aggregation": aggregation,
    "pending": pending,
    "resumable_sink": resumable_sink,
    "in_flight": in_flight,
}
VARYING: dict[str, dict[str, int]] = {"in_flight": {"commit": 14, "call": 120, "write": 5, "flush": 3}}
"""Sites a pipeline reaches a varying number of times (rows in flight commit their calls in groups, and
deliveries held for order reach the sinks, in ways that vary), with a count every run reaches (measured:
19-25 commits, 140-146 recorder calls, 6-7 writes, 4-5 flushes at 14 rows): the points struck there, the
same in every process that collects the tests."""


def outputs(settings: Mapping[str, Any]) -> dict[str, Path]:
    return {name: Path(spec["options"]["path"]) for name, spec in settings["sinks"].items()}


def read_outputs(settings: Mapping[str, Any]) -> dict[str, bytes]:
    return {name: path.read_bytes() if path.exists() else b"" for name, path in outputs(settings).items()}


# ---------------------------------------------------------------- a crash story and its checks


@frozen
class Reference:
    """An uninterrupted run of a pipeline: its outputs and how often it reached each site."""

    outputs: dict[str, bytes]
    counts: dict[str, int]


def reference(pipeline: str, rows: int, root: Path, registry: PluginRegistry) -> Reference:
    """An uninterrupted run, and how often it reached each site (for a site whose count varies from run to
    run, the count in VARYING)."""
    settings = PIPELINES[pipeline](root, rows)
    ended = attempt(settings, f"sqlite:///{root / 'landscape.db'}", "reference", workdir=root, registry=registry)
    if ended.code != 0 or ended.counts is None:
        raise AssertionError(f"the uninterrupted {pipeline} run did not complete: {ended.describe()}")
    counts = {**ended.counts, **VARYING.get(pipeline, {})}
    return Reference(read_outputs(settings), counts)


@define
class Story:
    """What happened to one run: the attempts it took, and every problem found on the way."""

    attempts: list[str] = field(factory=list)
    codes: list[int] = field(factory=list)
    """Each attempt's exit code (-N: ended by signal N)."""
    problems: list[str] = field(factory=list)
    struck: int = 0
    """Attempts a blow ended: killed, or stopped as interrupted."""
    unresumable: bool = False
    tracebacks: int = 0
    """Attempts that raised instead of returning a RunSummary."""
    lost: int = 0
    duplicated: int = 0

    def failed(self, problem: str) -> None:
        self.problems.append(problem)

    def explain(self) -> str:
        return "attempts:\n  " + "\n  ".join(self.attempts) + "\nproblems:\n  " + "\n  ".join(self.problems)


_SQLITE_FILE = [""]
_ENGINES: dict[str, Engine] = {}


def landscape(url: str) -> Engine:
    """An engine on `url` for the checks: one per backend, so that SQLAlchemy's cache of compiled statements
    (kept per engine) serves every story, and with no pool, so that no connection is open when we fork."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        _SQLITE_FILE[0] = parsed.database or ""
        url = "sqlite://"
        if url not in _ENGINES:
            _ENGINES[url] = create_engine(url, creator=lambda: sqlite3.connect(_SQLITE_FILE[0]), poolclass=NullPool)
    elif url not in _ENGINES:
        _ENGINES[url] = create_engine(url, poolclass=NullPool)
    return _ENGINES[url]


def run_status(url: str, run_id: str) -> str | None:
    """runs.status of the run, None when there is no such run (or no schema yet)."""
    with landscape(url).connect() as conn:
        if not inspect(conn).has_table(schema.runs.name):
            return None
        runs = schema.runs
        status: str | None = conn.execute(select(runs.c.status).where(runs.c.run_id == run_id)).scalar()
        return status


def integrity_problems(url: str) -> list[str]:
    """PRAGMA integrity_check and foreign_key_check of a SQLite Landscape (nothing to say for others)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return []
    with sqlite3.connect(parsed.database) as db:
        integrity = [row[0] for row in db.execute("PRAGMA integrity_check")]
        dangling = db.execute("PRAGMA foreign_key_check").fetchall()
    db.close()
    found = [] if integrity == ["ok"] else [f"integrity_check: {integrity}"]
    return found + ([f"foreign_key_check: {dangling}"] if dangling else [])


def line_differences(got: bytes, want: bytes) -> tuple[list[bytes], list[bytes]]:
    """(lines of `want` missing from `got`, lines of `got` beyond those of `want`), as multisets."""
    have, expected = Counter(got.splitlines()), Counter(want.splitlines())
    return list((expected - have).elements()), list((have - expected).elements())


def play(
    settings: Mapping[str, Any],
    url: str,
    run_id: str,
    *,
    workdir: Path,
    registry: PluginRegistry,
    expected: Mapping[str, bytes],
    chains: Sequence[Sequence[Blow]],
) -> Story:
    """Start the run, strike it with `chains[0]`, resume it struck with `chains[1]`, ..., then resume it
    (once more at most) to complete it; check every attempt and, once completed, the end result. A problem
    with one attempt is noted and the story goes on, to show what the next attempts make of it."""
    story = Story()
    payload_dir = Path(settings["landscape"]["payload_dir"])
    for index in range(len(chains) + 2):
        chain = chains[index] if index < len(chains) else ()
        status = run_status(url, run_id) if index else None
        if status == "completed":
            break
        if index == len(chains) + 1:
            story.unresumable = True
            story.failed(f"the run is still {status!r} after a resume with nothing striking it")
            return story
        resume = status is not None
        ended = attempt(
            settings, url, run_id, workdir=workdir / f"attempt{index}", registry=registry, resume=resume, blows=chain
        )
        label = f"{'resume' if resume else 'run'} [{', '.join(map(str, chain)) or 'no strike'}]: "
        story.attempts.append(label + ended.describe().split("\n")[0])
        story.codes.append(ended.code)
        story.struck += ended.code < 0 or (ended.result or {}).get("status") == "interrupted"
        _check_attempt(story, ended, chain, url, run_id, payload_dir, resume)
    for problem in integrity_problems(url):
        story.failed(problem)
    violations = sweep(Landscape(landscape(url), payload_dir), run_id)
    if violations:
        story.failed(f"after the run completed: {report(violations, run_id)}")
    got = read_outputs(settings)
    for sink, want in expected.items():
        if got[sink] != want:
            lost, extra = line_differences(got[sink], want)
            story.lost += len(lost)
            story.duplicated += len(extra)
            story.failed(
                f"sink {sink}: output differs from the uninterrupted run's: {len(lost)} line(s) missing, "
                f"{len(extra)} extra{'' if lost or extra else ' (the same lines, in another order)'}"
                + "".join(f"\n    missing: {line[:200]!r}" for line in lost[:5])
                + "".join(f"\n    extra:   {line[:200]!r}" for line in extra[:5])
            )
    return story


def _check_attempt(
    story: Story, ended: Ended, chain: Sequence[Blow], url: str, run_id: str, payload_dir: Path, resume: bool
) -> None:
    signals = {s.signal for s in chain}
    for problem in integrity_problems(url):
        story.failed(f"after attempt {len(story.attempts)}: {problem}")
    if ended.killed and "KILL" in signals:
        return
    status = (ended.result or {}).get("status")
    allowed = {"completed"} | ({"interrupted"} if signals & {"INT", "TERM"} else set())
    if ended.code < 0 or status not in allowed or ended.code != EXIT_CODES.get(status or ""):
        if "Traceback" in ended.log:
            story.tracebacks += 1
        story.failed(f"attempt {len(story.attempts)} should end {' or '.join(sorted(allowed))}: {ended.describe()}")
        return
    recorded = run_status(url, run_id)
    if recorded != status:
        story.failed(f"attempt {len(story.attempts)} returned {status!r} but runs.status is {recorded!r}")
        return
    if status == "interrupted":
        violations = sweep(Landscape(landscape(url), payload_dir), run_id)
        if violations:
            story.failed(f"after attempt {len(story.attempts)} was interrupted: " + report(violations, run_id))
