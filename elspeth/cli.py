"""The `elspeth` command: run, resume, validate, explain, report, runs, keygen, export, verify-export, verify,
purge, db, plugins (and plugins new), install, uninstall.

Every ElspethError becomes `Error: <message>` on stderr and exit code 2, without a traceback (`--debug`
shows it). Commands only parse their arguments, call the library, print what `elspeth.console` renders and
choose the exit code; the queries live in landscape/lineage.py.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from elspeth import __version__, installer, scaffold
from elspeth.console import LiveStatus, echo, echo_json, plural
from elspeth.console.export import render_export, render_export_check, render_key_pair
from elspeth.console.landscape_schema import render_schema_state, render_upgrade
from elspeth.console.pipeline import render_pipeline
from elspeth.console.plugins import plugins_json, render_plugins, render_scaffold
from elspeth.console.purge import purged_line, purged_total, render_selection
from elspeth.console.row_lineage import lineage_json, render_lineage
from elspeth.console.run_summary import render_summary
from elspeth.console.runs import overview_json, render_overview, render_runs, runs_json, trace_hint
from elspeth.console.verification import render_verification, verification_json
from elspeth.engine.interrupts import STOP_SIGNALS, StopRequest
from elspeth.engine.interrupts import install as install_stop_handlers
from elspeth.engine.orchestrator import resume_run, run_pipeline
from elspeth.engine.summary import RunSummary
from elspeth.errors import ConfigError, ElspethError
from elspeth.evidence import signing
from elspeth.evidence.bodies import purged_bodies
from elspeth.evidence.check_export import check_export
from elspeth.evidence.export import export_run
from elspeth.evidence.grade import grade_of_run, grader
from elspeth.evidence.read_back import SettingsSinks
from elspeth.evidence.verify import Status, verify_run
from elspeth.landscape import lineage, retention
from elspeth.landscape.database import (
    check_url,
    connect_existing,
    default_url,
    open_database,
    require_existing,
    schema_state_of,
    upgrade_database,
)
from elspeth.landscape.payloads import payload_store
from elspeth.landscape.redaction import Redactor
from elspeth.landscape.row_values import step_values
from elspeth.plugin_manager import PluginRegistry, make_plugin_manager
from elspeth.preflight import check_plugins
from elspeth.report.collect import report_data
from elspeth.report.page import render_page
from elspeth.report.row_choice import ALL_ROWS_UP_TO, parse_rows
from elspeth.settings import (
    Settings,
    environment_secrets,
    hide_password,
    load_settings,
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
_LOCAL_LANDSCAPE = click.option(
    "--landscape",
    "url",
    metavar="URL",
    callback=lambda _ctx, _param, url: _landscape_url(url, None),
    help=f"Landscape database URL (default: {_LOCAL}).",
)
"""--landscape of the commands that read a Landscape and no settings: without it, the one in this directory."""


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
    url = _landscape_url(landscape_url, settings)
    check_url(url)
    start = functools.partial(run_pipeline, run_id=run_id)
    _drive(start, settings, secrets, settings_file, url, quiet, (record_cassette, replay_cassette))


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
        url = _landscape_url(landscape_url, None)
        with connect_existing(url) as conn:
            settings_file = lineage.get_run(conn, run_id).settings_path
        if settings_file is None:
            raise ElspethError(f"run {run_id!r} recorded no settings file; pass it with --settings FILE")
        settings, secrets = _load(settings_file)
    else:
        settings, secrets = _load(settings_file)
        url = _landscape_url(landscape_url, settings)
        check_url(url)
    start = functools.partial(resume_run, run_id)
    _drive(start, settings, secrets, settings_file, url, quiet, (record_cassette, replay_cassette))


def _load(settings_file: str) -> tuple[Settings, frozenset[str]]:
    raw = read_settings_file(settings_file)
    return settings_from_raw(raw, file=settings_file), frozenset(secret_values(raw) | environment_secrets())


def _landscape_url(given: str | None, settings: Settings | None) -> str:
    """--landscape, else the settings' landscape.url, else the Landscape in this directory."""
    return given or (settings.landscape.url if settings else None) or default_url()


def _drive(
    start: Callable[..., RunSummary],
    settings: Settings,
    secrets: frozenset[str],
    settings_file: str,
    url: str,
    quiet: bool,
    cassette: tuple[str | None, str | None],
) -> None:
    """Start (run or resume) a run of `settings` once their plugins are checked, its progress on stderr and
    HTTP through the cassette asked for; then `_finish`."""
    registry = PluginRegistry(make_plugin_manager())
    check_plugins(settings, registry, settings_file, files_now=False)
    status = LiveStatus(sys.stderr, enabled=not quiet, terminal=sys.stderr.isatty())
    # SIGINT and SIGTERM stop the run at its next safe point, and stay noted until the process exits: a
    # second Ctrl-C while the summary is printed must not turn a clean stop into a traceback.
    stop = StopRequest()
    install_stop_handlers(stop)
    with _cassette(*cassette, secrets):
        summary = start(
            settings,
            registry=registry,
            settings_path=str(Path(settings_file).resolve()),
            landscape_url=url,
            progress=status,
            secrets=secrets,
            stop=stop,
        )
    _finish(status, summary, url)


