from __future__ import annotations

import pytest
from sqlalchemy import select, update

from earmark import audit
from earmark.consent import set_consent
from earmark.erasure import erase_account
from earmark.errors import InvalidInput, NotFound, Withdrawn
from earmark.escalation import lease_safety, record_outcome
from earmark.help import answer_help, ask_help
from earmark.models import Account, Assignment, Clip, HelpRequest, QueueItem
from earmark.quality import add_gold, serve_gold
from earmark.queues import lease_next
from earmark.review import flag_sensitive, report_missed_pii, skip_assignment, submit_annotation
from earmark.sampling import draw_sample
from earmark.sampling_policy import SamplingPolicy
from earmark.types import Actor, Consent, Role
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


def test_a_default_that_turns_to_deny_keeps_undecided_accounts_clips_from_reviewers(ws: Workspace) -> None:
    """consent_default went from allow to deny, and the clips of accounts that never answered,
    queued under the old default, could still be leased. Now a lease reads the default in force:
    they wait (nothing is deleted, as a setting read by one command with another environment must
    not destroy data), and come back if the default does."""
    from earmark.queues import count_leasable

    ws.settings.consent_default = "allow"
    undecided = f.ingest_speech(ws, "play some jazz", account_id="never-said")
    f.allow(ws, "said-yes")
    decided = f.ingest_speech(ws, "play some jazz", account_id="said-yes")
    with ws.transaction() as s:
        draw_sample(
            s,
            actor=Actor.cli(),
            policy=SamplingPolicy.uniform(1.0, cap=100, period_days=30),
            key=b"k" * 8,
            default_consent=Consent.allow,
        )
    ws.process_pending()
    r1, r2 = f.user(ws, "r1"), f.user(ws, "r2")
    with ws.transaction() as s:
        assert count_leasable(s, actor=r1, queue="general", consent_default="deny") == 1
        a = lease_next(s, actor=r1, consent_default="deny")
        assert a is not None and s.get(Clip, a.clip_id).external_id == decided  # type: ignore[union-attr]
    with ws.transaction() as s:  # the other clip is held by r1; the undecided one is not offered
        assert lease_next(s, actor=r2, consent_default="deny") is None
        assert count_leasable(s, actor=r2, queue="general", consent_default="deny") == 0
    with ws.sessions() as s:
        held = s.execute(select(Clip.status).where(Clip.external_id == undecided)).scalar_one()
    assert held == "queued"  # waiting, not withdrawn
    with ws.transaction() as s:  # the default back to allow: offered again
        a = lease_next(s, actor=f.user(ws, "r3"), consent_default="allow")
        assert a is not None and s.get(Clip, a.clip_id).external_id == undecided  # type: ignore[union-attr]


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
    with pytest.raises(InvalidInput, match="not an account id"), ws.transaction() as s:
        set_consent(s, actor=Actor.cli(), account_id=" no body", human_review=Consent.allow, create=True)


def _reviewed_with_help(ws: Workspace) -> tuple[str, list[str]]:
    """Two clips of one account reviewed, one with a help question and one made a gold clip."""
    from earmark.help import ask_help
    from earmark.quality import add_gold

    ids = f.queue_clips(ws, 2, text="call zebediah now")
    reviewer = f.user(ws, "rev-w")
    for i in range(2):
        with ws.transaction() as s:
            a = lease_next(s, actor=reviewer)
            assert a is not None
            if i == 0:
                ask_help(s, actor=reviewer, assignment_id=a.id, start=0.1, end=0.5, question="zebediah or zebedee?")
            submit_annotation(s, actor=reviewer, assignment_id=a.id, transcript="call zebediah now", intent="MakeCall")
    with ws.transaction() as s:
        clip = s.execute(select(Clip).where(Clip.external_id == ids[1])).scalar_one()
        add_gold(s, actor=Actor.cli(), clip=clip, transcript="call zebediah now", intent="MakeCall")
    return "acct-q0", ids


def test_withdrawal_after_review_deletes_what_review_made(ws: Workspace) -> None:
    from earmark.models import Annotation, ClipProtection, GoldAnswer, HelpRequest

    account, ids = _reviewed_with_help(ws)
    with ws.sessions() as s:
        keys = [c.protected_blob_key for c in s.execute(select(Clip).where(Clip.external_id.in_(ids))).scalars()]
    assert all(keys) and all(ws.blobs.exists(k) for k in keys)  # type: ignore[arg-type]
    result = ws.set_consent(actor=Actor.cli(), account_id=account, human_review=Consent.deny)
    assert (result.derivatives_deleted, result.annotations_deleted) == (2, 2)
    assert not any(ws.blobs.exists(k) for k in keys)  # type: ignore[arg-type]
    with ws.sessions() as s:
        clips = list(s.execute(select(Clip).where(Clip.external_id.in_(ids))).scalars())
        assert {c.status for c in clips} == {"withdrawn"}
        assert all(c.redacted_text is None and c.derivative_purged_at for c in clips)
        assert all(c.blob_key for c in clips)  # the assistant's own recording is not review data
        for model in (Annotation, ClipProtection, HelpRequest, GoldAnswer):
            assert s.execute(select(model)).first() is None, model.__name__


