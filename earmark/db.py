"""Engines, sessions and schema migrations (Alembic, run from inside the package)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from earmark.errors import SchemaError

# SQLSTATEs of a conflict that trying again resolves: serialization failure, deadlock detected
# (the database rolled this transaction back to break the cycle), lock not available (lock_timeout).
TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "55P03"})
BUSY_MESSAGE = "the database was busy with a conflicting change; nothing was saved; try again"


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` is a database conflict that left nothing half-done and may succeed if the
    whole change is tried again (PostgreSQL SQLSTATEs above; SQLite still locked after its wait)."""
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    return getattr(orig, "sqlstate", None) in TRANSIENT_SQLSTATES or "database is locked" in str(orig)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and write-serializing transactions."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy, not pysqlite, decide when a transaction begins (see "begin" below).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            # Deleted rows are overwritten with zeros, so erased transcripts do not linger in
            # free pages of the database file.
            cur.execute("PRAGMA secure_delete=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # BEGIN IMMEDIATE takes the write lock up front: a transaction that reads and then writes
            # (lease a clip, append to the audit chain) cannot lose a race half-way (SQLITE_BUSY).
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error. Used at the boundaries only."""
    with factory() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("earmark") / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine) -> None:
    """Migrate the database behind `engine` to the newest schema."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def schema_revisions(engine: Engine) -> tuple[str | None, str | None]:
    """(current revision of the database, newest revision this code knows)."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return current, head


def check_schema(engine: Engine) -> None:
    """Refuse to run on a database that is not at the newest migration."""
    current, head = schema_revisions(engine)
    if current != head:
        where = engine.url.render_as_string(hide_password=True)
        if current is None:
            raise SchemaError(
                f"the database at {where} has no earmark schema; run `earmark init` for a new "
                "workspace or `earmark db upgrade` for an existing one"
            )
        raise SchemaError(
            f"the database at {where} is at schema revision {current}, this earmark needs {head}; "
            "run `earmark db upgrade`"
        )


def checkpoint(engine: Engine) -> None:
    """SQLite: copy the WAL into the database file and truncate it, so content that was deleted
    (erasure, retention) leaves no older copy in the WAL. A no-op on other backends."""
    if engine.dialect.name != "sqlite":
        return
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cur.close()
    finally:
        raw.close()


def one_at_a_time(session: Session, name: str) -> None:
    """Wait until no other transaction holds `name`'s lock, then hold it until this one ends
    (PostgreSQL's advisory lock; SQLite's BEGIN IMMEDIATE already runs one writer at a time).
    For work that reads, then writes from what it read, and must not run twice at once (two metric
    refreshes inserting the same rows; two gold picks each filling a household's place). Take it
    first, before any row lock, so it cannot be part of a deadlock."""
    if session.get_bind().dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(f"earmark:{name}".encode()).digest()[:8], "big", signed=True)
        session.execute(select(func.pg_advisory_xact_lock(key)))
