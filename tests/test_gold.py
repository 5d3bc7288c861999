"""The gold set: picked from trusted review answers, few per household, never sensitive; audited."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from earmark.cli import app
from earmark.consent import set_consent
from earmark.errors import InvalidInput, NotFound
from earmark.gold import add_gold, list_gold, pick_gold, remove_gold
from earmark.models import Account, AuditEvent, Clip, ClipProtection, GoldAnswer, QueueItem
from earmark.quality import ADJUDICATION, serve_gold
from earmark.queues import enqueue, lease_next
from earmark.review import submit_annotation
from earmark.types import Actor, Consent, Role
from earmark.workspace import Workspace
from tests import factories as f

TEXT = "play shake it off by taylor swift"


def _clips(ws: Workspace) -> list[Clip]:
    with ws.sessions() as s:
        return list(s.execute(select(Clip).order_by(Clip.id)).scalars())


def _consent(ws: Workspace) -> str:
    return ws.settings.consent_default


def test_pick_takes_agreed_answers_one_clip_per_household_and_audits_ids_only(ws: Workspace) -> None:
    ws.settings.review_passes = 2
    f.queue_clips(ws, 6, accounts=3)
    r1, r2 = f.user(ws, "r1"), f.user(ws, "r2")
    f.review_all(ws, r1, r2, transcript=lambda clip_id, user: f"{TEXT} number {clip_id}")
    with ws.transaction() as s:
        picks = pick_gold(s, actor=Actor.cli(), n=10, consent_default=_consent(ws), seed=1)
    clips = {c.id: c for c in _clips(ws)}
    assert len(picks) == 3 and {p.source for p in picks} == {"agreed"}
    assert len({clips[p.clip_id].account_id for p in picks}) == 3  # one per household
    with ws.sessions() as s:
        answers = {g.clip_id: g for g in s.execute(select(GoldAnswer)).scalars()}
        events = s.execute(select(AuditEvent).where(AuditEvent.action == "gold.add")).scalars().all()
    assert {cid: a.transcript for cid, a in answers.items()} == {p.clip_id: f"{TEXT} number {p.clip_id}" for p in picks}
    assert sorted(int(e.object_id) for e in events) == sorted(answers)  # type: ignore[arg-type]
    assert all(e.details["source"] == "agreed" and TEXT not in json.dumps(e.details) for e in events)
    with ws.transaction() as s:
        assert pick_gold(s, actor=Actor.cli(), n=10, consent_default=_consent(ws), seed=1) == []
        more = pick_gold(s, actor=Actor.cli(), n=10, consent_default=_consent(ws), per_account=2, seed=1)
    assert len(more) == 3 and not {p.clip_id for p in more} & set(answers)


def test_only_trusted_unflagged_calm_clips_of_consenting_accounts_become_gold(ws: Workspace) -> None:
    ws.settings.review_passes = 2
    f.queue_clips(ws, 5, accounts=5)
    r1, r2, r3, senior = f.user(ws, "r1"), f.user(ws, "r2"), f.user(ws, "r3"), f.user(ws, "s1", Role.senior)
    flagged, first, disputed, sensitive, withdrawn = (c.id for c in _clips(ws))
    with ws.transaction() as s:
        s.get(ClipProtection, sensitive).sensitivity = 0.6  # type: ignore[union-attr]
        enqueue(s, clip=s.get(Clip, flagged), queue="general")  # type: ignore[arg-type]  # a third pass
    with ws.transaction() as s:  # r1 gets the oldest clip first and flags it; two others label it
        a = lease_next(s, actor=r1)
        assert a is not None and a.clip_id == flagged
        submit_annotation(s, actor=r1, assignment_id=a.id, transcript="", intent="", flag="unintelligible")
    f.review_all(
        ws,
        r1,
        r2,
        r3,
        transcript=lambda clip_id, user: "play bake it off" if (clip_id, user) == (disputed, r2) else TEXT,
    )
    f.review_all(ws, senior, queue=ADJUDICATION, transcript=lambda clip_id, user: f"{TEXT} now")
    with ws.transaction() as s:
        account = s.execute(select(Account.external_id).join(Clip).where(Clip.id == withdrawn)).scalar_one()
        set_consent(s, actor=Actor.cli(), account_id=account, human_review=Consent.deny)
    with ws.sessions() as s:
        assert s.get(Clip, flagged).status == "reviewed"  # type: ignore[union-attr]
    with ws.transaction() as s:
        picks = pick_gold(s, actor=Actor.cli(), n=10, consent_default=_consent(ws), seed=0)
    assert {(p.clip_id, p.source) for p in picks} == {(first, "agreed"), (disputed, "adjudicated")}
    with ws.sessions() as s:
        assert s.get(GoldAnswer, disputed).transcript == f"{TEXT} now"  # type: ignore[union-attr]
    for clip_id in (sensitive, withdrawn, flagged):
        with pytest.raises(InvalidInput, match="cannot be gold"), ws.transaction() as s:
            add_gold(s, actor=Actor.cli(), clip_id=clip_id, consent_default=_consent(ws))
    with pytest.raises(InvalidInput, match="gold already"), ws.transaction() as s:
        add_gold(s, actor=Actor.cli(), clip_id=first, consent_default=_consent(ws))
    with pytest.raises(NotFound), ws.transaction() as s:
        add_gold(s, actor=Actor.cli(), clip_id=999_999, consent_default=_consent(ws))


def test_a_single_pass_answer_is_not_trusted_as_gold(ws: Workspace) -> None:
    f.queue_clips(ws, 2)  # one pass per clip (the default)
    f.review_all(ws, f.user(ws, "r1"))
    with ws.transaction() as s:
        assert pick_gold(s, actor=Actor.cli(), n=5, consent_default=_consent(ws), seed=0) == []


def test_remove_withdraws_the_waiting_gold_item_and_list_counts_answers(ws: Workspace) -> None:
    ws.settings.review_passes = 2
    f.queue_clips(ws, 2, accounts=2)
    r1, r2, r3, r4 = (f.user(ws, f"r{i}") for i in range(1, 5))
    f.review_all(ws, r1, r2)
    with ws.transaction() as s:
        picks = pick_gold(s, actor=Actor.cli(), n=2, consent_default=_consent(ws), seed=0)
    assert len(picks) == 2
    for reviewer, transcript in ((r3, TEXT), (r4, "stop the music")):
        with ws.transaction() as s:
            item = serve_gold(s, user=reviewer)
            assert item is not None
            a = lease_next(s, actor=reviewer, queue="gold", only_item=item.id)
            assert a is not None
            submit_annotation(
                s,
                actor=reviewer,
                assignment_id=a.id,
                transcript=transcript,
                intent="PlayMusic",
                probation_extra_passes=0,
            )
    with ws.transaction() as s:
        waiting = serve_gold(s, user=f.user(ws, "r5"))
        assert waiting is not None
    with ws.sessions() as s:
        rows = {r.clip_id: r for r in list_gold(s)}
    assert sum(r.answered for r in rows.values()) == 2 and sum(r.correct for r in rows.values()) == 1
    assert rows[waiting.clip_id].waiting
    with ws.transaction() as s:
        assert remove_gold(s, actor=Actor.cli(), clip_id=waiting.clip_id) == 1
    with ws.sessions() as s:
        assert s.get(GoldAnswer, waiting.clip_id) is None
        assert s.get(QueueItem, waiting.id).state == "withdrawn"  # type: ignore[union-attr]
        assert [r.clip_id for r in list_gold(s)] == [c for c in rows if c != waiting.clip_id]
        event = s.execute(select(AuditEvent).where(AuditEvent.action == "gold.remove")).scalar_one()
    assert event.details == {"withdrawn_items": 1}
    with pytest.raises(NotFound), ws.transaction() as s:
        remove_gold(s, actor=Actor.cli(), clip_id=waiting.clip_id)


def test_gold_commands(sqlite_ws: Workspace) -> None:
    ws = sqlite_ws
    ws.settings.review_passes = 2
    f.queue_clips(ws, 2, accounts=2)
    f.review_all(ws, f.user(ws, "r1"), f.user(ws, "r2"))
    home = str(ws.settings.home)
    runner = CliRunner()
    picked = runner.invoke(app, ["--home", home, "gold", "pick", "5", "--seed", "3", "--json"])
    assert picked.exit_code == 0, picked.output
    clips = [p["clip"] for p in json.loads(picked.stdout)]
    assert len(clips) == 2
    listed = runner.invoke(app, ["--home", home, "gold", "list", "--json"])
    assert [r["clip"] for r in json.loads(listed.stdout)] == sorted(clips)
    again = runner.invoke(app, ["--home", home, "gold", "add", str(clips[0])])
    assert again.exit_code == 1 and "gold already" in again.output
    removed = runner.invoke(app, ["--home", home, "gold", "remove", str(clips[0])])
    assert removed.exit_code == 0 and f"clip {clips[0]} left the gold set" in removed.output
    added = runner.invoke(app, ["--home", home, "gold", "add", str(clips[0])])
    assert added.exit_code == 0 and "gold (agreed)" in added.output
    table = runner.invoke(app, ["--home", home, "gold", "list"])
    assert "2 gold clip(s)" in table.output


def test_an_account_whose_consent_rests_on_the_default_is_out_when_the_default_is_deny(ws: Workspace) -> None:
    ws.settings.review_passes = 2
    f.queue_clips(ws, 2, accounts=2)
    f.review_all(ws, f.user(ws, "r1"), f.user(ws, "r2"))
    unanswered, answered = _clips(ws)
    with ws.transaction() as s:  # this household never answered; the program's default decides
        s.get(Account, unanswered.account_id).human_review = None  # type: ignore[union-attr]
    with ws.transaction() as s:
        picks = pick_gold(s, actor=Actor.cli(), n=5, consent_default=Consent.deny, seed=0)
    assert [p.clip_id for p in picks] == [answered.id]
    with ws.transaction() as s:
        picks = pick_gold(s, actor=Actor.cli(), n=5, consent_default=Consent.allow, seed=0)
    assert [p.clip_id for p in picks] == [unanswered.id]


@f.postgres_only
def test_a_withdrawal_during_a_pick_keeps_the_clip_out_of_the_gold_set(ws: Workspace) -> None:
    """The pick read the eligible clips, then a withdrawal committed: the clip is re-checked under
    the account's lock and stays out; the other clip is picked."""
    ws.settings.review_passes = 2
    f.queue_clips(ws, 2, accounts=2)
    f.review_all(ws, f.user(ws, "r1"), f.user(ws, "r2"))
    with ws.sessions() as s:
        gone = s.execute(select(Clip.id).join(Account).where(Account.external_id == "acct-q0")).scalar_one()
    withdrawal = f.Racer(lambda: ws.set_consent(actor=Actor.cli(), account_id="acct-q0", human_review=Consent.deny))
    with f.at_statement(ws, withdrawal, "FOR SHARE"), ws.transaction() as s:
        picks = pick_gold(s, actor=Actor.cli(), n=5, consent_default=_consent(ws), seed=0)
    assert withdrawal.error is None and not withdrawal.is_alive()
    assert gone not in [p.clip_id for p in picks] and len(picks) == 1
    with ws.sessions() as s:
        assert s.get(GoldAnswer, gone) is None
        assert s.get(Clip, gone).status == "withdrawn"  # type: ignore[union-attr]


