"""Starting, finishing and resuming runs: the engine's public entry points."""

from __future__ import annotations

import os
import secrets as _secrets
import socket
import time
from pathlib import Path
from typing import Any

import cattrs
from sqlalchemy import Engine, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from elspeth import __version__, canonical
from elspeth.api import CallRecord, Capability, Clock
from elspeth.engine.clock import SystemClock
from elspeth.engine.collector import tuned_for_a_run
from elspeth.engine.interrupts import Interrupted, StopRequest, noted
from elspeth.engine.pipeline import Pipeline, build_pipeline, node_config_record, settings_document
from elspeth.engine.runner import Runner
from elspeth.engine.summary import ArtifactSummary, ProgressCallback, RunSummary
from elspeth.errors import ConfigError, LandscapeError, ResumeError
from elspeth.landscape import schema, summaries
from elspeth.landscape.database import default_url, open_database
from elspeth.landscape.payloads import FilePayloadStore, payload_store
from elspeth.landscape.recorder import Recorder, error_info
from elspeth.landscape.redaction import Redactor
from elspeth.landscape.retention import purge_of
from elspeth.landscape.statuses import RunStatus
from elspeth.landscape.unfinished import (
    close_interrupted_states,
    latest_sink_resume,
    prepare_recovery_queries,
    unfinished_batches,
    unfinished_tokens,
)
from elspeth.plugin_manager import PluginRegistry
from elspeth.settings import Settings, run_secrets


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + _secrets.token_hex(3)


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _landscape(settings: Settings, landscape_url: str | None) -> tuple[str, FilePayloadStore]:
    url = landscape_url or settings.landscape.url or default_url()
    return url, payload_store(url, settings.landscape.payload_dir)


class _Session:
    """Everything one attempt at a run holds, and the one way it ends."""

    def __init__(
        self,
        settings: Settings,
        registry: PluginRegistry,
        engine: Engine,
        payloads: FilePayloadStore,
        run_id: str,
        secrets: frozenset[str],
        clock: Clock | None,
        progress: ProgressCallback | None,
        settings_path: str | None,
        stop: StopRequest,
    ) -> None:
        self.pipeline: Pipeline = build_pipeline(settings, registry, settings_path)
        self.engine = engine
        # Whoever calls the engine, values under secret-looking option keys, and credentials the plugins' SDKs
        # read from the environment, never reach the Landscape.
        self.redactor = Redactor.of(secrets | run_secrets(cattrs.unstructure(settings)))
        clock = clock or SystemClock(wake=stop.event)
        hook = registry.pm.hook

        def on_call(call: CallRecord) -> None:
            hook.record_call(call=call)

        self.recorder = Recorder(engine, payloads, run_id, redactor=self.redactor, on_call=on_call, now=clock.now)
        self.runner = Runner(
            self.pipeline,
            self.recorder,
            clock=clock,
            payloads=payloads,
            engine=settings.engine,
            stop=stop,
            progress=progress,
        )
        self.settings = settings
        self.started = time.monotonic()
        self.rows_before = self.recorder.rows_recorded

    def settings_record(self) -> tuple[str, str]:
        document = settings_document(self.settings, self.redactor.secrets)
        return canonical.dumps_and_hash(document)

    def record_nodes(self) -> None:
        """Record the pipeline's nodes that the run does not have yet (all of them when it starts)."""
        with self.engine.connect() as conn:
            known = set(
                conn.execute(select(schema.nodes.c.node_id).where(schema.nodes.c.run_id == self.recorder.run_id))
                .scalars()
                .all()
            )
        for node in self.pipeline.nodes():
            if node.node_id in known:
                continue
            config_json, config_hash = node_config_record(node, self.redactor)
            self.recorder.add_node(
                node_id=node.node_id,
                kind=node.kind,
                plugin=node.info.name,
                distribution=node.info.distribution,
                plugin_version=node.info.version,
                position=node.position,
                config_json=config_json,
                config_hash=config_hash,
            )

    def drive(self, body: Any) -> RunSummary:
        """Run `body`, then record how the attempt ended. Input errors (ConfigError, ResumeError) are re-raised
        for the CLI's exit code 2 once recorded; other failures are recorded and returned as a failed run."""
        run_id = self.recorder.run_id
        error: str | None = None
        status = RunStatus.COMPLETED
        # The engine's thread writes the Landscape; workers and plugins' own threads take their turn only
        # where it sets the lock aside (see recorder.py).
        with self.recorder.lock, tuned_for_a_run():
            try:
                body()
            except Interrupted as stop:
                # A safe point: everything buffered is consistent, so it is made durable, sinks included.
                status = RunStatus.INTERRUPTED
                error = f"interrupted ({stop.signame}); finish it with `elspeth resume {run_id}`"
                try:
                    self.runner.wind_down()
                    self.runner.checkpoint()
                except Exception as exc:
                    self.runner.abandon()
                    status, error = RunStatus.FAILED, f"{error}, and making its work durable failed: {exc}"
                error = self._stop(status, {"type": "Interrupted", "message": stop.signame}, error)
            except KeyboardInterrupt:
                # Raised where no handler could note it (not the main thread, or by a plugin): it may have landed
                # half-way through recording something, so only what was committed before it is kept, as after
                # a kill.
                self.runner.abandon()
                status, error = RunStatus.INTERRUPTED, f"interrupted; finish it with `elspeth resume {run_id}`"
                error = self._stop(status, {"type": "Interrupted", "message": "KeyboardInterrupt"}, error, keep=False)
            except Exception as exc:
                self.runner.abandon()
                status, error = RunStatus.FAILED, _describe(exc)
                error = self._stop(status, error_info(exc), error, keep=not isinstance(exc, SQLAlchemyError))
                if isinstance(exc, ConfigError | ResumeError):
                    self._close()
                    raise
            else:
                try:
                    self.recorder.finish_run(RunStatus.COMPLETED)
                except SQLAlchemyError as exc:
                    status, error = RunStatus.FAILED, _unrecorded_end(exc)
        try:
            return self.summary(status, None if error is None else self.redactor.text(error))
        finally:
            self._close()

    def _stop(self, status: RunStatus, state_error: dict[str, str], message: str, *, keep: bool = True) -> str:
        """Close every open state and record how the run ended. With `keep`, what is buffered is recorded
        first; without (or when the database refuses it), the Landscape goes back to its last commit, whose
        open states are closed from the database. Returns the run's error message."""
        if keep:
            try:
                self.recorder.close_open_states(state_error)
                self.recorder.finish_run(status, message)
                return message
            except SQLAlchemyError:
                pass
        recorder = self.recorder
        recorder.discard()
        try:
            recorder.execute_now(lambda conn: close_interrupted_states(conn, recorder.run_id, recorder.now()))
            recorder.finish_run(status, message)
        except SQLAlchemyError as exc:
            recorder.discard()
            return f"{message}; {_unrecorded_end(exc)}"
        return message

    def _close(self) -> None:
        try:
            self.runner.close()
            self.pipeline.close()
        finally:
            self.recorder.close()
            # The last connection to a SQLite Landscape folds its write-ahead log into the file on closing.
            self.engine.dispose()

    def summary(self, status: RunStatus, error: str | None) -> RunSummary:
        run_id = self.recorder.run_id
        with self.engine.connect() as conn:
            return RunSummary(
                run_id=run_id,
                status=status.value,
                rows_read=summaries.row_count(conn, run_id),
                rows_this_attempt=self.recorder.rows_recorded - self.rows_before,
                outcomes=summaries.outcome_counts(conn, run_id),
                artifacts=tuple(
                    ArtifactSummary(node_id.removeprefix("sink:"), uri, digest, size, rows)
                    for node_id, uri, digest, size, rows in summaries.final_artifacts(conn, run_id)
                ),
                elapsed_seconds=time.monotonic() - self.started,
                error=error,
            )