def _finish(status: LiveStatus, summary: RunSummary, url: str) -> None:
    """Print the summary and the next command to type; an interrupted run exits 130 (the shell's code for
    Ctrl-C) with one line, another that did not complete exits 1."""
    status.finish()
    if summary.status != "interrupted":
        echo(render_summary(summary))
    landscape = _landscape_hint(url)
    if summary.status == "completed":
        echo(trace_hint(summary.run_id, landscape))
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
    echo(f"OK {settings_file}")
    echo(render_pipeline(settings, infos))


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
@_LOCAL_LANDSCAPE
@_payloads_option
def explain(run_id: str, row_id: int | None, as_json: bool, url: str, payload_dir: Path | None) -> None:
    """Show what a run did, or the full lineage of one of its rows.

    With --row, each transform step shows what it changed (field: before -> after) beside its hashes;
    long values are shortened, --json keeps them whole.

    \b
    Examples:
      elspeth explain RUN_ID            nodes, outcomes, artifacts
      elspeth explain RUN_ID --row 0    the first row: payload, every state and its values, call, batch, outcome
    """
    store = payload_store(url, payload_dir)
    with connect_existing(url) as conn:
        if row_id is None:
            overview = lineage.run_overview(conn, run_id)
            run_grade = grader(conn, store)(run_id)
        else:
            row = lineage.row_lineage(conn, run_id, row_id, store.get)
    if row_id is None:
        if as_json:
            echo_json(overview_json(overview, run_grade))
        else:
            echo(render_overview(overview, _landscape_hint(url), run_grade))
        return
    values = step_values(row)
    if as_json:
        echo_json(lineage_json(row, values))
    else:
        echo(render_lineage(row, values))


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
@_LOCAL_LANDSCAPE
@_payloads_option
def report(run_id: str, output: Path | None, rows_spec: str | None, url: str, payload_dir: Path | None) -> None:
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
    with connect_existing(url) as conn:
        data = report_data(conn, run_id, payload_store(url, payload_dir).get, asked)
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
@_LOCAL_LANDSCAPE
@_payloads_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def runs(url: str, payload_dir: Path | None, as_json: bool) -> None:
    """List the runs in a Landscape, newest first.

    \b
    Example:
      elspeth runs --landscape sqlite:///.elspeth/landscape.db
    """
    with connect_existing(url) as conn:
        found = lineage.list_runs(conn)
        graded = grader(conn, payload_store(url, payload_dir))
        grades = {r.run_id: graded(r.run_id).level.value for r in found}
    if as_json:
        echo_json(runs_json(found, grades))
    else:
        echo(render_runs(found, grades))


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
    echo(render_key_pair(private_key, public, signing.fingerprint(key)))


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
@_LOCAL_LANDSCAPE
@_payloads_option
def export(run_id: str, output: Path, key_file: str, url: str, payload_dir: Path | None) -> None:
    """Write every record of a run to one signed, self-contained file.

    Run, settings, nodes, rows, tokens, states, calls with their full bodies, batches, artifacts and
    outcomes, one JSON record a line, signed with Ed25519 (format: docs/evidence.md). Check it anywhere,
    without the database, with `elspeth verify-export`.

    \b
    Example:
      elspeth export 20250101-120000-ab12cd -o run.jsonl --key export-key.pem
    """
    key = signing.load_private_key(key_file)
    store = payload_store(url, payload_dir)
    with connect_existing(url) as conn:
        lineage.get_run(conn, run_id)
        purged = purged_bodies(conn, run_id, store)
        run_grade = grade_of_run(conn, run_id, PluginRegistry(make_plugin_manager()), store)
        counts = export_run(conn, run_id, output, key=key, store=store, grade=run_grade, bodies_purged=purged)
    fingerprint = signing.fingerprint(key.public_key())
    echo(render_export(run_id, output, sum(counts.values()), run_grade.level, purged, fingerprint))


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
    echo(render_export_check(export_file, result))
    if result.problems:
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
@_LOCAL_LANDSCAPE
@_payloads_option
def verify(
    run_id: str,
    settings_file: str | None,
    strict: bool,
    as_json: bool,
    url: str,
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
    store = payload_store(url, payload_dir)
    with connect_existing(url) as conn:
        run = lineage.get_run(conn, run_id)
        result = verify_run(conn, run_id, store, SettingsSinks(settings_file or run.settings_path))
    mismatches = result.count(Status.MISMATCH)
    unsure = result.count(Status.NOT_CHECKED) + result.count(Status.PURGED)
    if as_json:
        echo_json(verification_json(result))
    else:
        echo(render_verification(result))
    if mismatches or (strict and unsure):
        sys.exit(1)


# ---------------------------------------------------------------- purge / db


def _landscape_of(settings_file: str | None, landscape_url: str | None) -> tuple[str, str | None]:
    """The URL of the existing Landscape the arguments name (--landscape, else the settings', else the
    default), and the settings' payload_dir."""
    settings = load_settings(settings_file) if settings_file else None
    url = _landscape_url(landscape_url, settings)
    require_existing(url)
    return url, settings.landscape.payload_dir if settings else None


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
    store = payload_store(url, configured_dir)
    engine = open_database(url)
    try:
        with engine.connect() as conn:
            chosen = retention.select_runs(conn, cutoff=cutoff, run_ids=run_ids, include_unfinished=include_unfinished)
        if selection := render_selection(chosen, dry_run=dry_run):
            echo(selection)
        if dry_run or not chosen.purge:
            return
        for candidate in chosen.purge:
            echo(purged_line(retention.purge_run(engine, store, candidate.run_id, cutoff=cutoff)))
    finally:
        engine.dispose()
    echo(purged_total(len(chosen.purge)))


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
    before, applied = upgrade_database(url)
    echo(render_upgrade(hide_password(url), before, applied))


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
    echo(render_schema_state(hide_password(url), schema_state_of(url), _landscape_hint(url)))


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
        echo_json(plugins_json(rows))
    else:
        echo(render_plugins(rows))


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
    echo(render_scaffold(name, kind, plan.directory, written))


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
        echo("\nPlugins added or changed:\n" + render_plugins(added))
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
        echo("\nPlugins removed:\n" + render_plugins(removed))
