"""The migrations build the schema the models describe, on both databases (no drift)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from earmark import db
from earmark.models import Base


def test_the_migrated_schema_is_the_models_schema(db_url: str) -> None:
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            drift = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert drift == []
