"""Small plugins for engine tests: what the built-ins cannot do (fan out, fail, raise, record calls, answer
Pending, crash on cue).

Faults are not options: a resumed run must present the very settings the crashed one started with. They
come from the environment instead, read when a plugin is built: ELSPETH_TEST_FAULTS is JSON mapping a
plugin's `tag` to a list of {"at": point, "n": N, "action": "kill" | "raise" | "interrupt"}, striking on
the Nth time that plugin instance reaches that point in this process. Points: sinks `write` (after writing
half the rows), `flush` (after the bytes are durable, before the artifact is returned) and `after_flush`
(at the first write or flush after flush N returned, i.e. right after the engine committed it);
transforms `process`; aggregates `batch` (every process_batch call, first flush or poll).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from attrs import field, frozen

from elspeth.api import (
    Aggregate,
    Artifact,
    BatchResult,
    Capability,
    Cardinality,
    Context,
    Error,
    Pending,
    Quarantine,
    Row,
    Source,
    Success,
    Transform,
    TransformResult,
)
from elspeth.hookspecs import hookimpl
from elspeth.plugins.jsonl_files import JsonlSink
from elspeth.plugins.local_file_sink import LocalFileSinkConfig
from elspeth.retries import NOT_RETRIED, RetryPolicy, Verdict, call_with_retries

FAULTS_ENV = "ELSPETH_TEST_FAULTS"


def strike(action: str, where: str) -> None:
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "interrupt":
        os.kill(os.getpid(), signal.SIGINT)
        return
    raise RuntimeError(f"injected fault: {where}")


class FaultPoints:
    """The faults ELSPETH_TEST_FAULTS holds for one tag, and how often each point was reached."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        spec = json.loads(os.environ.get(FAULTS_ENV) or "{}").get(tag, [])
        self.faults = [spec] if isinstance(spec, dict) else list(spec)
        self.counts: Counter[str] = Counter()

    def hit(self, at: str) -> None:
        self.counts[at] += 1
        for fault in self.faults:
            if fault["at"] == at and fault["n"] == self.counts[at]:
                strike(fault["action"], f"{self.tag} {at} #{fault['n']}")