def run_pipeline(
    settings: Settings,
    *,
    registry: PluginRegistry,
    settings_path: str | None = None,
    landscape_url: str | None = None,
    run_id: str | None = None,
    progress: ProgressCallback | None = None,
    secrets: frozenset[str] = frozenset(),
    clock: Clock | None = None,
    stop: StopRequest | None = None,
) -> RunSummary:
    """Run a pipeline from the start, recording everything under a new run id. SIGINT and SIGTERM request
    `stop` (a new one by default): the run stops at its next safe point, interrupted, and `resume_run`
    finishes it."""
    # Noted from the first line: a signal while the Landscape is opened is acted on at the first safe point.
    with noted(stop or StopRequest()) as stop:
        url, payloads = _landscape(settings, landscape_url)
        engine = open_database(url)
        session = _Session(
            settings, registry, engine, payloads, run_id or new_run_id(), secrets, clock, progress, settings_path, stop
        )
        settings_json, settings_hash = session.settings_record()
        try:
            session.recorder.begin_run(
                settings_json=settings_json,
                settings_hash=settings_hash,
                settings_path=str(Path(settings_path).resolve()) if settings_path else None,
                version=__version__,
                owner=_owner(),
            )
        except IntegrityError as exc:
            session._close()
            if run_id is not None and _run_exists(engine, run_id):
                raise LandscapeError(
                    f"run {run_id!r} is already in {make_url(url).render_as_string()}: a run id names one run "
                    f"(`elspeth runs` lists them); choose another --run-id, or `elspeth resume {run_id}` if that "
                    "run is unfinished"
                ) from exc
            raise
        session.record_nodes()
        session.recorder.commit()

        def body() -> None:
            session.runner.open_sinks(None)
            session.runner.run()

        return session.drive(body)


