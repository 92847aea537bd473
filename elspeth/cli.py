"""The `elspeth` command: run, resume, validate, explain, report, runs, keygen, export, verify-export, verify,
purge, db, plugins (and plugins new), install, uninstall.

Every ElspethError becomes `Error: <message>` on stderr and exit code 2, without a traceback (`--debug`
shows it). Commands only parse, call the library and render; the queries live in landscape/lineage.py.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import click
from sqlalchemy import Connection

from elspeth import __version__, installer, scaffold
from elspeth.console import LiveStatus, duration, echo, echo_json, plural, printable, rate, short_hash, table, when
from elspeth.engine.interrupts import STOP_SIGNALS, StopRequest
from elspeth.engine.interrupts import install as install_stop_handlers
from elspeth.engine.orchestrator import resume_run, run_pipeline
from elspeth.engine.summary import RunSummary
from elspeth.errors import ConfigError, ElspethError, PluginError
from elspeth.evidence import signing
from elspeth.evidence.bodies import purged_bodies
from elspeth.evidence.check_export import check_export
from elspeth.evidence.export import export_run
from elspeth.evidence.grade import Grade, Level, grade_of_run
from elspeth.evidence.read_back import SettingsSinks
from elspeth.evidence.verify import Finding, Status, Verification, verify_run
from elspeth.landscape import lineage, migrations, retention
from elspeth.landscape.database import check_url, default_url, open_database, schema_state_of, upgrade_database
from elspeth.landscape.payloads import FilePayloadStore, payload_dir
from elspeth.landscape.redaction import Redactor
from elspeth.landscape.retention import Purge
from elspeth.landscape.row_values import StepValues, step_values
from elspeth.plugin_manager import PluginRegistry, make_plugin_manager
from elspeth.preflight import check_plugins
from elspeth.report.collect import report_data
from elspeth.report.page import render_page
from elspeth.report.row_choice import ALL_ROWS_UP_TO, parse_rows
from elspeth.settings import (
    AggregationSettings,
    Settings,
    TransformSettings,
    TriggerSettings,
    environment_secrets,
    hide_password,
    read_settings_file,
    secret_values,
    settings_from_raw,
)


class _Group(click.Group):
    """Turns ElspethError into a one-line message and exit code 2, unless --debug asks for the traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ElspethError as exc:
            if ctx.params.get("debug"):
                raise
            # The values under secret-looking names at least: the secrets themselves are not known here.
            echo(f"Error: {Redactor().text(str(exc))}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            # Outside a run (a run notes Ctrl-C itself and stops at a safe point): nothing was half-recorded.
            if ctx.params.get("debug"):
                raise
            echo("\nInterrupted.", err=True)
            ctx.exit(INTERRUPTED_EXIT)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.version_option(__version__, prog_name="elspeth")
def main(debug: bool) -> None:
    """Auditable data pipelines: every row, call and artifact recorded in the Landscape.

    \b
    Try the demo, then trace a row:
      elspeth run examples/demo/settings.yaml
      elspeth explain RUN_ID --row 3
      elspeth report RUN_ID -o run.html
    """


def _landscape_option(default: str) -> Any:
    return click.option(
        "--landscape", "landscape_url", metavar="URL", help=f"Landscape database URL (default: {default})."
    )


def _cassette_options(command: Any) -> Any:
    record = click.option(
        "--record-cassette",
        metavar="FILE",
        type=click.Path(dir_okay=False),
        help="Record every HTTP request of the run (LLM calls...) to this vcrpy cassette, secrets scrubbed.",
    )
    replay = click.option(
        "--replay-cassette",
        metavar="FILE",
        type=click.Path(dir_okay=False),
        help="Answer every HTTP request from this cassette instead of the network (offline, no keys needed).",
    )
    return record(replay(command))


def _cassette(
    record: str | None, replay: str | None, secrets: frozenset[str]
) -> contextlib.AbstractContextManager[Any]:
    if record and replay:
        raise ConfigError("--record-cassette and --replay-cassette exclude each other; give one")
    if record or replay:
        from elspeth.cassettes import cassette

        return cassette(record or replay, "record" if record else "replay", secrets)  # type: ignore[arg-type]
    return contextlib.nullcontext()


INTERRUPTED_EXIT = 130
_FROM_SETTINGS = "the settings' landscape.url, else sqlite:///.elspeth/landscape.db"
_LOCAL = "sqlite:///.elspeth/landscape.db in this directory"


# ---------------------------------------------------------------- run / resume


@main.command()
@click.argument("settings_file", metavar="SETTINGS.yaml", type=click.Path(dir_okay=False))
@_landscape_option(_FROM_SETTINGS)
@click.option("--run-id", metavar="ID", help="Use this run id instead of a generated one.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr; the summary is still printed.")
@_cassette_options
def run(
    settings_file: str,
    landscape_url: str | None,
    run_id: str | None,
    quiet: bool,
    record_cassette: str | None,
    replay_cassette: str | None,
) -> None:
    """Run a pipeline and record everything it does in the Landscape.

    \b
    Example:
      elspeth run examples/demo/settings.yaml
    """
    settings, secrets = _load(settings_file)
    url = landscape_url or settings.landscape.url or default_url()
    check_url(url)
    registry = PluginRegistry(make_plugin_manager())
    check_plugins(settings, registry, settings_file, files_now=False)
    status = _live_status(quiet)
    stop = _stop_on_signals()
    with _cassette(record_cassette, replay_cassette, secrets):
        summary = run_pipeline(
            settings,
            registry=registry,
            settings_path=str(Path(settings_file).resolve()),
            landscape_url=url,
            run_id=run_id,
            progress=status,
            secrets=secrets,
            stop=stop,
        )
    _finish(status, summary, url)


@main.command()
@click.argument("run_id")
@click.option(
    "--settings",
    "settings_file",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Settings to resume with (default: the file the run recorded).",
)
@_landscape_option(f"with --settings, {_FROM_SETTINGS}; without, {_LOCAL}")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr; the summary is still printed.")
@_cassette_options
def resume(
    run_id: str,
    settings_file: str | None,
    landscape_url: str | None,
    quiet: bool,
    record_cassette: str | None,
    replay_cassette: str | None,
) -> None:
    """Finish a crashed, failed or interrupted run.

    Picks up exactly the work the Landscape shows unfinished: nothing is lost or written twice.

    \b
    Example:
      elspeth resume 20250101-120000-ab12cd
    """
    if settings_file is None:
        url = landscape_url or default_url()
        with _connect(url) as conn:
            settings_file = lineage.get_run(conn, run_id).settings_path
        if settings_file is None:
            raise ElspethError(f"run {run_id!r} recorded no settings file; pass it with --settings FILE")
        settings, secrets = _load(settings_file)
    else:
        settings, secrets = _load(settings_file)
        url = landscape_url or settings.landscape.url or default_url()
        check_url(url)
    registry = PluginRegistry(make_plugin_manager())
    check_plugins(settings, registry, settings_file, files_now=False)
    status = _live_status(quiet)
    stop = _stop_on_signals()
    with _cassette(record_cassette, replay_cassette, secrets):
        summary = resume_run(
            run_id,
            settings,
            registry=registry,
            settings_path=str(Path(settings_file).resolve()),
            landscape_url=url,
            progress=status,
            secrets=secrets,
            stop=stop,
        )
    _finish(status, summary, url)


def _load(settings_file: str) -> tuple[Settings, frozenset[str]]:
    raw = read_settings_file(settings_file)
    return settings_from_raw(raw, file=settings_file), frozenset(secret_values(raw) | environment_secrets())


def _stop_on_signals() -> StopRequest:
    """SIGINT and SIGTERM stop the run at its next safe point, and stay noted until the process exits: a
    second Ctrl-C while the summary is printed must not turn a clean stop into a traceback."""
    stop = StopRequest()
    install_stop_handlers(stop)
    return stop


def _live_status(quiet: bool) -> LiveStatus:
    stream = sys.stderr
    return LiveStatus(stream, enabled=not quiet, terminal=stream.isatty())


def _finish(status: LiveStatus, summary: RunSummary, url: str) -> None:
    """Print the summary and the next command to type; an interrupted run exits 130 (the shell's code for
    Ctrl-C) with one line, another that did not complete exits 1."""
    status.finish()
    if summary.status != "interrupted":
        echo(_render_summary(summary))
    landscape = _landscape_hint(url)
    if summary.status == "completed":
        echo(f"Trace a row: elspeth explain {summary.run_id} --row N{landscape}")
        return
    if summary.status == "interrupted":
        echo(f"Interrupted; what was done is recorded. Finish it: elspeth resume {summary.run_id}{landscape}", err=True)
        # The process is on its way out: a further signal now would only replace exit code 130 with its own.
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        sys.exit(INTERRUPTED_EXIT)
    echo(f"Error: run {summary.run_id} {summary.status}: {summary.error or 'no error recorded'}", err=True)
    if "elspeth resume" not in (summary.error or ""):
        echo(f"Finish it once the cause is fixed: elspeth resume {summary.run_id}{landscape}", err=True)
    sys.exit(1)


def _landscape_hint(url: str) -> str:
    """What to add to an `elspeth explain`/`resume` hint: they read no settings, so a landscape other than
    the default must be named."""
    return f" --landscape {hide_password(url)}" if url != default_url() else ""


def _render_summary(summary: RunSummary) -> str:
    outcomes = ", ".join(f"{name} {count:,}" for name, count in sorted(summary.outcomes.items())) or "none"
    this_attempt = summary.rows_this_attempt
    lines = [
        f"Run {summary.run_id} {summary.status} in {duration(summary.elapsed_seconds)} "
        f"({rate(this_attempt, summary.elapsed_seconds)})",
        f"  rows read  {summary.rows_read:,}"
        + ("" if this_attempt == summary.rows_read else f" ({this_attempt:,} by this attempt)"),
        f"  outcomes   {outcomes}",
    ]
    if summary.artifacts:
        lines.append("  artifacts")
        rows = [
            (
                a.sink,
                a.uri,
                plural(a.row_count, "row"),
                plural(a.size, "byte"),
                f"sha256 {short_hash(a.content_hash)}",
            )
            for a in summary.artifacts
        ]
        lines += ["    " + line for line in table(None, rows).splitlines()]
    return "\n".join(lines)


# ---------------------------------------------------------------- validate


@main.command()
@click.argument("settings_file", metavar="SETTINGS.yaml", type=click.Path(dir_okay=False))
def validate(settings_file: str) -> None:
    """Check settings and plugin options; run nothing.

    \b
    Example:
      elspeth validate examples/demo/settings.yaml
    """
    settings, _ = _load(settings_file)
    infos = check_plugins(settings, PluginRegistry(make_plugin_manager()), settings_file)
    plugins = {where: f"{info.distribution} {info.version}".strip() for where, info in infos.items()}
    echo(f"OK {settings_file}")
    echo(_render_pipeline(settings, plugins))


def _describe_trigger(trigger: TriggerSettings) -> str:
    when = []
    if trigger.count:
        when.append(f"every {trigger.count} rows")
    if trigger.timeout_seconds:
        when.append(f"after {trigger.timeout_seconds}s")
    return "flush " + " or ".join([*when, "at end of source"])


def _render_pipeline(settings: Settings, plugins: dict[str, str]) -> str:
    rows: list[tuple[str, str, str, str, str]] = []
    source = settings.source
    quarantine = f"quarantine -> {source.on_quarantine}" if source.on_quarantine else ""
    rows.append(("source", source.plugin, source.plugin, plugins["source"], quarantine))
    names = [source.plugin]
    steps: list[tuple[str, str, TransformSettings | AggregationSettings]] = [
        *((f"transforms[{i}]", "transform", step) for i, step in enumerate(settings.transforms)),
        *((f"aggregations[{i}]", "aggregate", step) for i, step in enumerate(settings.aggregations)),
    ]
    for where, kind, step in steps:
        name = step.name or step.plugin
        names.append(name)
        notes = [f"errors -> {step.on_error}"] if step.on_error else []
        if isinstance(step, AggregationSettings):
            notes.append(_describe_trigger(step.trigger))
        rows.append((kind, name, step.plugin, plugins[where], "; ".join(notes)))
    default = settings.default_sink or next(iter(settings.sinks))
    for name, sink in settings.sinks.items():
        roles = [
            role
            for role, target in (
                ("default", default),
                ("errors", settings.on_error),
                ("quarantine", source.on_quarantine),
            )
            if target == name
        ]
        rows.append(("sink", name, sink.plugin, plugins[f"sinks.{name}"], ", ".join(roles)))
    flow = " -> ".join([*names, "{" + ", ".join(settings.sinks) + "}"])
    return table(("KIND", "NAME", "PLUGIN", "FROM", "NOTES"), rows) + f"\n\n{flow}"


# ---------------------------------------------------------------- explain / runs


def _payloads_option(command: Any) -> Any:
    return click.option(
        "--payloads",
        "payload_dir",
        metavar="DIR",
        type=click.Path(file_okay=False, path_type=Path),
        help="The run's payload store, for large bodies (default: 'payloads' beside a SQLite landscape, "
        "else .elspeth/payloads).",
    )(command)


def _payload_store(url: str, directory: Path | None) -> FilePayloadStore:
    return FilePayloadStore(payload_dir(url, str(directory) if directory else None))


def _payload_reader(url: str, payload_dir: Path | None) -> lineage.ReadPayload:
    return _payload_store(url, payload_dir).get


@main.command()
@click.argument("run_id")
@click.option(
    "--row",
    "row_id",
    type=int,
    metavar="N",
    help="Trace source row N through every node. Rows count from 0: the source's first record is row 0.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text, every value in full.")
@_landscape_option(_LOCAL)
@_payloads_option
def explain(
    run_id: str, row_id: int | None, as_json: bool, landscape_url: str | None, payload_dir: Path | None
) -> None:
    """Show what a run did, or the full lineage of one of its rows.

    With --row, each transform step shows what it changed (field: before -> after) beside its hashes;
    long values are shortened, --json keeps them whole.

    \b
    Examples:
      elspeth explain RUN_ID            nodes, outcomes, artifacts
      elspeth explain RUN_ID --row 0    the first row: payload, every state and its values, call, batch, outcome
    """
    url = landscape_url or default_url()
    with _connect(url) as conn:
        if row_id is None:
            overview = lineage.run_overview(conn, run_id)
            run_grade = _grader(conn, _payload_store(url, payload_dir))(run_id)
        else:
            row = lineage.row_lineage(conn, run_id, row_id, _payload_reader(url, payload_dir))
    if row_id is None:
        if as_json:
            echo_json({**attrs.asdict(overview), "grade": _grade_json(run_grade)})
        else:
            echo(_render_overview(overview, _landscape_hint(url), run_grade))
        return
    values = step_values(row)
    if as_json:
        echo_json({**attrs.asdict(row), "values": [attrs.asdict(v) for v in values.values()]})
    else:
        echo(_render_lineage(row, values))


@main.command()
@click.argument("run_id")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The HTML file to write (default: report-RUN_ID.html here).",
)
@click.option(
    "--rows",
    "rows_spec",
    metavar="SPEC",
    help="Rows to show in full, e.g. 0-99,512 (rows count from 0). Default: every row of a run of up to "
    f"{ALL_ROWS_UP_TO} rows, else a bounded choice of the rows that matter (first ones, each outcome at each "
    "sink, failed calls and steps).",
)
@_landscape_option(_LOCAL)
@_payloads_option
def report(
    run_id: str, output: Path | None, rows_spec: str | None, landscape_url: str | None, payload_dir: Path | None
) -> None:
    """Write one self-contained HTML page of a run: its settings, outcomes, time per node, artifacts, failed
    calls, the pipeline as a picture, and for its rows the path through every node with the values at each
    step, every call's full prompt and response, and where each row landed.

    The page loads nothing from the network: it opens offline and can be archived with the evidence.
    Open a row directly with #row=N at the end of its URL.

    \b
    Example:
      elspeth report RUN_ID -o run.html
    """
    asked = parse_rows(rows_spec) if rows_spec is not None else None
    url = landscape_url or default_url()
    with _connect(url) as conn:
        data = report_data(conn, run_id, _payload_reader(url, payload_dir), asked)
    target = output or Path(f"report-{run_id}.html")
    html = render_page(data)
    try:
        target.write_text(html, encoding="utf-8")
    except OSError as exc:
        problem = f"cannot write the report to {target}: {exc.strerror}; choose another file with -o"
        raise ElspethError(problem) from None
    shown = data["rows"]
    echo(
        f"Wrote {target} ({plural(len(html.encode()), 'byte')}): run {run_id}, "
        f"{shown['detailed']:,} of {shown['total']:,} rows in full. Open it in a browser, offline: "
        f"{target.resolve().as_uri()}"
    )


