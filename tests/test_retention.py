from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from earmark import audit
from earmark.errors import InvalidInput
from earmark.models import Annotation, AuditEvent, Clip, HelpRequest, QueueItem, utcnow
from earmark.queues import lease_next
from earmark.retention import RetentionPolicy, run_retention
from earmark.review import submit_annotation
from earmark.types import Actor
from earmark.workspace import Workspace
from tests import factories as f


def _review_one(ws: Workspace) -> None:
    from earmark.help import ask_help

    reviewer = f.user(ws, "rev1")
    with ws.transaction() as s:
        a = lease_next(s, actor=reviewer)
        assert a is not None
        ask_help(s, actor=reviewer, assignment_id=a.id, start=0.1, end=0.5, question="is it music?")
        submit_annotation(s, actor=reviewer, assignment_id=a.id, transcript="play music", intent="PlayMusic")


NBEST = {"text": "call jane", "confidence": 0.5, "alternatives": ["call jane doe"]}


def test_nothing_is_purged_before_its_time(ws: Workspace) -> None:
    f.queue_clips(ws, 2)
    result = ws.run_retention(actor=Actor.cli())
    assert result.counts() == {"originals": 0, "derivatives": 0, "transcripts": 0, "annotations": 0, "withdrawn": 0}


def test_each_class_goes_after_its_own_period(ws: Workspace) -> None:
    f.queue_clips(ws, 3)
    _review_one(ws)
    with ws.sessions() as s:
        clips = s.execute(select(Clip)).scalars().all()
    originals = {c.blob_key for c in clips}
    derivatives = {c.protected_blob_key for c in clips}
    later = utcnow() + timedelta(days=40)  # past derivatives (30), before originals (90)
    result = ws.run_retention(actor=Actor.cli(), now=later)
    assert result.derivatives == 3 and result.originals == 0 and result.transcripts == 0
    assert result.withdrawn == 2  # the two clips still waiting in the queue leave it
    assert not any(ws.blobs.exists(k) for k in derivatives if k)
    assert all(ws.blobs.exists(k) for k in originals if k)
    result = ws.run_retention(actor=Actor.cli(), now=utcnow() + timedelta(days=400))
    assert result.originals == 3 and result.transcripts == 3 and result.annotations == 2  # a label, a question
    with ws.sessions() as s:
        assert s.execute(select(HelpRequest)).first() is None
        rows = s.execute(select(Clip)).scalars().all()
        assert all(c.blob_key is None and c.device_asr_text is None and c.text_purged_at for c in rows)
        assert s.execute(select(func.count()).select_from(Annotation)).scalar_one() == 0
        assert (
            s.execute(select(func.count()).select_from(QueueItem).where(QueueItem.state == "queued")).scalar_one() == 0
        )
        assert audit.verify_chain(s).ok
        counts = [e.details for e in audit.search(s, action="retention.run")]
    assert counts[0]["originals"] == 3


def test_a_policy_that_would_delete_audit_rows_is_refused(ws: Workspace) -> None:
    with pytest.raises(InvalidInput, match="hash chain"), ws.transaction() as s:
        run_retention(s, actor=Actor.cli(), policy=RetentionPolicy(audit_days=365))
    ws.settings.retention_audit_days = 30
    with pytest.raises(InvalidInput, match="retention_audit_days"):
        ws.run_retention(actor=Actor.cli())


def test_transcript_and_annotation_retention_reach_every_copy_of_the_words(ws: Workspace) -> None:
    """The device's n-best, a gold answer (the clip's transcript typed by an admin) and a safety
    note (the safety team's words about the clip) go with the class they belong to."""
    from earmark import escalation
    from earmark.models import GoldAnswer, SafetyOutcome
    from earmark.quality import add_gold
    from earmark.review import flag_sensitive
    from earmark.types import Role

    [nbest] = f.ingest(
        ws,
        1,
        account_id="acct-n",
        device_asr=NBEST,
    )
    ids = f.queue_clips(ws, 2)
    with ws.transaction() as s:
        clip = s.execute(select(Clip).where(Clip.external_id == ids[0])).scalar_one()
        add_gold(s, actor=Actor.cli(), clip=clip, transcript="call jane doe on five five five", intent="MakeCall")
    r, safety = f.user(ws, "r1"), f.user(ws, "saf1", Role.safety)
    with ws.transaction() as s:
        a = lease_next(s, actor=r)
        assert a is not None
        flag_sensitive(s, actor=r, assignment_id=a.id)
    with ws.transaction() as s:
        lease = escalation.lease_safety(s, actor=safety, max_clips=5, window_minutes=60, lease_seconds=600)
        assert lease.assignment is not None
        escalation.record_outcome(
            s, actor=safety, assignment_id=lease.assignment.id, outcome="handled", note="caller named jane doe"
        )
    ws.run_retention(actor=Actor.cli(), now=utcnow() + timedelta(days=1000))
    with ws.sessions() as s:
        assert s.execute(select(Clip.device_asr_alternatives).where(Clip.external_id == nbest)).scalar_one() is None
        assert s.execute(select(GoldAnswer)).first() is None
        assert [(o.outcome, o.note) for o in s.execute(select(SafetyOutcome)).scalars()] == [("handled", None)]


@f.postgres_only
def test_retention_and_a_lease_in_flight_do_not_deadlock(ws: Workspace) -> None:
    """The lease held the item and wanted a key-share lock on the clip (its assignment's foreign
    key); retention held the clip (clearing a unique blob key) and wanted the item."""
    f.queue_clips(ws, 1)
    reviewer = f.user(ws, "r1")

    def retention() -> None:
        with ws.transaction() as s:
            run_retention(s, actor=Actor.system(), policy=RetentionPolicy(), now=utcnow() + timedelta(days=400))

    other = f.Racer(retention)
    # Once the lease has claimed the item: just before its assignment goes in.
    with f.at_statement(ws, other, "INSERT INTO assignments"), ws.transaction() as s:
        lease_next(s, actor=reviewer)
    other.join()
    assert other.error is None, other.error
    with ws.sessions() as s:
        assert s.execute(select(QueueItem.state)).scalars().all() == ["withdrawn"]


def test_a_dry_run_counts_what_would_go_and_keeps_everything_and_erased_clips_are_not_counted(
    ws: Workspace,
) -> None:
    f.queue_clips(ws, 3)
    f.ingest(ws, 2, account_id="acct-erased")
    ws.erase(actor=Actor.cli(), account_id="acct-erased")  # its text is gone already
    _review_one(ws)
    later = utcnow() + timedelta(days=400)
    with ws.sessions() as s:
        before = (
            s.execute(select(func.count()).select_from(Annotation)).scalar_one(),
            s.execute(select(func.max(AuditEvent.seq))).scalar_one(),
        )
    blobs = set(ws.blobs.iter_keys())
    dry = ws.run_retention(actor=Actor.cli(), now=later, dry_run=True)
    assert dry.transcripts == 3 and dry.originals == 3 and dry.annotations == 2  # not the 2 erased clips
    with ws.sessions() as s:
        after = (
            s.execute(select(func.count()).select_from(Annotation)).scalar_one(),
            s.execute(select(func.max(AuditEvent.seq))).scalar_one(),
        )
        assert s.execute(select(Clip).where(Clip.text_purged_at.is_not(None))).first() is None
    assert after == before and set(ws.blobs.iter_keys()) == blobs  # nothing purged, nothing audited
    real = ws.run_retention(actor=Actor.cli(), now=later)
    assert real.counts() == dry.counts()
