"""The server's background worker: pipeline, retention and metrics rounds."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

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


def test_with_worker_sampling_a_clip_posted_to_the_api_reaches_the_queue_by_itself(ws: Workspace) -> None:
    """Nothing sampled clips that arrived through the API until someone ran `earmark sample`."""
    (ws.settings.home / "policy.toml").write_text("rate = 1.0\ncap_per_account = 5\n")
    ws.settings.sampling_policy = Path("policy.toml")  # from the workspace folder
    ws.settings.worker_sample_minutes = 5
    f.allow(ws, "w1")
    f.ingest_speech(ws, "play shake it off by taylor swift", account_id="w1")
    f.ingest_speech(ws, "play shake it off by taylor swift", account_id="nobody-asked")  # no consent
    worker = BackgroundWorker(ws, interval=0.1)
    assert worker.run_once() == 1
    with ws.sessions() as s:
        assert sorted(s.execute(select(Clip.status)).scalars()) == ["queued", "stored"]
        drawn = s.execute(select(AuditEvent).where(AuditEvent.action == "sample.draw")).scalar_one()
        assert drawn.actor == "system" and drawn.details["drawn"] == 1
    assert worker.run_once() == 0  # the next draw waits for its interval
    worker.draw_overlap = timedelta(0)  # the test's clips all arrived within the last minute
    worker._next_sample = 0.0  # due: it reads only what arrived since, and records nothing for nothing
    assert worker.run_once() == 0
    f.ingest_speech(ws, "play it again", account_id="w1")
    worker._next_sample = 0.0
    assert worker.run_once() == 1
    with ws.sessions() as s:
        draws = (
            s.execute(select(AuditEvent.details).where(AuditEvent.action == "sample.draw").order_by(AuditEvent.seq))
            .scalars()
            .all()
        )
    assert [d["considered"] for d in draws] == [2, 1]  # the left-out clip is not re-read every round
    f.allow(ws, "nobody-asked")  # consent after the recording: its clip is read again, and drawn
    worker._next_sample = 0.0
    assert worker.run_once() == 1


def test_worker_sampling_without_a_policy_file_is_refused_at_startup(ws: Workspace) -> None:
    from earmark.config import load_settings
    from earmark.errors import ConfigError

    with pytest.raises(ConfigError, match="worker_sample_minutes needs sampling_policy"):
        load_settings(ws.settings.home, worker_sample_minutes=5)


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