def test_keeping_reviewed_data_is_a_setting(ws: Workspace) -> None:
    from earmark.models import Annotation, HelpRequest

    account, ids = _reviewed_with_help(ws)
    ws.settings.keep_reviewed_after_withdrawal = True
    result = ws.set_consent(actor=Actor.cli(), account_id=account, human_review=Consent.deny)
    assert (result.derivatives_deleted, result.annotations_deleted) == (2, 0)
    with ws.sessions() as s:
        assert len(s.execute(select(Annotation)).all()) == 2
        assert {c.status for c in s.execute(select(Clip).where(Clip.external_id.in_(ids))).scalars()} == {"reviewed"}
        assert s.execute(select(HelpRequest)).first() is None  # questions are not training data


@f.postgres_only
def test_withdrawal_waits_for_a_lease_in_flight_instead_of_deadlocking(ws: Workspace) -> None:
    """A lease has claimed one of the account's items and is about to audit. The withdrawal must
    take every item before the audit chain head; it took the head with the first item and then
    waited on the claimed one, while the lease waited on the head."""
    f.queue_clips(ws, 2, accounts=1)
    with ws.sessions() as s:
        items = s.execute(select(QueueItem.id).order_by(QueueItem.id)).scalars().all()
    other = _withdrawal(ws, "acct-q0")
    with ws.transaction() as s:  # the lease in flight, as lease_next runs it: claim, then audit
        s.execute(update(QueueItem).where(QueueItem.id == items[-1]).values(state="leased"))
        other.start()
        f.wait_for_lock_wait(ws, [other])
        audit.record(s, actor=Actor.system(), action="review.expire", object_type="queue_item", object_id=items[-1])
    other.join()
    assert other.error is None, other.error
    with ws.sessions() as s:
        states = s.execute(select(QueueItem.state)).scalars().all()
        statuses = s.execute(select(Clip.status)).scalars().all()
    assert states == ["withdrawn", "withdrawn"] and statuses == ["withdrawn", "withdrawn"]


@f.postgres_only
@pytest.mark.parametrize("by", ["consent", "erasure"])
@pytest.mark.parametrize("change", ["submit", "skip", "report_pii", "sensitive", "safety_outcome"])
def test_withdrawal_racing_a_reviewers_change_does_not_deadlock(ws: Workspace, change: str, by: str) -> None:
    """The reviewer's change has taken its rows and is about to append its audit event when the
    customer withdraws consent: the withdrawal waits and then takes the clip out. The pass locked
    its assignment and item before the clip, the withdrawal the clip before the item: deadlock."""
    f.queue_clips(ws, 1, accounts=1)
    reviewer = f.user(ws, "rev1")
    with ws.transaction() as s:
        a = lease_next(s, actor=reviewer)
        assert a is not None
    if change == "safety_outcome":  # the safety team's pass on a flagged clip
        with ws.transaction() as s:
            flag_sensitive(s, actor=reviewer, assignment_id=a.id)
        reviewer = f.user(ws, "safe1", Role.safety)
        with ws.transaction() as s:
            lease = lease_safety(s, actor=reviewer, max_clips=10, window_minutes=60, lease_seconds=600)
            assert lease.assignment is not None
            a = lease.assignment
    other = _withdrawal(ws, "acct-q0", erase=by == "erasure")
    with f.at_the_audit_head(ws, other), ws.transaction() as s:
        if change == "submit":
            submit_annotation(s, actor=reviewer, assignment_id=a.id, transcript="play it", intent="")
        elif change == "skip":
            skip_assignment(s, actor=reviewer, assignment_id=a.id, reason="too_hard")
        elif change == "report_pii":
            report_missed_pii(s, actor=reviewer, assignment_id=a.id, start=0.0, end=0.5)
        elif change == "sensitive":
            flag_sensitive(s, actor=reviewer, assignment_id=a.id)
        else:
            record_outcome(s, actor=reviewer, assignment_id=a.id, outcome="handled", note="called back")
    other.join()
    assert other.error is None, other.error
    with ws.sessions() as s:
        states = s.execute(select(QueueItem.state)).scalars().all()
        [status] = s.execute(select(Clip.status)).scalars().all()
    assert "queued" not in states and "leased" not in states, states
    assert status == ("erased" if by == "erasure" else "withdrawn")


