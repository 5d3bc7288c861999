"""Erasure removes the account's data for real, and the proof scans every file of the workspace."""

from __future__ import annotations

import io
import threading

import pytest
import soundfile as sf
from sqlalchemy import func, select

from earmark import audit
from earmark.erasure import erase_account
from earmark.errors import NotFound, Withdrawn
from earmark.export import prune_exports, run_export
from earmark.help import ask_help
from earmark.models import Account, AccountKey, Annotation, AuditEvent, Clip, ClipProtection, HelpRequest
from earmark.quality import add_gold
from earmark.queues import lease_next
from earmark.review import assignment_audio, submit_annotation
from earmark.types import Actor
from earmark.workspace import Workspace
from tests import factories as f

VICTIM = "acct-victim-7731"
SECRET_WORDS = "call zebediah on five five five one two three four"


def _setup(ws: Workspace) -> tuple[list[str], str]:
    ids = [f.ingest_speech(ws, SECRET_WORDS, account_id=VICTIM, device_id="kitchen-xq9") for _ in range(2)]
    other = f.ingest_speech(ws, "play shake it off by taylor swift", account_id="acct-other")
    f.allow(ws, VICTIM, "acct-other")
    f.sample_all(ws)
    ws.process_pending()
    return ids, other


NBEST = {"text": "call jane", "confidence": 0.5, "alternatives": ["call jane doe"]}


def test_erasure_withdraws_shreds_and_deletes(ws: Workspace) -> None:
    ids, other = _setup(ws)
    reviewer = f.user(ws, "rev1")
    with ws.transaction() as s:
        held = lease_next(s, actor=reviewer)
        assert held is not None
    result = ws.erase(actor=Actor.cli(), account_id=VICTIM)
    assert not result.already_erased and result.clips == 2 and len(result.blob_keys) == 4
    with ws.sessions() as s:
        clips = s.execute(select(Clip).where(Clip.external_id.in_(ids))).scalars().all()
        assert {c.status for c in clips} == {"erased"}
        assert all(c.device_asr_text is None and c.blob_key is None and c.redacted_text is None for c in clips)
        assert (
            s.execute(
                select(func.count())
                .select_from(ClipProtection)
                .where(ClipProtection.clip_id.in_([c.id for c in clips]))
            ).scalar_one()
            == 0
        )
        assert s.execute(select(func.count()).select_from(AccountKey)).scalar_one() == 1  # only acct-other's
        assert audit.verify_chain(s).ok
    for key in result.blob_keys:
        assert not ws.blobs.exists(key)
    other_clip = _clip(ws, other)
    assert other_clip.blob_key and ws.blobs.exists(other_clip.blob_key)
    if _clip_by_id(ws, held.clip_id).external_id in ids:
        with pytest.raises(Withdrawn, match="erasure"), ws.transaction() as s:
            submit_annotation(s, actor=reviewer, assignment_id=held.id, transcript="x", intent="")


def test_erasing_twice_is_a_no_op_and_unknown_accounts_are_named(ws: Workspace) -> None:
    _setup(ws)
    assert not ws.erase(actor=Actor.cli(), account_id=VICTIM).already_erased
    again = ws.erase(actor=Actor.cli(), account_id=VICTIM)
    assert again.already_erased and again.blob_keys == []
    with pytest.raises(NotFound, match="unknown account 'nobody'"), ws.transaction() as s:
        erase_account(s, actor=Actor.cli(), account_id="nobody", secret=ws.secret)


def _clip(ws: Workspace, external_id: str) -> Clip:
    with ws.sessions() as s:
        return s.execute(select(Clip).where(Clip.external_id == external_id)).scalar_one()


def _clip_by_id(ws: Workspace, clip_id: int) -> Clip:
    with ws.sessions() as s:
        clip = s.get(Clip, clip_id)
        assert clip is not None
        return clip


