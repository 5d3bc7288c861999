from __future__ import annotations

import pytest
from sqlalchemy import select

from earmark.consent import set_consent
from earmark.errors import NotFound, Withdrawn
from earmark.models import Assignment, Clip, QueueItem
from earmark.queues import lease_next
from earmark.review import submit_annotation
from earmark.sampling import draw_sample
from earmark.sampling_policy import SamplingPolicy
from earmark.types import Actor, Consent
from earmark.workspace import Workspace
from tests import factories as f


def _sample(ws: Workspace, default: Consent = Consent.deny) -> int:
    with ws.transaction() as s:
        return draw_sample(
            s,
            actor=Actor.cli(),
            policy=SamplingPolicy.uniform(1.0, cap=100, period_days=30),
            key=b"k",
            default_consent=default,
        ).drawn


def test_accounts_that_never_answered_are_not_eligible_by_default(ws: Workspace) -> None:
    f.ingest(ws, 3, account_id="silent")
    assert _sample(ws) == 0


def test_default_allow_is_a_setting(ws: Workspace) -> None:
    f.ingest(ws, 2, account_id="silent")
    assert _sample(ws, Consent.allow) == 2


def test_only_allowed_accounts_are_sampled(ws: Workspace) -> None:
    f.ingest(ws, 2, account_id="yes")
    f.ingest(ws, 2, account_id="no")
    f.allow(ws, "yes")
    with ws.transaction() as s:
        set_consent(s, actor=Actor.cli(), account_id="no", human_review=Consent.deny)
    assert _sample(ws, Consent.allow) == 2
    with ws.sessions() as s:
        sampled = s.execute(select(Clip.account_id).where(Clip.status == "pending")).scalars().all()
    assert len(sampled) == 2 and len(set(sampled)) == 1


def test_deny_after_sampling_withdraws_from_every_queue_and_tells_the_holder(ws: Workspace) -> None:
    for _ in range(3):
        f.ingest_speech(ws, "play shake it off", account_id="later-no")
    f.ingest_speech(ws, "play shake it off", account_id="other")
    f.allow(ws, "later-no", "other")
    assert _sample(ws) == 4
    assert {r.outcome for r in ws.process_pending()} == {"general"}
    reviewer = f.user(ws, "rev1")
    with ws.transaction() as s:
        a = lease_next(s, actor=reviewer)
        assert a is not None
        held = a.id
        held_clip = a.clip_id
    with ws.sessions() as s:
        held_account = s.get(Clip, held_clip).account_id  # type: ignore[union-attr]
    with ws.sessions() as s:
        from earmark.models import Account

        account_name = s.get(Account, held_account).external_id  # type: ignore[union-attr]
    with ws.transaction() as s:
        result = set_consent(s, actor=Actor.cli(), account_id=account_name, human_review=Consent.deny)
    assert result.withdrawn == (3 if account_name == "later-no" else 1)
    with ws.sessions() as s:
        states = s.execute(select(QueueItem.state)).scalars().all()
        assert states.count("withdrawn") == result.withdrawn
        assert s.get(Assignment, held).state == "withdrawn"  # type: ignore[union-attr]
    with pytest.raises(Withdrawn, match="withdrawn"), ws.transaction() as s:
        submit_annotation(s, actor=reviewer, assignment_id=held, transcript="x", intent="")


def test_unknown_account_is_an_error_unless_created(ws: Workspace) -> None:
    with pytest.raises(NotFound, match="unknown account"), ws.transaction() as s:
        set_consent(s, actor=Actor.cli(), account_id="nobody", human_review=Consent.allow)
    with ws.transaction() as s:
        assert (
            set_consent(s, actor=Actor.cli(), account_id="nobody", human_review=Consent.allow, create=True).withdrawn
            == 0
        )
