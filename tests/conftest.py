"""Fixtures: a real workspace per test on SQLite and on PostgreSQL, network blocked.

PostgreSQL: tests connect to EARMARK_TEST_PG_URL (default
postgresql+psycopg://postgres@127.0.0.1:5432/postgres), create a template database migrated once per
run, and give every test its own database copied from it, dropped afterwards. If the server is
unreachable the run fails; set EARMARK_TEST_PG=skip to run SQLite only (never in CI).
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from earmark import db
from earmark.config import Settings, load_settings
from earmark.workspace import Workspace, init_workspace
from tests.fakes import fast_components

PG_URL = os.environ.get("EARMARK_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
PG_MODE = os.environ.get("EARMARK_TEST_PG", "require")
ADMIN_PASSWORD = "admin-password-1"


def _shared_data() -> Path:
    """Public evaluation data (../shared/data next to the checkout), or EARMARK_SHARED_DATA."""
    if "EARMARK_SHARED_DATA" in os.environ:
        return Path(os.environ["EARMARK_SHARED_DATA"])
    for candidate in (Path(__file__).resolve().parents[2] / "shared" / "data", Path("/work/shared/data")):
        if candidate.is_dir():
            return candidate
    return Path(__file__).resolve().parents[2] / "shared" / "data"


SHARED_DATA = _shared_data()

_real_connect = socket.socket.connect


def _guarded_connect(self: socket.socket, address: object) -> object:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0] if isinstance(address, tuple) else address
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise RuntimeError(f"tests may not reach the network ({host})")
    return _real_connect(self, address)  # type: ignore[arg-type]


@pytest.fixture(autouse=True, scope="session")
def _block_network() -> Iterator[None]:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]


def _pg_admin_engine():  # type: ignore[no-untyped-def]
    return create_engine(PG_URL, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str | None]:
    if PG_MODE == "skip":
        yield None
        return
    admin = _pg_admin_engine()
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        pytest.exit(f"PostgreSQL is unreachable at {PG_URL} ({exc}); start it or set EARMARK_TEST_PG_URL", 3)
    name = f"earmark_tpl_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    engine = db.make_engine(url)
    db.upgrade(engine)
    engine.dispose()
    yield name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tpl") / "template.db"
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    engine.dispose()  # the last connection to close checkpoints the WAL into the file
    return path


def _backends() -> list[str]:
    return ["sqlite"] if PG_MODE == "skip" else ["sqlite", "postgresql"]


@pytest.fixture(params=_backends())
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    if backend == "sqlite":
        home = tmp_path / "home"
        home.mkdir()
        shutil.copy(request.getfixturevalue("sqlite_template"), home / "earmark.db")
        yield f"sqlite:///{home / 'earmark.db'}"
        return
    template = request.getfixturevalue("pg_template")
    name = f"earmark_t_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin_engine()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return load_settings(tmp_path / "home", database_url=db_url, blob_fsync=False)


@pytest.fixture
def ws(settings: Settings) -> Iterator[Workspace]:
    workspace, _ = init_workspace(settings, admin_username="admin", admin_password=ADMIN_PASSWORD)
    workspace.parts = fast_components()
    yield workspace
    workspace.close()


@pytest.fixture
def sqlite_ws(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Workspace]:
    """A workspace on SQLite only, for tests whose backend does not matter (browser, CLI)."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(request.getfixturevalue("sqlite_template"), home / "earmark.db")
    s = load_settings(home, blob_fsync=False)
    workspace, _ = init_workspace(s, admin_username="admin", admin_password=ADMIN_PASSWORD)
    workspace.parts = fast_components()
    yield workspace
    workspace.close()