def test_proof_nothing_of_the_account_is_left_anywhere(sqlite_ws: Workspace) -> None:
    """Scan every byte of the workspace (database, WAL, blobs, logs) after erasure."""
    ws = sqlite_ws
    ids, _ = _setup(ws)
    reviewer = f.user(ws, "rev1")
    # A reviewer annotates the victim's clips with their own words.
    for _ in range(3):
        with ws.transaction() as s:
            a = lease_next(s, actor=reviewer)
            if a is None:
                break
            clip = s.get(Clip, a.clip_id)
            assert clip is not None
            # Placeholders must stay; a reviewer's own words about the victim's clip are kept too.
            note = " zebediah" if clip.external_id in ids else ""
            if note:  # and asks a senior about the name, and the clip becomes a gold clip
                ask_help(s, actor=reviewer, assignment_id=a.id, start=0.1, end=0.6, question="zebediah or zebedee?")
                add_gold(s, actor=Actor.cli(), clip=clip, transcript="call zebediah", intent="MakeCall")
            submit_annotation(
                s,
                actor=reviewer,
                assignment_id=a.id,
                transcript=f"{clip.redacted_text}{note}",
                intent="MakeCall",
            )
    with ws.sessions() as s:
        assert s.execute(select(func.count()).select_from(Annotation)).scalar_one() >= 1
    # Training data went out, inside the workspace folder, in an ASR and an NLU format.
    exports = ws.settings.home / "exports"
    assert run_export(ws, actor=Actor.cli(), fmt="lhotse", out=exports / "asr").items >= 1
    assert run_export(ws, actor=Actor.cli(), fmt="rasa", out=exports / "nlu").items >= 1
    audio = sf.read(io.BytesIO(f.speech_bytes(SECRET_WORDS)), dtype="int16")[0].tobytes()
    needles = [b"zebediah", VICTIM.encode(), b"kitchen-xq9", audio[8000:8064]]
    before = _scan(ws)
    assert b"zebediah" in before and VICTIM.encode() in before  # the scan does see them beforehand
    assert b"zebediah" in b"".join(p.read_bytes() for p in (exports / "nlu").rglob("nlu.yml"))
    ws.erase(actor=Actor.cli(), account_id=VICTIM)
    assert prune_exports(ws, actor=Actor.cli()).exports == 2
    after = _scan(ws)
    for needle in needles:
        assert needle not in after, needle[:20]
    with ws.sessions() as s:
        assert audit.verify_chain(s).ok


def _scan(ws: Workspace) -> bytes:
    chunks = []
    for path in sorted(ws.settings.home.rglob("*")):
        if path.is_file():
            chunks.append(path.read_bytes())
    return b"\n".join(chunks)


def test_erasure_nulls_every_text_column_of_the_clips(ws: Workspace) -> None:
    from earmark.models import CLIP_TEXT, Clip
    from earmark.types import Actor

    # Every free-text or JSON column of `clips` is either customer text (in CLIP_TEXT) or known
    # not to be: a new column must be placed on one side.
    not_text = {"extra_redactions"}  # sample spans of the derivative, no words
    text_like = {c.name for c in Clip.__table__.columns if type(c.type).__name__ in ("Text", "JSON")}
    assert text_like == set(CLIP_TEXT) | not_text
    [cid] = f.ingest(
        ws,
        1,
        account_id="acct-x",
        device_asr=NBEST,
    )
    ws.erase(actor=Actor.cli(), account_id="acct-x")
    with ws.sessions() as s:
        clip = s.execute(select(Clip).where(Clip.external_id == cid)).scalar_one()
        assert {name: getattr(clip, name) for name in CLIP_TEXT} == CLIP_TEXT


def test_an_erased_accounts_tombstone_id_names_nobody(ws: Workspace) -> None:
    from earmark.consent import set_consent
    from earmark.errors import InvalidInput
    from earmark.ingest import erased_id
    from earmark.transparency import build_report
    from earmark.types import Actor, Consent

    f.ingest(ws, 1, account_id="acct-x")
    ws.erase(actor=Actor.cli(), account_id="acct-x")
    tomb = erased_id(ws.secret, "acct-x")
    with ws.transaction() as s:
        assert build_report(s, actor=Actor.cli(), account_id=tomb, secret=ws.secret)["known"] is False
        assert build_report(s, actor=Actor.cli(), account_id="acct-x", secret=ws.secret)["erased_on"]
    from earmark.ingest import get_or_create_account
    from earmark.manifest import parse_meta

    meta = {"account_id": tomb, "device_id": "d1", "recorded_at": "2026-11-25T18:00:00Z", "locale": "en-US"}
    with pytest.raises(InvalidInput, match="erased"):
        parse_meta(meta)  # a new clip would have joined the erased account
    with pytest.raises(InvalidInput, match="erased"), ws.transaction() as s:
        get_or_create_account(s, tomb)
    with pytest.raises(InvalidInput, match="erased"), ws.transaction() as s:
        set_consent(s, actor=Actor.cli(), account_id=tomb, human_review=Consent.allow)