class FakeClock:
    """A clock that only moves when something sleeps: timeouts fire exactly where a test says."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return 1_700_000_000.0 + self.t

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)


# ---------------------------------------------------------------- source


@frozen
class NumbersConfig:
    count: int = 100
    groups: int = 3
    b_every: int = 0
    """Rows whose id is a multiple of this get dest "b", the others "a" (0: all "a")."""
    quarantine_at: list[int] = field(factory=list)
    """Ids yielded as Quarantine records instead of rows."""
    nan_at: list[int] = field(factory=list)
    inf_at: list[int] = field(factory=list)
    bigint_at: list[int] = field(factory=list)
    fail_at: int | None = None
    """The source raises when it reaches this id."""


class Numbers(Source):
    """Rows {"id", "group", "value", "dest"} for ids 0..count-1, in order."""

    name = "test_numbers"
    config_class = NumbersConfig
    config: NumbersConfig

    def load(self, ctx: Context) -> Iterator[Row | Quarantine]:
        cfg = self.config
        for i in range(cfg.count):
            if cfg.fail_at == i:
                raise OSError(f"the source went away at id {i}")
            if i in cfg.quarantine_at:
                yield Quarantine(raw={"id": i, "junk": "x" * 3}, reason=f"id {i} is junk")
                continue
            value: Any = i * 10 + 1
            if i in cfg.nan_at:
                value = float("nan")
            elif i in cfg.inf_at:
                value = float("inf")
            elif i in cfg.bigint_at:
                value = 2**60 + i
            dest = "b" if cfg.b_every and i % cfg.b_every == 0 else "a"
            yield {"id": i, "group": f"g{i % cfg.groups}", "value": value, "dest": dest}


# ---------------------------------------------------------------- transforms


@frozen
class FanoutConfig:
    copies: int = 2
    copies_mod: int = 0
    """When set, a row gets `id % copies_mod` copies instead (0 copies: filtered, 1: passed on)."""


class Fanout(Transform):
    """Each row becomes `copies` rows with a "copy" field (0 copies filters the row out)."""

    name = "test_fanout"
    config_class = FanoutConfig
    config: FanoutConfig

    def process(self, row: Row, ctx: Context) -> TransformResult:
        copies = row["id"] % self.config.copies_mod if self.config.copies_mod else self.config.copies
        return Success(*({**row, "copy": k} for k in range(copies)))


@frozen
class FaultConfig:
    tag: str = "fault"


class Fault(Transform):
    """Passes rows on; strikes at the Nth call when ELSPETH_TEST_FAULTS says so (point `process`)."""

    name = "test_fault"
    config_class = FaultConfig
    config: FaultConfig

    def __init__(self, config: FaultConfig) -> None:
        super().__init__(config)
        self.faults = FaultPoints(config.tag)

    def process(self, row: Row, ctx: Context) -> TransformResult:
        self.faults.hit("process")
        return Success(row)


@frozen
class FlakyConfig:
    fail_every: int = 0
    """Rows whose id is a multiple of this get a non-retryable Error."""
    retry_every: int = 0
    """Rows whose id is a multiple of this get a retryable Error on their first `retry_times` attempts."""
    retry_times: int = 1
    nan_details_every: int = 0
    """Rows whose id is a multiple of this get an Error whose details hold a NaN."""
    nan_output_every: int = 0
    """Rows whose id is a multiple of this come out with an Infinity in them."""


class Flaky(Transform):
    name = "test_flaky"
    config_class = FlakyConfig
    config: FlakyConfig

    def __init__(self, config: FlakyConfig) -> None:
        super().__init__(config)
        self.attempts: Counter[int] = Counter()

    def process(self, row: Row, ctx: Context) -> TransformResult:
        cfg, i = self.config, row["id"]
        if cfg.fail_every and i % cfg.fail_every == 0:
            return Error(reason=f"id {i} is unacceptable", details={"id": i})
        if cfg.nan_details_every and i % cfg.nan_details_every == 0:
            return Error(reason=f"id {i} scored NaN", details={"score": float("nan")})
        if cfg.retry_every and i % cfg.retry_every == 0:
            self.attempts[i] += 1
            if self.attempts[i] <= cfg.retry_times:
                return Error(reason=f"id {i}: try again", retryable=True)
        if cfg.nan_output_every and i % cfg.nan_output_every == 0:
            return Success({**row, "ratio": float("inf")})
        return Success(row)


@frozen
class InPlaceConfig:
    change: str = "nothing"
    """What process() does before it returns the very row it was handed: nothing, "value" (a new value),
    "add" (a new field), "reorder" (the same values under swapped keys), "bool" (1 becomes True, equal in
    Python but not in JSON), "nested" (appends to a list in the row), "before_retry" (a new value, then a
    retryable Error the first time, the row unchanged after)."""


class InPlace(Transform):
    """Changes the row it is handed in place (bug class 23): the engine must not take the input's hash for
    the output's because the same row object came back."""

    name = "test_in_place"
    config_class = InPlaceConfig
    config: InPlaceConfig

    def __init__(self, config: InPlaceConfig) -> None:
        super().__init__(config)
        self.seen: set[int] = set()

    def process(self, row: Row, ctx: Context) -> TransformResult:
        change = self.config.change
        if change in ("value", "before_retry"):
            row["value"] = row["value"] * 2 + 1
        elif change == "add":
            row["extra"] = len(row)
        elif change == "reorder":
            row["id"], row["value"] = row["value"], row["id"]
        elif change == "bool" and row["value"] == 1:
            row["value"] = True
        elif change == "nested":
            if "tags" in row:
                row["tags"].append(row["id"])
            else:
                return Success({**row, "tags": []})
        if change == "before_retry" and row["id"] not in self.seen:
            self.seen.add(row["id"])
            return Error(reason="try again", retryable=True)
        return Success(row)


@frozen
class CallerConfig:
    calls: int = 3
    error_every: int = 0
    """Rows whose id is a multiple of this see their first call fail (recorded as an ERROR call)."""
    big_every: int = 0
    """Rows whose id is a multiple of this send a request too big to store inline."""
    nan_response_every: int = 0
    synthetic_parent: bool = False
    """Record under a made-up state id, as the seed bug did; the engine must refuse it."""
    fail_every: int = 0
    """Rows whose id is a multiple of this get a non-retryable Error after their calls."""
    jitter_ms: int = 0
    """Each row waits up to this long (fixed per id) before answering: rows in flight finish out of order."""


