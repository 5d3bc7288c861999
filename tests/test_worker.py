"""The server's background worker: pipeline, retention and metrics rounds."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy import text as sql

from earmark.models import AuditEvent, Clip, ClipError
from earmark.queues import lease_next
from earmark.review import submit_annotation
from earmark.worker import BackgroundWorker
from earmark.workspace import Workspace
from tests import factories as f


def test_a_round_processes_sampled_clips_and_keeps_metrics_current(ws: Workspace) -> None:
    f.ingest_speech(ws, "play shake it off by taylor swift", account_id="w1")
    f.allow(ws, "w1")
    f.sample_all(ws)
    worker = BackgroundWorker(ws, interval=0.1)
    assert worker.run_once() == 1
    with ws.sessions() as s:
        assert s.execute(select(Clip.status)).scalar_one() == "queued"
    reviewer = f.user(ws, "w-rev")
    with ws.transaction() as s:
        a = lease_next(s, actor=reviewer)
        assert a is not None
        submit_annotation(
            s, actor=reviewer, assignment_id=a.id, transcript="play shake it off by taylor swift", intent="PlayMusic"
        )
    worker._next_metrics = 0.0  # the next round is due
    worker.run_once()
    with ws.sessions() as s:
        assert s.execute(select(ClipError.asr_errors, ClipError.asr_words)).one() == (0, 7)


@f.postgres_only
def test_retention_rolled_back_by_a_database_conflict_runs_again_next_round(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The round that met the conflict had already moved the next run a whole interval away."""
    monkeypatch.setenv("PGOPTIONS", "-c lock_timeout=300")
    ws.engine.dispose()
    worker = BackgroundWorker(ws, interval=0.1)
    with ws.engine.connect() as holder:
        holder.execute(sql("SELECT 1 FROM audit_head FOR UPDATE"))
        worker.run_once()
    worker.run_once()
    with ws.sessions() as s:
        assert s.execute(select(AuditEvent.action).where(AuditEvent.action == "retention.run")).scalars().all() == [
            "retention.run"
        ]