@f.postgres_only
def test_a_withdrawal_during_a_pick_of_several_clips_waits_instead_of_deadlocking(ws: Workspace) -> None:
    """The pick audited its first clip (holding the audit chain's head) and then locked the next
    clip's account, against the lock order; with a withdrawal of that account in between, the
    database aborted the withdrawal as a deadlock (seen in review) or the pick came back short.
    Now every lock is taken before the first event: the withdrawal waits, then withdraws."""
    ws.settings.review_passes = 2
    f.queue_clips(ws, 2, accounts=2)
    f.review_all(ws, f.user(ws, "r1"), f.user(ws, "r2"))
    with ws.sessions() as s:
        second = max(c.id for c in _clips(ws))
        account = s.execute(select(Account.external_id).join(Clip).where(Clip.id == second)).scalar_one()
    withdrawal = f.Racer(lambda: ws.set_consent(actor=Actor.cli(), account_id=account, human_review=Consent.deny))
    with f.at_the_audit_head(ws, withdrawal), ws.transaction() as s:
        picks = pick_gold(s, actor=Actor.cli(), n=2, consent_default=_consent(ws), seed=0)  # lower id first
    withdrawal.join()
    assert withdrawal.error is None, withdrawal.error
    assert len(picks) == 2
    with ws.sessions() as s:
        assert s.get(Clip, second).status == "withdrawn"  # type: ignore[union-attr]
        assert serve_gold(s, user=f.user(ws, "r3")).clip_id != second  # type: ignore[union-attr]