@main.command()
@_landscape_option(_LOCAL)
@_payloads_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def runs(landscape_url: str | None, payload_dir: Path | None, as_json: bool) -> None:
    """List the runs in a Landscape, newest first.

    \b
    Example:
      elspeth runs --landscape sqlite:///.elspeth/landscape.db
    """
    url = landscape_url or default_url()
    with _connect(url) as conn:
        found = lineage.list_runs(conn)
        graded = _grader(conn, _payload_store(url, payload_dir))
        grades = {r.run_id: graded(r.run_id).level.value for r in found}
    if as_json:
        echo_json([{**attrs.asdict(r), "grade": grades[r.run_id]} for r in found])
        return
    if not found:
        echo("No runs yet; start one with: elspeth run SETTINGS.yaml")
        return
    rows = [
        (r.run_id, _status(r), when(r.started_at), when(r.ended_at), r.attempt, f"{r.rows:,}", grades[r.run_id])
        for r in found
    ]
    echo(table(("RUN", "STATUS", "STARTED", "ENDED", "ATTEMPTS", "ROWS", "GRADE"), rows))


def _status(run: lineage.RunInfo) -> str:
    return f"{run.status}, purged" if run.purged_at is not None else run.status


def _require_existing(url: str) -> None:
    """A missing SQLite file is an error, not a new database."""
    parsed = check_url(url)
    database = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if database and database != ":memory:" and not Path(database).exists():
        raise ElspethError(
            f"no landscape at {database}; run a pipeline first ('elspeth run SETTINGS.yaml') "
            "or point at one with --landscape URL"
        )