def _run_exists(engine: Engine, run_id: str) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(schema.runs.c.run_id).where(schema.runs.c.run_id == run_id)).first() is not None


def resume_run(
    run_id: str,
    settings: Settings,
    *,
    registry: PluginRegistry,
    settings_path: str | None = None,
    landscape_url: str | None = None,
    progress: ProgressCallback | None = None,
    secrets: frozenset[str] = frozenset(),
    clock: Clock | None = None,
    stop: StopRequest | None = None,
) -> RunSummary:
    """Finish a crashed, failed or interrupted run under its own run id. Unfinished work is what the
    Landscape shows lacking a terminal outcome; the result equals an uninterrupted run's."""
    # Noted from the first line: a signal while the Landscape is opened is acted on at the first safe point.
    with noted(stop or StopRequest()) as stop:
        url, payloads = _landscape(settings, landscape_url)
        engine = open_database(url)
        with engine.connect() as conn:
            run = conn.execute(select(schema.runs).where(schema.runs.c.run_id == run_id)).mappings().first()
            purged = purge_of(conn, run_id)
        if run is None:
            raise ResumeError(f"no run {run_id!r} in {make_url(url).render_as_string()}; `elspeth runs` lists them")
        if purged is not None:
            raise ResumeError(
                f"run {run_id} was purged ({time.strftime('%Y-%m-%d', time.localtime(purged.purged_at))}): its "
                "rows and call bodies are gone, so it cannot be resumed; run the pipeline again instead"
            )
        if run["status"] == RunStatus.COMPLETED:
            raise ResumeError(f"run {run_id} already completed; there is nothing to resume")
        _refuse_if_alive(run_id, run["status"], run["owner"])
        session = _Session(settings, registry, engine, payloads, run_id, secrets, clock, progress, settings_path, stop)
        _, settings_hash = session.settings_record()
        if settings_hash != run["settings_hash"]:
            session._close()
            raise ResumeError(
                f"the settings{' in ' + settings_path if settings_path else ''} differ from those run {run_id} "
                "started with; resume with the same settings (the run's recorded settings: `elspeth explain "
                + run_id
                + "`)"
            )
        not_resumable = [
            f"{name} ({node.info.name})"
            for name, node in session.pipeline.sinks.items()
            if Capability.RESUMABLE not in node.info.cls.capabilities
        ]
        if not_resumable:
            session._close()
            raise ResumeError(
                f"run {run_id} cannot be resumed: sink(s) {', '.join(not_resumable)} cannot continue earlier "
                "output without truncating or duplicating it (they do not declare the 'resumable' capability); "
                "rerun instead"
            )
        claimed = session.recorder.claim_run(
            owner=_owner(), status=run["status"], attempt=run["attempt"], owner_was=run["owner"]
        )
        if claimed is None:
            session._close()
            raise ResumeError(
                f"run {run_id} was claimed by another `elspeth resume` a moment ago; let that one finish "
                "(`elspeth runs` shows its status)"
            )

        def body() -> None:
            recorder, runner = session.recorder, session.runner
            # A run killed by an older version before its nodes were committed lacks them.
            session.record_nodes()
            recorder.execute_now(lambda conn: close_interrupted_states(conn, run_id, recorder.now()))
            runner.open_sinks(
                {
                    name: latest_sink_resume(recorder.conn, run_id, node.node_id)
                    for name, node in session.pipeline.sinks.items()
                }
            )
            prepare_recovery_queries(recorder.conn)
            batches = unfinished_batches(recorder.conn, run_id)
            recorder.conn.rollback()
            retries = runner.restore_batches(batches)
            in_batches = {token_id for b in batches for token_id, _ in b.members}
            skip_rows = recorder.rows_recorded
            with engine.connect() as reader:
                runner.redo(unfinished_tokens(reader, run_id, in_batches), retries)
            runner.run(skip_rows=skip_rows)

        return session.drive(body)


def _refuse_if_alive(run_id: str, status: str, owner: str | None) -> None:
    if status != RunStatus.RUNNING or not owner:
        return
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return
    except PermissionError:
        pass
    if int(pid) != os.getpid():
        raise ResumeError(f"run {run_id} is still running in process {pid} on this host; stop it before resuming")


def _unrecorded_end(exc: SQLAlchemyError) -> str:
    cause = getattr(exc, "orig", None) or type(exc).__name__
    return (
        f"the Landscape refused to record the run's end ({cause}); it stays resumable: once the database "
        "can be written again (disk space, permissions), finish it with `elspeth resume`"
    )


def _describe(exc: Exception) -> str:
    if isinstance(exc, SQLAlchemyError):
        # Not str(exc): SQLAlchemy's text carries the statement and its parameters, row data included.
        return f"the Landscape could not be written: {getattr(exc, 'orig', None) or type(exc).__name__}"
    return str(exc) or type(exc).__name__