@f.postgres_only
def test_two_picks_at_once_keep_to_the_households_limit(ws: Workspace) -> None:
    """Each pick counted the household's gold clips before either had committed, so each added
    one of its clips: two gold clips where `per_account` allows one. Now the second pick waits
    for the first and counts its clip."""
    import random

    ws.settings.review_passes = 2
    f.queue_clips(ws, 2, accounts=1)
    f.review_all(ws, f.user(ws, "r1"), f.user(ws, "r2"))

    # Two seeds whose shuffles put different clips first, so the picks would choose different clips.
    def first(seed: int) -> int:
        order = [0, 1]
        random.Random(seed).shuffle(order)  # as pick_gold shuffles the eligible clips
        return order[0]

    seed_a = 0
    seed_b = next(seed for seed in range(1, 20) if first(seed) != first(seed_a))
    other = f.Racer(
        lambda: _in_tx(ws, lambda s: pick_gold(s, actor=Actor.cli(), n=1, consent_default=_consent(ws), seed=seed_b))
    )
    with f.racing(ws, other) as s:
        picks = pick_gold(s, actor=Actor.cli(), n=1, consent_default=_consent(ws), seed=seed_a)
    assert other.error is None, other.error
    assert len(picks) == 1 and other.result == []
    with ws.sessions() as s:
        assert [g.clip_id for g in s.execute(select(GoldAnswer)).scalars()] == [picks[0].clip_id]