class Caller(Transform):
    """Talks to a pretend service `calls` times per row, through ctx.call and ctx.record_call alternately."""

    name = "test_caller"
    config_class = CallerConfig
    config: CallerConfig
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.DETERMINISTIC, Capability.EXTERNAL_CALLS})

    def process(self, row: Row, ctx: Context) -> TransformResult:
        cfg, i = self.config, row["id"]
        if cfg.synthetic_parent:
            ctx.state_id = f"{ctx.state_id}_row{i}"  # type: ignore[assignment]
        answer = 0
        for k in range(cfg.calls):
            request: dict[str, Any] = {"id": i, "k": k, "prompt": f"double {row['value']}"}
            if cfg.big_every and i % cfg.big_every == 0:
                request["context"] = "lorem ipsum " * 4000
            response: dict[str, Any] = {"answer": row["value"] * 2, "k": k}
            if cfg.nan_response_every and i % cfg.nan_response_every == 0:
                response["confidence"] = float("nan")
            if k == 0 and cfg.error_every and i % cfg.error_every == 0:
                try:
                    with ctx.call("http", "test_service", request):
                        raise ConnectionResetError("connection reset by peer")
                except ConnectionResetError:
                    continue
            if k % 2 == 0:
                with ctx.call("http", "test_service", request) as scope:
                    scope.response = response
            else:
                ctx.record_call(
                    call_type="http", provider="test_service", request=request, response=response, latency_ms=1.5
                )
            answer = response["answer"]
        if cfg.jitter_ms:
            time.sleep((i * 7919 % 97) / 97 * cfg.jitter_ms / 1000)
        if cfg.fail_every and i % cfg.fail_every == 0:
            return Error(reason=f"the service refused id {i}", details={"id": i})
        return Success({**row, "answer": answer})


@frozen
class RetrierConfig:
    failures: int = 2
    """Attempts that fail (a 503 with Retry-After: 0) before one is answered."""
    max_attempts: int = 3


class Retrier(Transform):
    """One request per row through `elspeth.retries.call_with_retries`, the first `failures` attempts failing."""

    name = "test_retrier"
    config_class = RetrierConfig
    config: RetrierConfig
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.EXTERNAL_CALLS})

    def process(self, row: Row, ctx: Context) -> TransformResult:
        sent = 0

        def send() -> dict[str, Any]:
            nonlocal sent
            sent += 1
            if sent <= self.config.failures:
                raise Unavailable(f"HTTP 503 on attempt {sent}")
            return {"answer": row["value"] * 2}

        policy = RetryPolicy(max_attempts=self.config.max_attempts, backoff_seconds=0)
        judge = lambda exc: Verdict(retry=True, retry_after=0) if isinstance(exc, Unavailable) else NOT_RETRIED  # noqa: E731
        try:
            answer = call_with_retries(ctx, policy, "http", "test_service", {"id": row["id"]}, send, judge)
        except Unavailable as exc:
            return Error(str(exc), details={"attempts": sent})
        return Success({**row, **answer})


class Unavailable(Exception):
    pass


@frozen
class SleepConfig:
    seconds: float = 10.0
    at: list[int] = field(factory=list)


class Sleep(Transform):
    """Sleeps on the pipeline's clock before passing the rows with these ids (drives timeout triggers)."""

    name = "test_sleep"
    config_class = SleepConfig
    config: SleepConfig

    def process(self, row: Row, ctx: Context) -> TransformResult:
        if row["id"] in self.config.at:
            ctx.clock.sleep(self.config.seconds)
        return Success(row)


# ---------------------------------------------------------------- aggregate


@frozen
class BatcherConfig:
    pending_polls: int = 0
    """Answer Pending this many times (the checkpoint counts the polls) before Success."""
    retry_after: float = 0.0
    tag: str = "batcher"
    record_calls: bool = True
    inf_output: bool = False


class Batcher(Aggregate):
    """One output row per batch: the member ids, their count and the sum of their values. Each call is
    recorded like an external batch API's: `submit` first, then `poll` with the checkpoint."""

    name = "test_batcher"
    config_class = BatcherConfig
    config: BatcherConfig
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.DETERMINISTIC, Capability.PENDING, Capability.EXTERNAL_CALLS}
    )

    def __init__(self, config: BatcherConfig) -> None:
        super().__init__(config)
        self.faults = FaultPoints(config.tag)
        self.submissions: list[list[int]] = []

    def process_batch(self, rows: list[Row], ctx: Context) -> BatchResult:
        self.faults.hit("batch")
        ids = [row["id"] for row in rows]
        polls = int(ctx.checkpoint["polls"]) if ctx.checkpoint else 0
        job = ctx.checkpoint["job"] if ctx.checkpoint else f"job-{ids[0]}-{len(ids)}"
        if self.config.record_calls:
            kind = "submit" if ctx.checkpoint is None else "poll"
            ctx.record_call(
                call_type=kind,
                provider="test_batch_api",
                request={"job": job, "ids": ids, "poll": polls},
                response={"status": "running" if polls < self.config.pending_polls else "done"},
            )
        if ctx.checkpoint is None:
            self.submissions.append(ids)
        if polls < self.config.pending_polls:
            return Pending({"polls": polls + 1, "job": job}, retry_after=self.config.retry_after)
        total: Any = sum(row["value"] for row in rows)
        if self.config.inf_output:
            total = float("inf")
        return Success({"ids": ids, "n": len(ids), "total": total, "job": job})