@contextlib.contextmanager
def _connect(url: str) -> Iterator[Connection]:
    """A connection to an existing Landscape at the current schema."""
    _require_existing(url)
    engine = open_database(url)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def _grader(conn: Connection, store: FilePayloadStore) -> Callable[[str], Grade]:
    """Grades runs of the landscape on `conn`; listing runs must not fail because an installed plugin does,
    so when the plugins cannot be loaded every grade is unknown, and says why."""
    try:
        registry = PluginRegistry(make_plugin_manager())
    except PluginError as exc:
        unknown = Grade(Level.UNKNOWN, (f"the installed plugins could not be loaded: {exc}",))
        return lambda _run_id: unknown
    return lambda run_id: grade_of_run(conn, run_id, registry, store)


def _grade_json(g: Grade) -> dict[str, Any]:
    return {"level": g.level.value, "reasons": list(g.reasons)}


def _render_overview(o: lineage.RunOverview, landscape_hint: str, run_grade: Grade) -> str:
    run = o.run
    outcomes = ", ".join(f"{name} {count:,}" for name, count in o.outcomes.items()) or "none"
    lines = [
        f"Run {run.run_id}: {_status(run)}",
        f"  started    {when(run.started_at)}",
        f"  ended      {when(run.ended_at) or '-'}",
        f"  attempts   {run.attempt}",
        f"  settings   {run.settings_path or '-'} (sha256 {short_hash(run.settings_hash)})",
        f"  elspeth    {run.elspeth_version}",
        f"  rows       {run.rows:,} read, {o.quarantined:,} quarantined",
        f"  outcomes   {outcomes}",
        f"  calls      {o.calls:,}",
        f"  grade      {run_grade.level}" + "".join(f"\n             {reason}" for reason in run_grade.reasons),
    ]
    if run.error:
        lines.append(f"  error      {run.error}")
    if o.purge is not None:
        lines.append(f"  purged     {_purge_text(o.purge)}")
    lines += ["", "Nodes"]
    node_rows = [(n.position, n.node_id, n.kind, n.plugin, n.distribution, n.plugin_version) for n in o.nodes]
    lines += _indent(table(("#", "NODE", "KIND", "PLUGIN", "DISTRIBUTION", "VERSION"), node_rows))
    lines += ["", f"Artifacts (latest of {o.flushes:,} flushes)"]
    artifact_rows = [
        (a.node_id, a.uri, f"{a.row_count:,}", f"{a.size:,}", short_hash(a.content_hash)) for a in o.artifacts
    ]
    lines += _indent(table(("SINK", "URI", "ROWS", "BYTES", "SHA256"), artifact_rows))
    lines += ["", f"Trace a row: elspeth explain {run.run_id} --row N{landscape_hint}"]
    return "\n".join(lines)


