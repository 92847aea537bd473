"""Opening a Landscape database: URL handling, SQLite pragmas, the schema version check.

A new database is created at the current schema. An existing one at an older schema is refused, not
upgraded on the side: an upgrade changes a shared audit record that older elspeths then cannot open, so it
is a step of its own (`elspeth db upgrade`), taken once and on purpose, after a backup.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, NoSuchModuleError

from elspeth import __version__
from elspeth.errors import LandscapeError
from elspeth.landscape import migrations

DEFAULT_DIR = Path(".elspeth")


def default_url(base: Path | None = None) -> str:
    return f"sqlite:///{(base or Path.cwd()) / DEFAULT_DIR / 'landscape.db'}"


_EXAMPLES = "use e.g. sqlite:///path/to/landscape.db or postgresql+psycopg://user@host/db"
_SQLITE_MAGIC = b"SQLite format 3\x00"


def check_url(url: str) -> URL:
    """`url` parsed, or a LandscapeError saying what is wrong with it: not a URL, a database kind SQLAlchemy
    does not know, or (SQLite) a path that cannot be a database file. Touches nothing."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise LandscapeError(f"landscape URL {url!r} is not a database URL; {_EXAMPLES}") from None
    try:
        parsed.get_dialect()
    except NoSuchModuleError:
        raise LandscapeError(
            f"landscape URL {url!r}: {parsed.drivername!r} is not a kind of database elspeth can use; {_EXAMPLES}"
        ) from None
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        _check_sqlite_path(url, parsed.database)
    return parsed


def _check_sqlite_path(url: str, database: str) -> None:
    lead = f"landscape URL {url!r}: {database!r}"
    if "\x00" in database:
        raise LandscapeError(f"{lead} holds a NUL character, which no file name can; fix the path")
    try:
        mode = os.stat(database).st_mode
    except FileNotFoundError:
        return  # created on first use, parent directories too
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise LandscapeError(f"{lead} is too long a path for this system; use a shorter one") from None
        if exc.errno == errno.ENOTDIR:
            raise LandscapeError(f"{lead}: a directory in this path is a file; fix the path") from None
        raise LandscapeError(f"{lead} cannot be opened: {exc.strerror}; fix the path or its permissions") from None
    if stat.S_ISDIR(mode):
        raise LandscapeError(f"{lead} is a directory; name a file in it, e.g. {database.rstrip('/')}/landscape.db")
    if not stat.S_ISREG(mode):  # a device or a pipe: reading it could block, writing it could harm
        raise LandscapeError(f"{lead} is not a regular file; point the landscape at a file")
    try:
        with open(database, "rb") as f:
            head = f.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise LandscapeError(f"{lead} cannot be opened: {exc.strerror}; fix the path or its permissions") from None
    if head and head != _SQLITE_MAGIC:
        raise LandscapeError(f"{lead} is a file but not a SQLite database; point the landscape at another file")


def open_database(url: str) -> Engine:
    """An engine on `url` with the schema at the current version: created if the database is empty, else a
    LandscapeError saying what to do when it is older or newer than this elspeth. SQLite connections get
    foreign keys on, WAL and full sync: a commit survives a SIGKILL and a power cut. A new SQLite file is
    created readable by its owner only (0600), and SQLite gives its -wal and -shm files the same mode."""
    engine, parsed = _engine(url)
    try:
        with engine.connect() as conn:
            state = migrations.schema_state(conn)
        if state.empty:
            migrations.upgrade(engine)
        else:
            _refuse_pending(state, parsed)
    except DatabaseError as exc:  # OperationalError ("unable to open"), "file is not a database", ...
        engine.dispose()
        raise LandscapeError(f"cannot open the landscape at {parsed.render_as_string()}: {exc.orig}") from None
    except BaseException:
        engine.dispose()
        raise
    return engine


def _refuse_pending(state: migrations.SchemaState, parsed: URL) -> None:
    """A LandscapeError, saying how to upgrade, when the database lacks migrations this elspeth has."""
    if state.pending:
        shown = parsed.render_as_string()
        raise LandscapeError(
            f"the landscape at {shown} is at schema {state.version}; this elspeth ({__version__}) needs "
            f"{migrations.HEAD}. Back it up, then upgrade it: elspeth db upgrade --landscape {shown}"
        )


def require_existing(url: str) -> None:
    """A LandscapeError when `url` names a SQLite file that does not exist: a command that reads a Landscape
    (or upgrades one) must not create an empty one and report on that."""
    parsed = check_url(url)
    database = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if database and database != ":memory:" and not Path(database).exists():
        raise LandscapeError(
            f"no landscape at {database}; run a pipeline first ('elspeth run SETTINGS.yaml') "
            "or point at one with --landscape URL"
        )


def open_existing(url: str) -> Engine:
    """An engine on the Landscape at `url`, changing nothing: a LandscapeError when there is none (no file, or a
    database holding no Landscape) or it is at another schema than this elspeth's, which would fail at its
    first query instead."""
    require_existing(url)
    engine, parsed = _engine(url)
    try:
        with engine.connect() as conn:
            state = migrations.schema_state(conn)
        if state.empty:
            raise LandscapeError(f"no landscape at {parsed.render_as_string()}: the database holds no Landscape")
        _refuse_pending(state, parsed)
    except DatabaseError as exc:
        engine.dispose()
        raise LandscapeError(f"cannot open the landscape at {parsed.render_as_string()}: {exc.orig}") from None
    except BaseException:
        engine.dispose()
        raise
    return engine


@contextlib.contextmanager
def connect_existing(url: str) -> Iterator[Connection]:
    """A connection to the existing Landscape at `url`, at the current schema."""
    require_existing(url)
    engine = open_database(url)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def upgrade_database(url: str) -> tuple[str, list[str]]:
    """Apply every migration the database at `url` lacks: (the schema it was at, the migrations applied)."""
    engine, parsed = _engine(url)
    try:
        with engine.connect() as conn:
            before = migrations.schema_state(conn).version
        return before, migrations.upgrade(engine)
    except DatabaseError as exc:
        raise LandscapeError(f"cannot upgrade the landscape at {parsed.render_as_string()}: {exc.orig}") from None
    finally:
        engine.dispose()


def schema_state_of(url: str) -> migrations.SchemaState:
    """Which migrations the database at `url` has; changes nothing."""
    engine, parsed = _engine(url)
    try:
        with engine.connect() as conn:
            return migrations.schema_state(conn)
    except DatabaseError as exc:
        raise LandscapeError(f"cannot read the landscape at {parsed.render_as_string()}: {exc.orig}") from None
    finally:
        engine.dispose()


def _engine(url: str) -> tuple[Engine, URL]:
    parsed = check_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            _create_private(Path(database))
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        try:
            engine = create_engine(url, pool_pre_ping=True)
        except ModuleNotFoundError as exc:
            raise LandscapeError(
                f"the driver for {parsed.drivername} is not installed ({exc.name}); "
                "install it, e.g. pip install 'elspeth[postgres]'"
            ) from None
    return engine, parsed


def _create_private(path: Path) -> None:
    """Create `path` empty (SQLite takes an empty file for a new database) with mode 0600, and its missing
    parent directories with 0700: the audit holds every row's data, like the payload files do."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise LandscapeError(
            f"cannot create the landscape database {str(path)!r}: {exc.strerror}; fix the path or its permissions"
        ) from None
    os.close(fd)


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    # Only takes effect on a new database (before WAL fixes it): 16 KiB pages make the audit's
    # append-mostly inserts about a third cheaper than the default 4 KiB.
    cursor.execute("PRAGMA page_size=16384")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()
