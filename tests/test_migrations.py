"""The migrations build the schema the models describe, on both databases (no drift)."""

from __future__ import annotations

import shutil
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from earmark import db
from earmark.models import Base
from earmark.types import Actor
from earmark.workspace import Workspace


def test_the_migrated_schema_is_the_models_schema(db_url: str) -> None:
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            drift = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert drift == []


def test_the_downgrade_from_0009_leaves_export_membership_as_0008_kept_it(ws: Workspace, tmp_path: Path) -> None:
    """0008 deleted a pruned clip's row and knew no `gone` export; left as they were, the rows a
    prune had marked removed read as members again (a report would say the dataset holds them)."""
    from alembic import command

    from earmark.export import forget_export, prune_exports, run_export
    from tests.test_export import _reviewed

    _reviewed(ws, 2, accounts=2)
    run_export(ws, actor=Actor.cli(), fmt="massive", out=tmp_path / "a")
    run_export(ws, actor=Actor.cli(), fmt="rasa", out=tmp_path / "b")
    ws.erase(actor=Actor.cli(), account_id="acct-q0")
    assert prune_exports(ws, actor=Actor.cli()).items_removed == 2
    shutil.rmtree(tmp_path / "b")
    with ws.transaction() as s:
        forget_export(s, actor=Actor.cli(), export=str(tmp_path / "b"))
    cfg = db.alembic_config(ws.engine.url.render_as_string(hide_password=False))
    with ws.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0008")
    with ws.engine.connect() as conn:
        members = conn.execute(
            text("SELECT e.name, count(*) FROM export_clips x JOIN exports e ON e.id = x.export_id GROUP BY e.name")
        ).all()
        states = dict(conn.execute(text("SELECT name, state FROM exports")).all())
    # The erased clip's rows went from both; b's other clip stays, as a superseded export's did.
    assert sorted(members) == [("a", 1), ("b", 1)]
    assert states == {"a": "current", "b": "superseded"}
    with ws.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