def _purge_text(purge: Purge) -> str:
    return (
        f"{when(purge.purged_at)} by {purge.purged_by} (elspeth {purge.elspeth_version}): row and call bodies "
        f"removed, every hash kept; attributable only ({purge.rows_cleared:,} rows, {purge.calls_cleared:,} "
        f"calls, {purge.payload_files_removed:,} payload files)"
    )


def _render_lineage(r: lineage.RowLineage, values: dict[int, StepValues]) -> str:
    lines = [f"Run {r.run_id}, row {r.row_id} (rows count from 0)"]
    shortened = False
    payload = _compact(r.payload)
    if r.purged:
        lines.append("  payload    (purged: attributable by its sha256 only)")
    elif len(payload) <= 100:
        lines.append(f"  payload    {payload}")
    else:
        lines += ["  payload", *_indent(json.dumps(r.payload, indent=2, ensure_ascii=False), 4)]
    lines.append(f"  sha256     {r.payload_hash or '-'}")
    if r.quarantined:
        lines.append(f"  quarantined: {_reason_text(r.quarantine_reason)}")
    lines += ["", "Tokens"]
    token_rows = [(k.token_id, k.parent_token_id, k.origin_node_id, k.origin_batch_id) for k in r.tokens]
    lines += _indent(table(("TOKEN", "PARENT", "FROM NODE", "FROM BATCH"), token_rows))
    lines += ["", "Node states, in order"]
    for s in r.states:
        token = f"token {s.token_id}, " if s.token_id is not None else ""
        lines.append(
            f"  #{s.state_id} {s.node_id} {s.operation} ({token}attempt {s.attempt}): {s.status}  "
            f"in {short_hash(s.input_hash) or '-'} out {short_hash(s.output_hash) or '-'}"
        )
        step = values.get(s.state_id)
        if step is not None:
            step_lines, cut = _render_step(step)
            lines += step_lines
            shortened = shortened or cut
        if s.error is not None:
            lines.append(f"      error: {_compact(s.error)}")
        for c in s.calls:
            latency = f" {c.latency_ms:.0f}ms" if c.latency_ms is not None else ""
            lines.append(f"      call {c.call_index}: {c.call_type} {c.provider} {c.status}{latency}")
            lines.append(f"        request  {short_hash(c.request_hash)}  {c.request_preview}")
            if c.response_hash or c.response_preview:
                lines.append(f"        response {short_hash(c.response_hash)}  {c.response_preview or ''}")
            if c.error is not None:
                lines.append(f"        error    {_compact(c.error)}")
    if r.batches:
        lines += ["", "Batches it joined"]
        batch_rows = [
            (b.batch_id, b.node_id, b.status, b.trigger, b.flush_state_id, f"{len(b.row_tokens)}/{b.members}")
            for b in r.batches
        ]
        lines += _indent(table(("BATCH", "NODE", "STATUS", "TRIGGER", "FLUSH STATE", "ITS TOKENS"), batch_rows))
    lines += ["", "Outcomes"]
    outcome_rows = [
        (
            o.token_id,
            o.outcome,
            o.node_id,
            o.sink_node_id,
            o.artifact.uri if o.artifact else None,
            short_hash(o.artifact.content_hash) if o.artifact else None,
            _reason_text(o.reason) if o.reason is not None else None,
        )
        for o in r.outcomes
    ]
    if outcome_rows:
        headers = ("TOKEN", "OUTCOME", "DECIDED AT", "SINK", "ARTIFACT", "SHA256", "REASON")
        lines += _indent(table(headers, outcome_rows))
    else:
        lines.append("  none yet: the run has unfinished work for this row (elspeth resume finishes it)")
    if shortened:
        lines += ["", f"Values longer than {_VALUE_CHARS} characters are shortened (…); --json shows them whole."]
    return "\n".join(lines)