def _withdrawal(ws: Workspace, account: str, *, erase: bool = False) -> f.Racer:
    """The customer's "no" (or erasure) as the other transaction of a race."""

    def withdraw() -> None:
        with ws.transaction() as s:
            if erase:
                erase_account(s, actor=Actor.cli(), account_id=account, secret=ws.secret)
            else:
                set_consent(s, actor=Actor.cli(), account_id=account, human_review=Consent.deny)

    return f.Racer(withdraw)


@f.postgres_only
def test_a_withdrawal_during_a_sampling_draw_is_not_undone_by_it(ws: Workspace) -> None:
    """The draw read consent before the withdrawal committed. The withdrawal saw the clip as not
    yet sampled and left it; the draw then marked it pending, and the pipeline would have queued it."""
    f.ingest_speech(ws, "play music", account_id="racer")
    f.allow(ws, "racer")
    sampler = f.Racer(lambda: _sample(ws))
    with f.racing(ws, sampler) as s:
        set_consent(s, actor=Actor.cli(), account_id="racer", human_review=Consent.deny)
    assert sampler.result == 0
    with ws.sessions() as s:
        assert s.execute(select(Clip.status)).scalars().all() == ["stored"]


@f.postgres_only
def test_a_withdrawal_during_serving_a_gold_clip_is_not_undone(ws: Workspace) -> None:
    """The gold clip was chosen before the withdrawal committed, and its fresh queue item came
    after the withdrawal looked for open items: the reviewer got a withdrawn customer's clip."""
    [cid] = f.queue_clips(ws, 1)
    with ws.transaction() as s:
        clip = s.execute(select(Clip).where(Clip.external_id == cid)).scalar_one()
        add_gold(s, actor=Actor.cli(), clip=clip, transcript="play shake it off by taylor swift", intent=None)
    reviewer = f.user(ws, "rev1")

    def serve() -> object:
        with ws.transaction() as s:
            return serve_gold(s, user=reviewer)

    server = f.Racer(serve)
    with f.racing(ws, server) as s:
        set_consent(s, actor=Actor.cli(), account_id="acct-q0", human_review=Consent.deny)
    assert server.error is None and server.result is None
    with ws.sessions() as s:
        assert s.execute(select(QueueItem.state).where(QueueItem.queue == "gold")).scalars().all() == []


@f.postgres_only
def test_a_withdrawal_racing_a_seniors_answer_does_not_deadlock(ws: Workspace) -> None:
    """The answer holds its help request and is about to audit; the withdrawal closes open help
    requests. It took the audit head first, with the first withdrawn item, then waited: deadlock."""
    f.queue_clips(ws, 1)
    reviewer, senior = f.user(ws, "rev1"), f.user(ws, "sen1", Role.senior)
    with ws.transaction() as s:
        a = lease_next(s, actor=reviewer)
        assert a is not None
        req = ask_help(s, actor=reviewer, assignment_id=a.id, start=0.0, end=0.5, question="which word?")
    other = _withdrawal(ws, "acct-q0")
    with f.at_the_audit_head(ws, other), ws.transaction() as s:
        answer_help(s, actor=senior, help_id=req.id, answer="taylor")
    other.join()
    assert other.error is None, other.error
    with ws.sessions() as s:
        assert s.execute(select(QueueItem.state)).scalars().all() == ["withdrawn"]
        assert s.get(HelpRequest, req.id) is None  # help text goes with the withdrawal


@f.postgres_only
def test_consent_set_while_the_account_is_erased_is_refused_not_written_on_the_tombstone(ws: Workspace) -> None:
    """The account was read unlocked and then locked without a re-read: an erasure committed in
    between got `training_use = allow` written onto its tombstone, and the caller was told allow."""
    from earmark.erasure import erase_account
    from earmark.errors import NotFound

    f.queue_clips(ws, 1)

    def erase():  # type: ignore[no-untyped-def]
        with ws.transaction() as s:
            return erase_account(s, actor=Actor.cli(), account_id="acct-q0", secret=ws.secret)

    eraser = f.Racer(erase)
    with (
        pytest.raises(NotFound, match="erased"),
        f.at_statement(ws, eraser, "FOR NO KEY UPDATE"),
        ws.transaction() as s,
    ):
        set_consent(s, actor=Actor.cli(), account_id="acct-q0", human_review=Consent.allow, training_use=Consent.allow)
    eraser.join()
    assert eraser.error is None, eraser.error
    with ws.sessions() as s:
        account = s.execute(select(Account)).scalar_one()
    assert account.erased_at is not None and account.training_use != Consent.allow