@f.postgres_only
def test_a_clip_arriving_during_an_erasure_starts_a_new_account(ws: Workspace) -> None:
    """It joined the account being erased (found by its id before the erasure committed): a clip
    with its transcript under an account whose erasure reports done and cannot be run again."""
    f.ingest_speech(ws, SECRET_WORDS, account_id=VICTIM)
    late = f.Racer(lambda: f.ingest_speech(ws, SECRET_WORDS, account_id=VICTIM))
    with f.racing(ws, late) as s:
        erase_account(s, actor=Actor.cli(), account_id=VICTIM, secret=ws.secret)
    with ws.sessions() as s:
        clip = s.execute(select(Clip).where(Clip.external_id == late.result)).scalar_one()
        account = s.get(Account, clip.account_id)
        erased = s.execute(select(Clip.status).where(Clip.account_id != clip.account_id)).scalars().all()
    assert account is not None and account.external_id == VICTIM and account.erased_at is None
    assert erased == ["erased"]
    with ws.transaction() as s:  # the new account can be erased in turn
        assert erase_account(s, actor=Actor.cli(), account_id=VICTIM, secret=ws.secret).clips == 1


def test_an_account_that_records_again_after_erasure_can_be_erased_again(ws: Workspace) -> None:
    f.ingest(ws, 1, account_id="acct-again")
    first = ws.erase(actor=Actor.cli(), account_id="acct-again")
    f.ingest(ws, 2, account_id="acct-again")  # the customer kept using the device
    second = ws.erase(actor=Actor.cli(), account_id="acct-again")
    assert (first.clips, second.clips, second.already_erased) == (1, 2, False)
    assert ws.erase(actor=Actor.cli(), account_id="acct-again").already_erased
    with ws.sessions() as s:
        assert s.execute(select(Clip.status)).scalars().all() == ["erased"] * 3
        assert s.execute(select(func.count()).select_from(Account).where(Account.erased_at.is_(None))).scalar() == 0


def test_resending_a_clip_of_an_erased_account_says_it_was_erased(ws: Workspace) -> None:
    """It said "already exists with different audio or account", which sent the caller looking
    for a clash that was not there."""
    from earmark.errors import Conflict

    m = f.meta(clip_id="c-gone", account_id="acct-gone")
    audio = f.audio_bytes()
    ws.ingest(actor=Actor.cli(), meta=m, audio=audio, via="test")
    ws.erase(actor=Actor.cli(), account_id="acct-gone")
    with pytest.raises(Conflict, match="clip_id c-gone was erased with account acct-gone") as exc:
        ws.ingest(actor=Actor.cli(), meta=m, audio=audio, via="test")
    assert "erased:" not in str(exc.value)  # not the tombstone id
    # Sent under another account, the clip id is only taken: nothing is said of whose it was.
    with pytest.raises(Conflict, match="already exists with different audio or account") as exc:
        ws.ingest(actor=Actor.cli(), meta=m.model_copy(update={"account_id": "acct-else"}), audio=audio, via="test")
    assert "erased" not in str(exc.value) and "acct-gone" not in str(exc.value)
    with ws.sessions() as s:
        assert s.execute(select(Clip.status)).scalars().all() == ["erased"]


@f.postgres_only
def test_no_audio_leaves_after_an_erasure_has_committed(ws: Workspace) -> None:
    """The listen was checked unlocked; its audit append waited for the erasure, and the audio
    went out after the customer's data was gone. Now the erasure waits for the listen, or the
    listen sees the erasure."""
    f.queue_clips(ws, 1)
    reviewer = f.user(ws, "r1")
    with ws.transaction() as s:
        a = lease_next(s, actor=reviewer)
        assert a is not None
    eraser = threading.Thread(target=ws.erase, kwargs={"actor": Actor.cli(), "account_id": "acct-q0"})
    with f.at_the_audit_head(ws, eraser), ws.transaction() as s:
        assignment_audio(s, user=reviewer, assignment_id=a.id, blobs=ws.blobs, keyring=ws.keyring)
    eraser.join()
    with ws.sessions() as s:
        log = s.execute(select(AuditEvent.action).order_by(AuditEvent.seq)).scalars().all()
    assert log.index("review.audio") < log.index("account.erase")