_VALUE_CHARS = 60
_CHANGE_MARK = {"added": "+", "removed": "-", "changed": "~"}


def _render_step(step: StepValues) -> tuple[list[str], bool]:
    """A transform step's values under its state line: each changed field, or why there is nothing to show;
    and whether a value was shortened."""
    if step.note != "changed":
        note = {"failed": "no output (failed)"}.get(step.note, step.note)
        return [f"      values: {note}"], False
    lines, cut = [], False
    for change in step.changes:
        name = printable(change.field, one_line=True) or "value"
        before, cut_before = _short(change.before)
        after, cut_after = _short(change.after)
        cut = cut or cut_before or cut_after
        shown = {"added": after, "removed": before}.get(change.change, f"{before} -> {after}")
        lines.append(f"      {_CHANGE_MARK[change.change]} {name}: {shown}")
    return lines, cut


def _short(value: Any) -> tuple[str, bool]:
    """A value as JSON (a string in quotes: "1" is not 1), cut to _VALUE_CHARS."""
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    if len(text) <= _VALUE_CHARS:
        return text, False
    return text[: _VALUE_CHARS - 1] + "…", True


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return printable(value, one_line=True)
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def _reason_text(reason: Any) -> str:
    """A recorded reason is often just {"reason": "..."}: show the sentence, not the JSON around it."""
    if isinstance(reason, dict) and set(reason) == {"reason"}:
        return printable(str(reason["reason"]), one_line=True)
    return _compact(reason)


def _indent(text: str, width: int = 2) -> list[str]:
    return [" " * width + line for line in text.splitlines()]


# ---------------------------------------------------------------- evidence: keygen, export, verify-export, verify


