"""Database URLs, engines and migrations.

SQLite (a path or sqlite:/// URL) runs in WAL mode and takes the write lock at the start of every
transaction (BEGIN IMMEDIATE), so several processes writing one file serialise instead of failing
half-way. Threads of one process take turns on a lock before that: SQLite's own wait for a busy
database sleeps in steps of milliseconds to 100 ms, which under a stream of concurrent requests costs
more than the transactions. `synchronous` is NORMAL by default (see SQLITE_SYNCHRONOUS). PostgreSQL URLs
use psycopg 3.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: processes sharing a file wait the way SQLite waits
    fcntl = None

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

SQLITE_BUSY_SECONDS = 60
# NORMAL: in WAL mode a commit is durable once it is in the WAL file, which survives the process being
# killed; only an operating-system crash or power loss can lose the last commits (the database stays
# consistent). FULL also syncs the WAL to disk on every commit: about 10 ms each on this machine's disk,
# which caps ingest near 100 documents/s. Store.open(sqlite_synchronous="full") for power-loss durability.
SQLITE_SYNCHRONOUS = "normal"
SYNCHRONOUS_MODES = ("off", "normal", "full", "extra")


def normalise_url(database: str | os.PathLike) -> str:
    """A path or URL as an operator writes it -> an SQLAlchemy URL (postgresql:// uses psycopg 3)."""
    text = os.fspath(database).strip()
    if not text:
        raise ValueError("empty database URL")
    if "://" not in text:
        return "sqlite:///" + str(Path(text).expanduser().resolve())
    scheme, rest = text.split("://", 1)
    if scheme in ("postgres", "postgresql"):
        return "postgresql+psycopg://" + rest
    return text


def describe_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def create_store_engine(database: str | os.PathLike, sqlite_synchronous: str = SQLITE_SYNCHRONOUS) -> Engine:
    url = make_url(normalise_url(database))
    if url.get_backend_name() == "sqlite":
        if sqlite_synchronous.lower() not in SYNCHRONOUS_MODES:
            raise ValueError(f"sqlite_synchronous {sqlite_synchronous!r}: use one of {', '.join(SYNCHRONOUS_MODES)}")
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_SECONDS})
        _sqlite_immediate_transactions(engine, sqlite_synchronous.upper())
        _one_connection_at_a_time(engine, url.database)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _one_connection_at_a_time(engine: Engine, database: str) -> None:
    """Threads of this process hold a lock while they hold a connection (so, a transaction), and so do
    processes sharing the file (an advisory lock on `<database>.lock`, given up by the kernel if the
    process dies). A waiting thread or process is woken the moment the lock is free, where SQLite's own
    wait for a busy database sleeps in steps of up to 100 ms. After SQLITE_BUSY_SECONDS without the lock
    a thread goes on and leaves the waiting to SQLite: these locks only spare the sleeps, SQLite's own lock
    keeps the data safe."""
    threads = threading.Lock()
    path = database + ".lock" if database and database != ":memory:" and fcntl else None

    @event.listens_for(engine, "checkout")
    def _take(_dbapi_connection, record, _proxy):
        record.info["holds_lock"] = taken = threads.acquire(timeout=SQLITE_BUSY_SECONDS)
        if taken and path:
            record.info["lock_file"] = handle = open(path, "a")  # noqa: SIM115 (closed at checkin)
            fcntl.flock(handle, fcntl.LOCK_EX)

    @event.listens_for(engine, "checkin")
    def _give(_dbapi_connection, record):
        handle = record.info.pop("lock_file", None)
        if handle is not None:
            handle.close()  # closing the file gives up its lock
        if record.info.pop("holds_lock", False):
            threads.release()


def _sqlite_immediate_transactions(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" event emits BEGIN itself
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_SECONDS * 1000}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (a no-op when it is there already)."""
    config = Config()
    config.set_main_option("script_location", "adapter.store:migrations")
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        connection.commit()