@f.postgres_only
def test_a_help_question_asked_during_an_erasure_does_not_outlive_it(ws: Workspace) -> None:
    """The question was inserted unlocked while the erasure deleted the clip's requests: it
    survived the erasure, open in the seniors' queue, question text and all."""
    f.queue_clips(ws, 1)
    reviewer = f.user(ws, "r1")
    with ws.transaction() as s:
        a = lease_next(s, actor=reviewer)
        assert a is not None

    def ask() -> None:
        with ws.transaction() as s:
            ask_help(s, actor=reviewer, assignment_id=a.id, start=0.0, end=0.5, question="is this a name")

    asker = f.Racer(ask)
    with f.racing(ws, asker) as s:
        erase_account(s, actor=Actor.cli(), account_id="acct-q0", secret=ws.secret)
    assert isinstance(asker.error, Withdrawn)  # told, nothing stored
    with ws.sessions() as s:
        assert s.execute(select(func.count()).select_from(HelpRequest)).scalar_one() == 0


@f.postgres_only
def test_two_erasures_of_one_account_at_once_erase_it_once(ws: Workspace) -> None:
    """The second waited for the first, then went on with the account as it had read it before:
    a second `account.erase` event and a report of clips erased that were already gone."""
    f.ingest(ws, 2, account_id=VICTIM)
    second = f.Racer(lambda: ws.erase(actor=Actor.cli(), account_id=VICTIM))
    with f.racing(ws, second) as s:
        first = erase_account(s, actor=Actor.cli(), account_id=VICTIM, secret=ws.secret)
    assert first.clips == 2 and second.result.already_erased
    with ws.sessions() as s:
        assert s.execute(select(func.count()).where(AuditEvent.action == "account.erase")).scalar_one() == 1


@f.postgres_only
def test_applying_an_answer_while_the_account_is_erased_waits_for_neither_and_fails_neither(ws: Workspace) -> None:
    """The asker read the answered request unlocked; the erasure deleted it and committed; the
    asker's update then matched no row: a StaleDataError (a 500 in the workbench). Now the request
    is locked when read: the erasure waits for the apply, then deletes the request."""
    from earmark.help import apply_answer

    reviewer, _senior, req = _help_request(ws, answered=True)
    eraser = f.Racer(lambda: ws.erase(actor=Actor.cli(), account_id="acct-q0"))
    with f.at_statement(ws, eraser, "UPDATE help_requests"), ws.transaction() as s:
        apply_answer(s, actor=reviewer, help_id=req.id)
    eraser.join()
    assert eraser.error is None and eraser.result.clips == 1
    with ws.sessions() as s:
        assert s.get(HelpRequest, req.id) is None
        actions = (
            s.execute(
                select(AuditEvent.action)
                .where(AuditEvent.action.in_(["help.apply", "account.erase"]))
                .order_by(AuditEvent.seq)
            )
            .scalars()
            .all()
        )
    assert actions == ["help.apply", "account.erase"]


def test_applying_an_answer_the_erasure_removed_is_not_found(ws: Workspace) -> None:
    from earmark.help import apply_answer

    reviewer, _senior, req = _help_request(ws, answered=True)
    ws.erase(actor=Actor.cli(), account_id="acct-q0")
    with pytest.raises(NotFound), ws.transaction() as s:
        apply_answer(s, actor=reviewer, help_id=req.id)


@f.postgres_only
def test_answering_a_request_the_erasure_just_removed_is_not_found(ws: Workspace) -> None:
    """Between the senior's first read and the locked re-read the erasure deleted the request:
    an AssertionError (a 500) before; now "no such help request"."""
    from earmark.help import answer_help

    _reviewer, senior, req = _help_request(ws, answered=False)
    eraser = f.Racer(lambda: ws.erase(actor=Actor.cli(), account_id="acct-q0"))
    with pytest.raises(NotFound), f.at_statement(ws, eraser, "FOR UPDATE"), ws.transaction() as s:
        answer_help(s, actor=senior, help_id=req.id, answer="taylor")
    eraser.join()
    assert eraser.error is None and eraser.result.clips == 1


def _help_request(ws: Workspace, *, answered: bool):  # type: ignore[no-untyped-def]
    """A reviewer's help question about the one clip of acct-q0, answered by a senior or not."""
    from earmark.help import answer_help
    from earmark.types import Role

    f.queue_clips(ws, 1)
    reviewer, senior = f.user(ws, "r1"), f.user(ws, "s1", Role.senior)
    with ws.transaction() as s:
        a = lease_next(s, actor=reviewer)
        assert a is not None
        req = ask_help(s, actor=reviewer, assignment_id=a.id, start=0.0, end=0.5, question="which word")
    if answered:
        with ws.transaction() as s:
            answer_help(s, actor=senior, help_id=req.id, answer="taylor")
    return reviewer, senior, req