@main.command()
@click.argument("private_key", metavar="KEY.pem", type=click.Path(dir_okay=False, path_type=Path))
def keygen(private_key: Path) -> None:
    """Make an Ed25519 key pair for signing exports.

    Writes the private key to KEY.pem (readable by you only) and the public key beside it as KEY.pub.pem;
    give the public key to whoever checks your exports.

    \b
    Example:
      elspeth keygen ~/.elspeth/export-key.pem
    """
    public = signing.write_key_pair(private_key)
    key = signing.load_public_key(str(public))
    echo(f"Private key {private_key} (keep it secret)\nPublic key  {public}\nFingerprint {signing.fingerprint(key)}")


@main.command()
@click.argument("run_id")
@click.option(
    "-o",
    "--output",
    required=True,
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the export (JSON Lines).",
)
@click.option("--key", "key_file", required=True, metavar="PRIVATE.pem", help="Ed25519 private key to sign with.")
@_landscape_option(_LOCAL)
@_payloads_option
def export(run_id: str, output: Path, key_file: str, landscape_url: str | None, payload_dir: Path | None) -> None:
    """Write every record of a run to one signed, self-contained file.

    Run, settings, nodes, rows, tokens, states, calls with their full bodies, batches, artifacts and
    outcomes, one JSON record a line, signed with Ed25519 (format: docs/evidence.md). Check it anywhere,
    without the database, with `elspeth verify-export`.

    \b
    Example:
      elspeth export 20250101-120000-ab12cd -o run.jsonl --key export-key.pem
    """
    key = signing.load_private_key(key_file)
    url = landscape_url or default_url()
    store = _payload_store(url, payload_dir)
    with _connect(url) as conn:
        lineage.get_run(conn, run_id)
        purged = purged_bodies(conn, run_id, store)
        run_grade = grade_of_run(conn, run_id, PluginRegistry(make_plugin_manager()), store)
        counts = export_run(conn, run_id, output, key=key, store=store, grade=run_grade, bodies_purged=purged)
    total = sum(counts.values())
    echo(f"Exported run {run_id} to {output}: {plural(total, 'record')}, grade {run_grade.level}")
    if purged:
        echo(f"  {plural(purged, 'call body')} purged: only their hashes are in the export")
    echo(
        f"  signed by key {signing.fingerprint(key.public_key())[:16]}…; check it with: "
        f"elspeth verify-export {output} --key PUBLIC.pem"
    )


@main.command("verify-export")
@click.argument("export_file", metavar="FILE")
@click.option("--key", "key_file", required=True, metavar="PUBLIC.pem", help="Ed25519 public key of the signer.")
def verify_export(export_file: str, key_file: str) -> None:
    """Check a signed export without the database.

    Checks the signature with the public key given, each line's link to the one before, and the hashes the
    records carry (settings, node configs, source rows, call bodies). Exit 0 when all hold, 1 when anything
    does not (every problem is named, with its line), 2 when the file or key cannot be used.

    \b
    Example:
      elspeth verify-export run.jsonl --key export-key.pub.pem
    """
    key = signing.load_public_key(key_file)
    result = check_export(export_file, key)
    if not result.problems:
        records = sum(result.counts.values())
        echo(
            f"OK {export_file}: run {result.run_id}, {plural(records, 'record')}, grade {result.grade}, "
            f"signed by key {result.key_fingerprint[:16]}…"
        )
        return
    echo(f"FAILED {export_file}: {plural(len(result.problems), 'problem')}")
    for line, message in result.problems:
        echo(f"  {'line ' + str(line) if line is not None else 'file'}: {message}")
    sys.exit(1)