@frozen
class GroupCounterConfig:
    group_by: str | None = "group"
    drop: list[Any] = field(factory=list)
    """Values of `group_by` (or ids, for `test_per_row`) whose rows it loses: the bug the engine must catch."""


class GroupCounter(Aggregate):
    """Declares one output per group of `group_by` (the whole batch when None): each group's value and size."""

    name = "test_group_counter"
    config_class = GroupCounterConfig
    config: GroupCounterConfig
    cardinality = Cardinality.ONE_PER_GROUP

    def group_fields(self) -> tuple[str, ...]:
        return () if self.config.group_by is None else (self.config.group_by,)

    def process_batch(self, rows: list[Row], ctx: Context) -> BatchResult:
        by = self.config.group_by
        groups: dict[str, Row] = {}
        for row in rows:
            value = row[by] if by else None
            if value not in self.config.drop:
                groups.setdefault(json.dumps(value), {"group": value, "n": 0})["n"] += 1
        return Success(*groups.values())


class PerRow(Aggregate):
    """Declares one output per input row: each row with its batch's size."""

    name = "test_per_row"
    config_class = GroupCounterConfig
    config: GroupCounterConfig
    cardinality = Cardinality.ONE_PER_ROW

    def process_batch(self, rows: list[Row], ctx: Context) -> BatchResult:
        return Success(*({**row, "batch_size": len(rows)} for row in rows if row["id"] not in self.config.drop))


# ---------------------------------------------------------------- sinks


@frozen
class FaultySinkConfig(LocalFileSinkConfig):
    tag: str = "sink"


class FaultySink(JsonlSink):
    """The jsonl sink, with fault points `write`, `flush` and `after_flush`."""

    name = "test_sink"
    config_class = FaultySinkConfig
    config: FaultySinkConfig

    def __init__(self, config: FaultySinkConfig) -> None:
        super().__init__(config)
        self.faults = FaultPoints(config.tag)
        self.flushes = 0
        self.armed_after: set[int] = {f["n"] for f in self.faults.faults if f["at"] == "after_flush"}

    def _after_flush(self) -> None:
        if self.flushes in self.armed_after:
            self.armed_after.discard(self.flushes)
            action = next(
                f["action"] for f in self.faults.faults if f["at"] == "after_flush" and f["n"] == self.flushes
            )
            strike(action, f"{self.faults.tag} right after flush #{self.flushes}")

    def write(self, rows: list[Row], ctx: Context) -> None:
        self._after_flush()
        due = any(f["at"] == "write" and f["n"] == self.faults.counts["write"] + 1 for f in self.faults.faults)
        if due:
            # Leave a torn batch behind: half the rows reach the file, then the fault.
            half = len(rows) // 2
            super().write(rows[:half], ctx)
            self._handle().flush()
        self.faults.hit("write")
        super().write(rows, ctx)

    def flush(self, ctx: Context) -> Artifact:
        self._after_flush()
        artifact = super().flush(ctx)
        self.faults.hit("flush")
        self.flushes += 1
        return artifact


class UnresumableSink(JsonlSink):
    """A sink that cannot continue earlier output, and says so by not declaring RESUMABLE."""

    name = "test_unresumable_sink"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.DETERMINISTIC})

    def open(self, ctx: Context, resume: Mapping[str, Any] | None) -> None:
        if resume is not None:
            raise AssertionError("the engine opened a non-resumable sink for a resume")
        super().open(ctx, resume)


# ---------------------------------------------------------------- registration


@hookimpl
def register_sources(register: Any) -> None:
    register(Numbers)


@hookimpl
def register_transforms(register: Any) -> None:
    register(Fanout)
    register(Fault)
    register(Flaky)
    register(InPlace)
    register(Caller)
    register(Retrier)
    register(Sleep)


@hookimpl
def register_aggregates(register: Any) -> None:
    register(Batcher)
    register(GroupCounter)
    register(PerRow)


@hookimpl
def register_sinks(register: Any) -> None:
    register(FaultySink)
    register(UnresumableSink)