@pytest.mark.parametrize("report", ["missed_pii", "sensitive"])
def test_a_gold_clip_reported_in_its_gold_pass_leaves_the_gold_set(ws: Workspace, report: str) -> None:
    """The gold answer was typed while personal data was audible (or the clip is distressing):
    the passes lost their text, but the gold answer kept it and the clip was served as gold again."""
    from earmark.review import flag_sensitive, report_missed_pii

    ws.settings.review_passes = 2
    f.queue_clips(ws, 1)
    f.review_all(ws, f.user(ws, "r1"), f.user(ws, "r2"), transcript=lambda c, u: "call five five five one two one two")
    with ws.transaction() as s:
        [pick] = pick_gold(s, actor=Actor.cli(), n=1, consent_default=_consent(ws), seed=0)
    r3 = f.user(ws, "r3")
    with ws.transaction() as s:
        item = serve_gold(s, user=r3)
        assert item is not None
        a = lease_next(s, actor=r3, queue="gold", only_item=item.id)
        assert a is not None
        if report == "missed_pii":
            report_missed_pii(s, actor=r3, assignment_id=a.id, start=0.1, end=0.6)
        else:
            flag_sensitive(s, actor=r3, assignment_id=a.id)
    ws.process_pending()  # a missed-PII clip is re-protected and queued again
    with ws.sessions() as s:
        assert s.get(GoldAnswer, pick.clip_id) is None
        action = "review.pii_missed" if report == "missed_pii" else "review.sensitive"
        event = s.execute(select(AuditEvent).where(AuditEvent.action == action)).scalar_one()
        assert event.details["gold_removed"] == 1
        assert list_gold(s) == []
    with ws.transaction() as s:
        assert serve_gold(s, user=f.user(ws, "r4")) is None


@f.postgres_only
def test_a_clip_removed_from_gold_while_it_is_served_is_not_served(ws: Workspace) -> None:
    """serve_gold re-checked the chosen clip under its lock, but not that it was still gold."""
    from earmark.quality import add_gold as add_known_answer

    f.queue_clips(ws, 1)
    [clip] = _clips(ws)
    with ws.transaction() as s:
        add_known_answer(s, actor=Actor.cli(), clip=s.get(Clip, clip.id), transcript=TEXT, intent=None)  # type: ignore[arg-type]
    remover = f.Racer(lambda: _in_tx(ws, lambda s: remove_gold(s, actor=Actor.cli(), clip_id=clip.id)))
    with f.at_statement(ws, remover, "FOR KEY SHARE"), ws.transaction() as s:
        served = serve_gold(s, user=f.user(ws, "r1"))
    remover.join()
    assert remover.error is None, remover.error
    assert served is None
    with ws.sessions() as s:
        assert s.execute(select(QueueItem).where(QueueItem.queue == "gold")).first() is None


def _in_tx(ws: Workspace, target):  # type: ignore[no-untyped-def]
    with ws.transaction() as s:
        return target(s)


def test_a_gold_clip_that_can_no_longer_be_served_is_listed_so_and_frees_its_households_place(
    ws: Workspace,
) -> None:
    from sqlalchemy import update

    ws.settings.review_passes = 2
    f.queue_clips(ws, 2, accounts=1)
    f.review_all(ws, f.user(ws, "r1"), f.user(ws, "r2"))
    with ws.transaction() as s:
        [first] = pick_gold(s, actor=Actor.cli(), n=5, consent_default=_consent(ws), seed=0)  # one per household
    with ws.transaction() as s:  # its protected audio reached its retention limit
        s.execute(update(Clip).where(Clip.id == first.clip_id).values(protected_blob_key=None))
    with ws.sessions() as s:
        assert [(g.clip_id, g.servable) for g in list_gold(s)] == [(first.clip_id, False)]
    with ws.transaction() as s:
        [second] = pick_gold(s, actor=Actor.cli(), n=5, consent_default=_consent(ws), seed=0)
    assert second.clip_id != first.clip_id
    with ws.sessions() as s:
        assert {g.clip_id: g.servable for g in list_gold(s)} == {first.clip_id: False, second.clip_id: True}