@main.command()
@click.argument("run_id")
@click.option(
    "--settings",
    "settings_file",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Settings whose sinks read artifacts back (default: the file the run recorded); local files need none.",
)
@click.option("--strict", is_flag=True, help="Exit 1 also when an artifact was not checked or a body was purged.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@_landscape_option(_LOCAL)
@_payloads_option
def verify(
    run_id: str,
    settings_file: str | None,
    strict: bool,
    as_json: bool,
    landscape_url: str | None,
    payload_dir: Path | None,
) -> None:
    """Re-hash a run's artifacts where they live, and every stored payload.

    Exit 0 when everything checked matches, 1 on any mismatch (each is named), 2 on a usage error.
    Artifacts whose sink cannot read them back are listed as "not checked", and purged call bodies as
    "purged": neither fails the check unless --strict.

    \b
    Example:
      elspeth verify 20250101-120000-ab12cd
    """
    url = landscape_url or default_url()
    store = _payload_store(url, payload_dir)
    with _connect(url) as conn:
        run = lineage.get_run(conn, run_id)
        result = verify_run(conn, run_id, store, SettingsSinks(settings_file or run.settings_path))
    mismatches = result.count(Status.MISMATCH)
    unsure = result.count(Status.NOT_CHECKED) + result.count(Status.PURGED)
    if as_json:
        echo_json(
            {
                "run_id": run_id,
                "artifacts": [attrs.asdict(f) for f in result.artifacts],
                "payloads_matching": result.payloads_matching,
                "payloads": [attrs.asdict(f) for f in result.payloads],
            }
        )
    else:
        echo(_render_verification(result))
    if mismatches or (strict and unsure):
        sys.exit(1)


def _render_verification(v: Verification) -> str:
    lines = [f"Run {v.run_id}", "  artifacts"]
    lines += [_finding_line(f) for f in v.artifacts] or ["    none recorded"]
    payloads = [f"{v.payloads_matching:,} match"] + [
        f"{n:,} {_status_text(status)}"
        for status in (Status.MISMATCH, Status.PURGED)
        if (n := sum(1 for f in v.payloads if f.status is status))
    ]
    lines.append("  payloads   " + ", ".join(payloads))
    lines += [_finding_line(f) for f in v.payloads]
    mismatches = v.count(Status.MISMATCH)
    lines.append(f"{plural(mismatches, 'mismatch')}" if mismatches else "Everything checked matches the Landscape.")
    return "\n".join(lines)


def _status_text(status: Status) -> str:
    """A mismatch stands out in capitals; the other statuses read as they are."""
    return status.upper() if status is Status.MISMATCH else str(status)


def _finding_line(f: Finding) -> str:
    return f"    {_status_text(f.status):<11}  {f.subject}: {f.detail}"


# ---------------------------------------------------------------- purge / db


def _landscape_of(settings_file: str | None, landscape_url: str | None) -> tuple[str, str | None]:
    """The Landscape URL (--landscape, else the settings', else the default) and the settings' payload_dir."""
    configured = _load(settings_file)[0].landscape if settings_file else None
    url = landscape_url or (configured.url if configured else None) or default_url()
    return url, configured.payload_dir if configured else None


_SETTINGS_ARGUMENT = click.argument(
    "settings_file", metavar="[SETTINGS.yaml]", required=False, type=click.Path(dir_okay=False)
)
_WHICH_LANDSCAPE = f"with SETTINGS.yaml, {_FROM_SETTINGS}; without, {_LOCAL}"


@main.command()
@_SETTINGS_ARGUMENT
@click.option("--older-than", "older_than", metavar="AGE", help="Purge runs that ended more than AGE ago: 90d, 36h.")
@click.option("--run", "run_ids", metavar="RUN_ID", multiple=True, help="Purge this run (repeatable).")
@click.option(
    "--include-unfinished",
    is_flag=True,
    help="Also purge failed and interrupted runs, which then can no longer be resumed.",
)
@click.option("--dry-run", is_flag=True, help="Say what would be purged; change nothing.")
@_landscape_option(_WHICH_LANDSCAPE)
def purge(
    settings_file: str | None,
    older_than: str | None,
    run_ids: tuple[str, ...],
    include_unfinished: bool,
    dry_run: bool,
    landscape_url: str | None,
) -> None:
    """Remove the row and call bodies of old runs, keeping every record and every hash.

    A purged run stays in the Landscape, attributable by hashes only: `explain` and `runs` say so, and
    the purges table records who purged it, when, and what went. A payload file is removed once no
    unpurged run refers to it. A run still running is never purged.

    \b
    Examples:
      elspeth purge --older-than 90d --dry-run
      elspeth purge settings.yaml --older-than 90d
      elspeth purge --run 20250101-120000-ab12cd
    """
    if older_than is None and not run_ids:
        raise ConfigError("say which runs to purge: --older-than AGE (e.g. 90d), --run RUN_ID, or both")
    cutoff = time.time() - retention.parse_age(older_than) if older_than is not None else None
    url, configured_dir = _landscape_of(settings_file, landscape_url)
    store = FilePayloadStore(payload_dir(url, configured_dir))
    with _connect(url) as conn:
        chosen = retention.select_runs(conn, cutoff=cutoff, run_ids=run_ids, include_unfinished=include_unfinished)
    for candidate, reason in chosen.kept:
        echo(f"kept {candidate.run_id}: {reason}")
    if not chosen.purge:
        echo("Nothing to purge.")
        return
    if dry_run:
        for candidate in chosen.purge:
            echo(f"would purge {candidate.run_id} ({candidate.status}, ended {when(candidate.ended_at) or '-'})")
        echo(f"Dry run: {plural(len(chosen.purge), 'run')} would be purged; nothing changed.")
        return
    engine = open_database(url)
    try:
        for candidate in chosen.purge:
            done = retention.purge_run(engine, store, candidate.run_id, cutoff=cutoff)
            echo(
                f"purged {done.run_id}: {plural(done.rows_cleared, 'row')}, {plural(done.tokens_cleared, 'token')}, "
                f"{plural(done.batch_members_cleared, 'batch member')}, {plural(done.calls_cleared, 'call')}, "
                f"{plural(done.payload_files_removed, 'payload file')}"
            )
    finally:
        engine.dispose()
    echo(f"Purged {plural(len(chosen.purge), 'run')}; their records and hashes stay (elspeth explain RUN_ID).")


@main.group()
def db() -> None:
    """The Landscape's schema: which version it is at, and upgrading it.

    An elspeth refuses a Landscape at an older schema than its own until it is upgraded here (back it up
    first), and one at a newer schema always.

    \b
    Examples:
      elspeth db version
      elspeth db upgrade --landscape sqlite:///.elspeth/landscape.db
    """


@db.command("upgrade")
@_SETTINGS_ARGUMENT
@_landscape_option(_WHICH_LANDSCAPE)
def db_upgrade(settings_file: str | None, landscape_url: str | None) -> None:
    """Apply the schema migrations the Landscape lacks, each in a transaction of its own.

    \b
    Example:
      elspeth db upgrade --landscape sqlite:///.elspeth/landscape.db
    """
    url, _ = _landscape_of(settings_file, landscape_url)
    _require_existing(url)
    before, applied = upgrade_database(url)
    shown = hide_password(url)
    if not applied:
        echo(f"{shown} is at schema {before}, the current one; nothing to do.")
        return
    echo(f"Upgraded {shown} from schema {before} to {applied[-1]}:")
    for name in applied:
        echo(f"  applied {name}")


@db.command("version")
@_SETTINGS_ARGUMENT
@_landscape_option(_WHICH_LANDSCAPE)
def db_version(settings_file: str | None, landscape_url: str | None) -> None:
    """Show the Landscape's schema, the one this elspeth needs, and the migrations between them.

    \b
    Example:
      elspeth db version --landscape sqlite:///.elspeth/landscape.db
    """
    url, _ = _landscape_of(settings_file, landscape_url)
    _require_existing(url)
    state = schema_state_of(url)
    echo(f"landscape  {hide_password(url)}")
    echo(f"schema     {state.version}")
    echo(f"elspeth    {__version__} (needs {migrations.HEAD})")
    if state.pending:
        pending = ", ".join(m.name for m in state.pending)
        echo(f"pending    {pending}: back it up, then elspeth db upgrade{_landscape_hint(url)}")


# ---------------------------------------------------------------- plugins


@main.group(invoke_without_command=True, subcommand_metavar="[COMMAND [ARGS]...]")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def plugins(ctx: click.Context, as_json: bool) -> None:
    """List the installed plugins, or scaffold a new one.

    Without a subcommand: name, kind, the distribution that installed it, its version, and the hook that
    registered it.

    \b
    Examples:
      elspeth plugins --json
      elspeth plugins new my_sink --kind sink
    """
    if ctx.invoked_subcommand is not None:
        return
    rows = [installer.listed(p) for p in PluginRegistry(make_plugin_manager()).all()]
    if as_json:
        echo_json([dict(zip(installer.LISTED_KEYS, row, strict=True)) for row in rows])
    else:
        echo(_plugin_table(rows))


def _plugin_table(rows: list[installer.Listed]) -> str:
    return table(("NAME", "KIND", "DISTRIBUTION", "VERSION", "HOOK"), rows)


@plugins.command("new")
@click.argument("name")
@click.option("--kind", required=True, type=click.Choice(scaffold.KINDS), help="The kind of plugin to make.")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to create the package (default: ./elspeth-NAME); must not exist or be empty.",
)
def plugins_new(name: str, kind: str, directory: Path | None) -> None:
    """Scaffold a plugin package that passes the conformance suite as generated.

    Writes pyproject.toml (with the entry point), the package elspeth_NAME/ holding the plugin class and
    its hook, a README, a conftest.py that tells the conformance kit how to exercise the plugin, a test,
    and a GitHub Actions workflow running both.

    \b
    Example:
      elspeth plugins new my_sink --kind sink
      cd elspeth-my-sink && elspeth install -e .
      python -m pytest --elspeth-conformance --elspeth-plugin sink:my_sink
    """
    plan = scaffold.plan(name, kind, directory)
    written = scaffold.write(plan)
    where = plan.directory
    article = "an" if kind == "aggregate" else "a"
    echo(f"Created {article} {kind} plugin {name!r} in {where}/:")
    for path in sorted(written):
        echo(f"  {path.relative_to(where)}")
    echo(
        "\nNext:\n"
        f"  cd {where}\n"
        "  elspeth install -e .\n"
        f"  python -m pytest --elspeth-conformance --elspeth-plugin {kind}:{name}"
    )


# ---------------------------------------------------------------- install / uninstall

_PIP_ARGS = {"ignore_unknown_options": True, "help_option_names": ["-h", "--help"]}


@main.command(context_settings=_PIP_ARGS)
@click.argument("packages", nargs=-1, required=True, type=click.UNPROCESSED)
def install(packages: tuple[str, ...]) -> None:
    """Install plugin packages into the environment running elspeth.

    Runs `python -m pip install PACKAGE...` with the Python that runs elspeth, passing every argument
    through (-e PATH, --upgrade, a version specifier, ...), then lists the plugins that became available.

    \b
    Examples:
      elspeth install elspeth-http
      elspeth install -e contrib/elspeth-http
      elspeth install --upgrade elspeth-http
    """
    before, _ = installer.installed_plugins()
    installer.run_pip("install", packages)
    added = [row for row in installer.plugins_after_pip() if row not in before]
    if added:
        echo("\nPlugins added or changed:\n" + _plugin_table(added))
    else:
        echo("\nNo new plugins: what was installed registers none that were not there ('elspeth plugins').")


@main.command(context_settings=_PIP_ARGS)
@click.argument("packages", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def uninstall(packages: tuple[str, ...], yes: bool) -> None:
    """Uninstall plugin distributions from the environment running elspeth.

    Runs `python -m pip uninstall NAME...` with the Python that runs elspeth, passing every argument
    through, then lists the plugins that went away.

    \b
    Example:
      elspeth uninstall elspeth-http -y
    """
    installer.refuse_uninstalling_elspeth(packages)
    before, _ = installer.installed_plugins()
    installer.run_pip("uninstall", [*packages, *(["--yes"] if yes else [])])
    now = installer.plugins_after_pip()
    removed = [row for row in before if row not in now]
    if removed:
        echo("\nPlugins removed:\n" + _plugin_table(removed))
