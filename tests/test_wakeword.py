"""The wake-word queue: clips without speech reach only the wake-word team, screened and protected;
its answers are stored as passes, counted, exported, and erased with everything else."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import func, select, update

from earmark import escalation, help, review, wakeword
from earmark.audio import encode_wav
from earmark.consent import set_consent
from earmark.errors import Conflict, InvalidInput, NotFound
from earmark.export import prune_exports, run_export
from earmark.metrics import compute_metrics
from earmark.models import (
    Account,
    Annotation,
    Assignment,
    AuditEvent,
    Clip,
    ClipProtection,
    QueueItem,
    WakeAnswer,
    utcnow,
)
from earmark.pipeline import PipelineConfig, protect
from earmark.queues import lease_next
from earmark.redaction import Span
from earmark.sampling import draw_sample
from earmark.sampling_policy import SamplingPolicy
from earmark.transcribe import Transcript
from earmark.transparency import build_report
from earmark.types import Actor, Consent, Role
from earmark.workspace import Workspace
from tests import factories as f
from tests.fakes import FailingAligner, KeywordPii, ProportionalAligner, fast_components

SR = 16_000


class NoSpeech:
    """A speech detector that hears nothing (a scream need not be speech to a real one)."""

    def detect(self, x: np.ndarray, sample_rate: int) -> list[Span]:
        return []


def _scream(seconds: float = 1.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * np.cumsum(750 + 60 * np.sin(2 * np.pi * 3 * t)) / SR
    x = sum((0.5 / k) * np.sin(k * phase) for k in range(1, 6)).astype(np.float32)
    return (0.8 * x / np.abs(x).max()).astype(np.float32)


def _protect(x: np.ndarray, config: PipelineConfig | None = None, **kw: object):  # type: ignore[no-untyped-def]
    return protect(
        x,
        SR,
        device_text=None,
        parts=fast_components(vad=NoSpeech()),
        config=config or PipelineConfig(no_speech="wakeword"),
        rng=np.random.default_rng(0),
        **kw,  # type: ignore[arg-type]
    )


def test_a_clip_without_speech_is_still_screened_for_distress() -> None:
    result = _protect(_scream())
    assert (result.outcome, result.reason) == ("safety", "no_speech")
    assert result.screening is not None and "screaming" in result.screening.labels
    quiet = _protect(np.random.default_rng(1).normal(0, 0.001, SR * 2).astype(np.float32))
    assert (quiet.outcome, quiet.reason) == ("wakeword", "no_speech")
    stages = [st.stage for st in quiet.stages]
    assert stages == ["decode", "speech", "transcript", "pii", "screening", "redaction", "anonymize"]


def test_what_the_device_heard_in_a_clip_without_speech_is_screened_and_searched() -> None:
    faint = np.random.default_rng(3).normal(0, 0.001, SR * 2).astype(np.float32)
    parts = fast_components(vad=NoSpeech(), aligner=FailingAligner())
    config = PipelineConfig(no_speech="wakeword")

    def run(text: str):  # type: ignore[no-untyped-def]
        return protect(faint, SR, device_text=text, parts=parts, config=config, rng=np.random.default_rng(0))

    # Whispered or far away: too little for the speech detector, not for the device's recognizer.
    cry = run("help me somebody help call nine one one")
    assert cry.outcome == "safety" and cry.screening is not None and cry.screening.labels
    # A name it heard there cannot be placed in time: the whole clip is bleeped.
    named = run("tell jennifer the code is on the fridge")
    assert named.outcome == "wakeword" and [p.type for p in named.pii] == ["PERSON"]
    assert named.wholesale and named.audio_spans == [Span(0, faint.size)]
    assert run("turn it up").audio_spans == []


def test_a_range_reported_in_a_clip_without_speech_is_bleeped() -> None:
    x = np.random.default_rng(2).normal(0, 0.001, SR * 2).astype(np.float32)
    silence = PipelineConfig(no_speech="wakeword", redaction_mode="silence")
    result = _protect(x, silence, extra_spans=[Span(SR // 2, SR)])
    assert result.outcome == "wakeword" and result.audio is not None
    assert result.audio_spans == [Span(SR // 2 - SR // 10, SR + SR // 10)]
    inside = float(np.sqrt(np.mean(result.audio[SR // 2 : SR] ** 2)))
    outside = float(np.sqrt(np.mean(result.audio[int(1.3 * SR) :] ** 2)))
    assert inside < outside / 10  # silenced, where the noise was


def _held(ws: Workspace, user):  # type: ignore[no-untyped-def]
    """`user` leases the next wake-word clip (one transaction); its assignment."""
    with ws.transaction() as s:
        a = wakeword.lease(s, actor=user, lease_seconds=600, consent_default="deny")
        assert a is not None
        return a


def _answer(ws: Workspace, user, label: str, ms: int = 1500):  # type: ignore[no-untyped-def]
    with ws.transaction() as s:
        a = wakeword.lease(s, actor=user, lease_seconds=600, consent_default="deny")
        assert a is not None
        return a.id, wakeword.record_answer(s, actor=user, assignment_id=a.id, label=label, ms=ms).id


def test_only_the_wakeword_queue_holds_clips_without_speech(ws: Workspace) -> None:
    f.wake_clips(ws, 1)
    reviewer = f.user(ws, "r1")
    team = f.user(ws, "w1", Role.wakeword)
    with ws.transaction() as s:
        assert lease_next(s, actor=reviewer) is None
    assignment_id, answer_id = _answer(ws, team, "media")
    with ws.sessions() as s:
        answer = s.get(Annotation, answer_id)
        assert answer is not None
        assert (answer.kind, answer.reason, answer.transcript, answer.ms) == ("wakeword", "media", "", 1500)
        clip = s.get(Clip, answer.clip_id)
        assert clip is not None and clip.status == "reviewed"
        item = s.execute(select(QueueItem).where(QueueItem.clip_id == answer.clip_id)).scalar_one()
        assert item.state == "done"
        event = s.execute(select(AuditEvent).where(AuditEvent.action == "wakeword.answer")).scalar_one()
        assert (event.object_id, event.details) == (assignment_id, {"label": "media"})


def test_a_second_answer_returns_the_first_or_says_it_differs(ws: Workspace) -> None:
    f.wake_clips(ws, 1)
    team = f.user(ws, "w1", Role.wakeword)
    assignment_id, first = _answer(ws, team, "media")
    with ws.transaction() as s:
        assert wakeword.record_answer(s, actor=team, assignment_id=assignment_id, label="media").id == first
    with ws.transaction() as s, pytest.raises(Conflict):
        wakeword.record_answer(s, actor=team, assignment_id=assignment_id, label="wake_word")
    with ws.sessions() as s:
        assert s.execute(select(func.count()).select_from(Annotation)).scalar_one() == 1


def test_an_unknown_answer_is_refused_and_the_clip_stays_held(ws: Workspace) -> None:
    f.wake_clips(ws, 1)
    team = f.user(ws, "w1", Role.wakeword)
    a = _held(ws, team)
    with ws.transaction() as s, pytest.raises(InvalidInput, match="wake_word, sound_alike"):
        wakeword.record_answer(s, actor=team, assignment_id=a.id, label="alexa")
    with ws.transaction() as s:
        assert wakeword.record_answer(s, actor=team, assignment_id=a.id, label="unclear").reason == "unclear"


def test_an_answer_closes_only_a_wakeword_clip(ws: Workspace) -> None:
    f.queue_clips(ws, 1)
    reviewer = f.user(ws, "r1")
    with ws.transaction() as s:
        a = lease_next(s, actor=reviewer)
        assert a is not None
    with ws.transaction() as s, pytest.raises(NotFound):
        wakeword.record_answer(s, actor=reviewer, assignment_id=a.id, label="media")


def _flag_then_false_alarm(ws: Workspace, team, safety, *, no_speech_route: str) -> None:  # type: ignore[no-untyped-def]
    """`team` flags the wake-word clip it leases as distressing; the safety team calls it a false alarm."""
    with ws.transaction() as s:
        a = wakeword.lease(s, actor=team, lease_seconds=600, consent_default="deny")
        assert a is not None
        review.flag_sensitive(s, actor=team, assignment_id=a.id)
    with ws.transaction() as s:
        lease = escalation.lease_safety(s, actor=safety, max_clips=10, window_minutes=60, lease_seconds=600)
        assert lease.assignment is not None
        escalation.record_outcome(
            s,
            actor=safety,
            assignment_id=lease.assignment.id,
            outcome="false_alarm",
            note="",
            no_speech_route=no_speech_route,
        )


def test_a_false_alarm_from_the_safety_team_goes_back_to_the_wakeword_queue(ws: Workspace) -> None:
    [cid] = f.wake_clips(ws, 1)
    team = f.user(ws, "w1", Role.wakeword)
    safety = f.user(ws, "s1", Role.safety)
    _flag_then_false_alarm(ws, team, safety, no_speech_route="wakeword")
    with ws.sessions() as s:
        clip_id = s.execute(select(Clip.id).where(Clip.external_id == cid)).scalar_one()
        queued = s.execute(
            select(QueueItem.queue).where(QueueItem.clip_id == clip_id, QueueItem.state == "queued")
        ).scalars()
        assert list(queued) == ["wakeword"]


def test_figures_count_each_answer_with_its_median_wake_score(ws: Workspace) -> None:
    ids = f.wake_clips(ws, 5, wake_scores=[0.52, 0.58, 0.61, 0.93, 0.70])
    # The last clip was drawn at a tenth of the others' probability: it stands for ten times as many.
    with ws.transaction() as s:
        s.execute(update(Clip).where(Clip.external_id == ids[4]).values(inclusion_probability=0.1))
    team = f.user(ws, "w1", Role.wakeword)
    for label in ("media", "media", "other_sound", "wake_word", "media"):  # queue order: oldest first
        _answer(ws, team, label)
    with ws.sessions() as s:
        fig = wakeword.figures(s)
    by = {r.label: r for r in fig.labels}
    assert (fig.answered, fig.false_wakes) == (5, 4)
    assert fig.false_wake_share == pytest.approx(13 / 14, abs=1e-4)
    # five answers, one of them weighing ten: worth (14^2 / (4 + 100)) = 1.9 answers drawn evenly
    assert fig.effective_answers == pytest.approx(1.9, abs=0.05)
    assert fig.false_wake_interval is not None and fig.false_wake_interval[0] < 0.4
    # Weighted: the media clip at 0.70 outweighs the two others (0.52, 0.58) together.
    assert (by["media"].clips, by["media"].median_wake_score) == (3, 0.7)
    assert (by["wake_word"].clips, by["wake_word"].median_wake_score) == (1, 0.93)
    assert (by["unclear"].clips, by["unclear"].median_wake_score) == (0, None)
    assert list(by) == list(wakeword.LABELS)
    with ws.transaction() as s:
        shown = compute_metrics(s).as_dict()["wake_word"]
    assert (shown["answered"], shown["false_wakes"]) == (5, 4)


def test_the_upgrade_that_keeps_wake_answers_fills_them_from_the_answers_so_far(ws: Workspace) -> None:
    from alembic import command

    from earmark import db

    ids = f.wake_clips(ws, 3, wake_scores=[0.54, 0.55, 0.6], device_type="speaker")
    f.wake_clips(ws, 1, account="acct-said-no")
    team = f.user(ws, "w1", Role.wakeword)
    for label in ("media", "wake_word", "other_sound", "unclear"):
        _answer(ws, team, label)
    with ws.transaction() as s:  # withdrew, keeping its reviewed passes: the rows a withdrawal deletes
        s.execute(update(Account).where(Account.external_id == "acct-said-no").values(human_review="deny"))
        s.execute(update(Clip).where(Clip.external_id == ids[1]).values(inclusion_probability=0.25))
        s.execute(update(Clip).where(Clip.external_id == ids[2]).values(erased_at=utcnow()))
    with ws.sessions() as s:
        before = {(r.clip_id, r.label) for r in s.execute(select(WakeAnswer)).scalars()}
    cfg = db.alembic_config(ws.engine.url.render_as_string(hide_password=False))
    with ws.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0008")
        command.upgrade(cfg, "head")
    with ws.sessions() as s:
        rows = {r.label: r for r in s.execute(select(WakeAnswer)).scalars()}
    # Every answered clip but the erased one and the withdrawn account's, with device, score and weight.
    assert sorted(rows) == ["media", "wake_word"] and len(before) == 4
    assert (rows["media"].device_type, rows["media"].wake_score, rows["media"].weight) == ("speaker", 0.54, 1.0)
    assert rows["wake_word"].weight == pytest.approx(4.0)


def test_the_weighted_median_is_where_half_the_weight_is_reached() -> None:
    assert wakeword.weighted_median([]) is None
    assert wakeword.weighted_median([(0.4, 1.0)]) == 0.4
    assert wakeword.weighted_median([(0.3, 1.0), (0.1, 1.0), (0.2, 1.0)]) == 0.2
    assert wakeword.weighted_median([(0.1, 1.0), (0.3, 1.0)]) == pytest.approx(0.2)  # exactly half: the mean
    assert wakeword.weighted_median([(0.1, 1.0), (0.2, 1.0), (0.9, 10.0)]) == 0.9
    assert wakeword.weighted_median([(0.1, 3.0), (0.9, 1.0), (0.5, 0.0)]) == 0.1  # weightless values count not


def test_figures_by_device_type_and_past_annotation_retention(ws: Workspace) -> None:
    f.wake_clips(ws, 2, device_type="speaker")
    f.wake_clips(ws, 1, device_type="tv")
    f.wake_clips(ws, 1)
    team = f.user(ws, "w1", Role.wakeword)
    for label in ("media", "wake_word", "media", "other_sound"):
        _answer(ws, team, label, ms=60_000)
    with ws.sessions() as s:
        fig = wakeword.figures(s)
    assert [(d.device_type, d.answered, d.false_wakes, d.false_wake_share) for d in fig.by_device] == [
        ("speaker", 2, 1, 0.5),
        ("(unknown)", 1, 1, 1.0),
        ("tv", 1, 1, 1.0),
    ]
    assert fig.hours == pytest.approx(4 / 60, abs=1e-3)
    # A year on, the passes are gone; what woke the devices is still known (numbers only).
    result = ws.run_retention(actor=Actor.cli(), now=utcnow() + timedelta(days=400))
    assert result.annotations == 4
    with ws.sessions() as s:
        assert s.execute(select(func.count()).select_from(Annotation)).scalar_one() == 0
        fig = wakeword.figures(s)
    assert (fig.answered, fig.false_wakes, fig.hours) == (4, 3, 0.0)
    assert {d.device_type: d.answered for d in fig.by_device} == {"speaker": 2, "tv": 1, "(unknown)": 1}
    with ws.transaction() as s:
        shown = compute_metrics(s).as_dict()["wake_word"]
    speaker = shown["by_device"][0]
    assert {k: speaker[k] for k in ("device_type", "answered", "false_wakes", "false_wake_share")} == {
        "device_type": "speaker",
        "answered": 2,
        "false_wakes": 1,
        "false_wake_share": 0.5,
    }
    low, high = speaker["interval"]  # one of two: the interval says how little that is
    assert low < 0.2 and high > 0.8


def test_a_share_interval_widens_with_few_or_uneven_answers() -> None:
    # Wilson's interval for 50 of 100 equal answers: 40.4%-59.6%
    assert wakeword.share_interval(50.0, 100.0, 100.0) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    few = wakeword.share_interval(1.0, 2.0, 2.0)
    assert few is not None and few[0] < 0.1 and few[1] > 0.9
    # the same 50/100 share carried by unequal weights is worth fewer answers: a wider interval
    uneven = wakeword.share_interval(50.0, 100.0, 1000.0)  # worth 10 answers
    assert uneven is not None and uneven[1] - uneven[0] > 0.5
    assert wakeword.share_interval(0.0, 10.0, 10.0)[0] == 0.0  # type: ignore[index]
    assert wakeword.share_interval(0.0, 0.0, 0.0) is None


def test_erasure_removes_the_answers_and_the_figures_forget_them(ws: Workspace) -> None:
    f.wake_clips(ws, 2, account="acct-w")
    f.wake_clips(ws, 1, account="acct-x")
    team = f.user(ws, "w1", Role.wakeword)
    for _ in range(3):
        _answer(ws, team, "background_speech")
    ws.erase(actor=Actor.cli(), account_id="acct-w")
    with ws.sessions() as s:
        assert s.execute(select(func.count()).select_from(Annotation)).scalar_one() == 1
        assert wakeword.figures(s).answered == 1


def test_the_wakeword_export_holds_the_answers_and_their_audio(ws: Workspace, tmp_path: Path) -> None:
    f.wake_clips(ws, 5)
    team = f.user(ws, "w1", Role.wakeword)
    for label in ("sound_alike", "wake_word", "unclear", "background_speech", "media"):
        _answer(ws, team, label)
    result = run_export(ws, actor=Actor.cli(), fmt="wakeword", out=tmp_path / "wake")
    # Not the voices of people who never spoke to the assistant; not what nobody could tell.
    assert result.items == 3 and result.skipped == {"answer_background_speech": 1, "answer_unclear": 1}
    rows = list(csv.DictReader(io.StringIO((tmp_path / "wake" / "labels.csv").read_text())))
    assert [(r["label"], r["false_wake"]) for r in rows] == [("sound_alike", "1"), ("wake_word", "0"), ("media", "1")]
    assert len({r["split"] for r in rows}) == 1  # one household: one split
    for r in rows:
        info = sf.info(tmp_path / "wake" / r["audio"])
        assert info.samplerate == SR and abs(info.duration - float(r["duration"])) < 1e-3
        assert r["id"].startswith("utt-")
    # Not transcripts: an ASR export has nothing to take from these clips.
    with pytest.raises(InvalidInput, match="nothing to export"):
        run_export(ws, actor=Actor.cli(), fmt="lhotse", out=tmp_path / "asr")


def test_a_reviewer_who_met_distress_today_gets_no_near_sensitive_wakeword_clip(ws: Workspace) -> None:
    f.wake_clips(ws, 1)
    team = f.user(ws, "w1", Role.wakeword)
    with ws.transaction() as s:
        s.execute(update(ClipProtection).values(sensitivity=0.45))
    with ws.transaction() as s:
        assert wakeword.lease(s, actor=team, lease_seconds=600, consent_default="deny", max_sensitivity=0.3) is None
        assert wakeword.lease(s, actor=team, lease_seconds=600, consent_default="deny") is not None


def test_the_wakeword_page_shows_no_words_and_no_guessed_intent(ws: Workspace) -> None:
    ws.settings.no_speech_route = "wakeword"
    m = f.meta(
        account_id="acct-w",
        device_asr={"text": "call maria", "confidence": 0.4},
        device_nlu={"intent": "CallContact", "slots": [{"type": "contact", "value": "maria"}]},
    )
    ws.parts = fast_components(vad=NoSpeech())
    faint = np.random.default_rng(4).normal(0, 0.001, SR * 2).astype(np.float32)
    ws.ingest(actor=Actor.cli(), meta=m, audio=encode_wav(faint, SR), via="test")
    f.allow(ws, "acct-w")
    f.sample_all(ws)
    assert [r.outcome for r in ws.process_pending()] == ["wakeword"]
    team = f.user(ws, "w1", Role.wakeword)
    with ws.transaction() as s:
        a = wakeword.lease(s, actor=team, lease_seconds=600, consent_default="deny")
        assert a is not None
        view = review.view_assignment(s, user=team, assignment_id=a.id)
    assert (view.transcript, view.intent, view.slots, view.queue) == ("", "", [], "wakeword")


def test_the_same_person_may_take_a_wakeword_clip_again_after_their_lease_ran_out(ws: Workspace) -> None:
    f.wake_clips(ws, 1)
    team = f.user(ws, "w1", Role.wakeword)
    with ws.transaction() as s:
        first = wakeword.lease(s, actor=team, lease_seconds=600, consent_default="deny")
        assert first is not None
        past = utcnow() - timedelta(seconds=1)
        first.expires_at = past
        s.execute(update(QueueItem).where(QueueItem.assignment_id == first.id).values(lease_expires_at=past))
    with ws.transaction() as s:
        again = wakeword.lease(s, actor=team, lease_seconds=600, consent_default="deny")
        assert again is not None and again.id != first.id and again.clip_id == first.clip_id


def test_a_false_alarm_without_speech_stays_out_when_such_clips_are_excluded_now(ws: Workspace) -> None:
    [cid] = f.wake_clips(ws, 1)
    team, safety = f.user(ws, "w1", Role.wakeword), f.user(ws, "s1", Role.safety)
    _flag_then_false_alarm(ws, team, safety, no_speech_route="exclude")
    with ws.sessions() as s:
        clip = s.execute(select(Clip).where(Clip.external_id == cid)).scalar_one()
        assert (clip.status, clip.hold_reason) == ("excluded", "no_speech")
        assert s.execute(select(QueueItem).where(QueueItem.state == "queued")).first() is None


def test_a_wakeword_clip_cannot_be_submitted_as_a_review_label(ws: Workspace) -> None:
    f.wake_clips(ws, 1)
    team = f.user(ws, "w1", Role.wakeword)
    a = _held(ws, team)
    with ws.transaction() as s, pytest.raises(NotFound):
        review.submit_annotation(s, actor=team, assignment_id=a.id, transcript="", intent="")


def test_answers_leave_the_figures_when_consent_is_withdrawn_and_cost_no_review_time(ws: Workspace) -> None:
    f.wake_clips(ws, 2, account="acct-w")
    f.wake_clips(ws, 1, account="acct-x")
    team = f.user(ws, "w1", Role.wakeword)
    for _ in range(3):
        _answer(ws, team, "media")
    with ws.transaction() as s:
        set_consent(s, actor=Actor.cli(), account_id="acct-w", human_review=Consent.deny, keep_reviewed=True)
    with ws.transaction() as s:
        m = compute_metrics(s).as_dict()
    assert (m["wake_word"]["answered"], m["wake_word"]["hours"]) == (1, round(4.5 / 3600, 3))
    assert (m["cost"]["passes"], m["cost"]["review_hours"]) == (0, 0.0)  # review time is the reviewers'
    with ws.sessions() as s:  # the account's rows went, not only out of the figures
        kept = s.execute(
            select(Account.external_id).join(Clip, Clip.account_id == Account.id).join(WakeAnswer)
        ).scalars()
        assert list(kept) == ["acct-x"]


def test_an_empty_range_reported_as_personal_data_is_refused(ws: Workspace) -> None:
    f.wake_clips(ws, 1)
    team = f.user(ws, "w1", Role.wakeword)
    a = _held(ws, team)
    for start, end in ((1.0363, 1.0364), (2.0, 2.05)):  # one moment; the very end of a 2 s clip
        with ws.transaction() as s, pytest.raises(InvalidInput, match="the range is empty or too short"):
            review.report_missed_pii(s, actor=team, assignment_id=a.id, start=start, end=end)
    with ws.transaction() as s:
        review.report_missed_pii(s, actor=team, assignment_id=a.id, start=0.5, end=0.9)
    [result] = ws.process_pending()
    assert result.outcome == "wakeword"
    with ws.sessions() as s:
        prot = s.execute(select(ClipProtection)).scalar_one()
        assert prot.audio_spans == [[int(0.4 * SR), int(1.0 * SR)]]  # bleeped, with its padding


def test_a_wakeword_export_is_pruned_after_an_erasure_and_nlu_exports_never_hold_answers(
    ws: Workspace, tmp_path: Path
) -> None:
    f.wake_clips(ws, 2, account="acct-w")
    f.wake_clips(ws, 1, account="acct-x")
    team = f.user(ws, "w1", Role.wakeword)
    for _ in range(3):
        _answer(ws, team, "media")
    f.queue_clips(ws, 1)
    f.review_all(ws, f.user(ws, "r1"))
    out = tmp_path / "wake"
    assert run_export(ws, actor=Actor.cli(), fmt="wakeword", out=out).items == 3
    assert run_export(ws, actor=Actor.cli(), fmt="rasa", out=tmp_path / "nlu").items == 1  # the review label only
    ws.erase(actor=Actor.cli(), account_id="acct-w")
    result = prune_exports(ws, actor=Actor.cli())
    assert result.items_removed == 2
    rows = list(csv.DictReader(io.StringIO((out / "labels.csv").read_text())))
    assert len(rows) == 1 and sorted(p.name for p in (out / "audio").iterdir()) == [rows[0]["audio"].split("/")[1]]


def test_the_cli_shows_the_wakeword_queue_and_what_woke_the_device(sqlite_ws: Workspace) -> None:
    from typer.testing import CliRunner

    from earmark.cli import app

    f.wake_clips(sqlite_ws, 3, wake_scores=[0.5, 0.6, 0.7])
    _answer(sqlite_ws, f.user(sqlite_ws, "w1", Role.wakeword), "sound_alike")
    home = str(sqlite_ws.settings.home)
    stats = CliRunner().invoke(app, ["--home", home, "stats"], terminal_width=200)
    assert stats.exit_code == 0 and re.search(r"wakeword\s*│\s*2", stats.output), stats.output
    metrics = CliRunner().invoke(app, ["--home", home, "metrics"], terminal_width=200)
    assert metrics.exit_code == 0, metrics.output
    assert "what woke the device (1 clips answered" in metrics.output
    assert re.search(r"A word that sounds like the wake word\s*│\s*1\s*│\s*0\.50", metrics.output), metrics.output
    assert "false wakes: 1; weighted by how the clips were drawn, 100.0% (95% interval 20.6%–100.0%)" in " ".join(
        metrics.output.split()
    )
    assert "the weighted answers are worth 1.0 drawn evenly" in " ".join(metrics.output.split())
    assert re.search(r"false wakes by device type.*\(unknown\)\s*│\s*1\s*│\s*1\s*│\s*100\.0%", metrics.output, re.S)


class TinyRegion:
    """A speech detector that hears 0.1 s: less than a clip with speech needs."""

    def detect(self, x: np.ndarray, sample_rate: int) -> list[Span]:
        return [Span(int(1.5 * sample_rate), int(1.6 * sample_rate))]


def test_personal_data_in_a_clip_without_speech_bleeps_the_whole_clip_wherever_words_were_placed() -> None:
    faint = np.random.default_rng(5).normal(0, 0.001, SR * 4).astype(np.float32)
    for aligner in (FailingAligner(), ProportionalAligner()):
        parts = fast_components(vad=TinyRegion(), aligner=aligner)
        result = protect(
            faint,
            SR,
            device_text="tell jennifer the code is on the fridge",
            parts=parts,
            config=PipelineConfig(no_speech="wakeword"),
            rng=np.random.default_rng(0),
        )
        assert result.outcome == "wakeword" and result.wholesale, aligner
        assert result.audio_spans == [Span(0, faint.size)], aligner


class SilentWhisper:
    """A transcriber that makes up words and says it heard no speech, as Whisper does on silence."""

    name = "silent"

    def __init__(self, no_speech: float) -> None:
        self.no_speech = no_speech

    def transcribe(self, x: np.ndarray, sample_rate: int) -> Transcript:
        return Transcript("call maria", self.name, [], no_speech=self.no_speech)


def test_words_a_transcriber_makes_up_for_a_clip_without_speech_are_dropped() -> None:
    faint = np.random.default_rng(6).normal(0, 0.001, SR * 2).astype(np.float32)

    def run(no_speech: float, vad: object):  # type: ignore[no-untyped-def]
        parts = fast_components(vad=vad, transcriber=SilentWhisper(no_speech), pii=KeywordPii())
        return protect(
            faint, SR, device_text=None, parts=parts, config=PipelineConfig(no_speech="wakeword"),
            rng=np.random.default_rng(0),
        )  # fmt: skip

    assert run(0.9, NoSpeech()).transcript == ""  # both say nobody spoke: nothing made up to bleep
    heard = run(0.2, NoSpeech())  # the transcriber heard words: they are searched
    assert heard.transcript == "call maria" and heard.wholesale and heard.audio_spans == [Span(0, faint.size)]


def test_one_who_flagged_a_wakeword_clip_does_not_get_it_back_after_a_false_alarm(ws: Workspace) -> None:
    f.wake_clips(ws, 1)
    team, other = f.user(ws, "w1", Role.wakeword), f.user(ws, "w2", Role.wakeword)
    safety = f.user(ws, "s1", Role.safety)
    _flag_then_false_alarm(ws, team, safety, no_speech_route="wakeword")
    with ws.transaction() as s:
        assert wakeword.lease(s, actor=team, lease_seconds=600, consent_default="deny") is None
        assert wakeword.lease(s, actor=other, lease_seconds=600, consent_default="deny") is not None


def test_no_help_request_on_a_wakeword_clip(ws: Workspace) -> None:
    f.wake_clips(ws, 1)
    team = f.user(ws, "w1", Role.wakeword)
    a = _held(ws, team)
    with ws.transaction() as s, pytest.raises(NotFound):
        help.ask_help(s, actor=team, assignment_id=a.id, start=0.1, end=1.0, question="what is this?")


def _draw_for_the_team(ws: Workspace, *texts: str) -> list[str]:
    """Clips with speech but a low wake score (accidental activations), drawn by a policy that
    gives a share of them to the wake-word team."""
    ids = [f.ingest_speech(ws, t, account_id="acct-aa", wake_score=0.2, device_nlu=None) for t in texts]
    f.allow(ws, "acct-aa")
    with ws.transaction() as s:
        draw_sample(
            s,
            actor=Actor.cli(),
            policy=SamplingPolicy(rate=0.01, wake_word_rate=1.0, cap_per_account=10),
            key=b"k" * 32,
            default_consent=Consent.deny,
        )
    return ids


def test_accidental_activations_drawn_for_the_team_reach_only_the_team_speech_or_not(ws: Workspace) -> None:
    ws.settings.no_speech_route = "wakeword"
    [cid] = _draw_for_the_team(ws, "so i told her the doctor called about jennifer")
    with ws.sessions() as s:
        clip = s.execute(select(Clip).where(Clip.external_id == cid)).scalar_one()
        assert (clip.sample_reason, clip.inclusion_probability) == ("wake_word", 1.0)
    [result] = ws.process_pending()
    assert result.outcome == "wakeword"  # speech, but never general review
    team = f.user(ws, "w1", Role.wakeword)
    with ws.transaction() as s:
        view = review.view_assignment(s, user=team, assignment_id=_held(ws, team).id)
    assert (view.transcript, view.intent) == ("", "")
    # A safety false alarm sends it back to the team, not to general review.
    with ws.transaction() as s:
        s.execute(update(Assignment).values(state="expired"))
        s.execute(update(QueueItem).values(state="queued", assignment_id=None, lease_expires_at=None))
    _flag_then_false_alarm(ws, team, f.user(ws, "s1", Role.safety), no_speech_route="wakeword")
    with ws.sessions() as s:
        queued = s.execute(select(QueueItem.queue).where(QueueItem.state == "queued")).scalars().all()
    assert queued == ["wakeword"]
    with ws.transaction() as s:
        why = build_report(s, actor=Actor.cli(), account_id="acct-aa", secret=ws.secret)["sampled_for_human_review"]
    assert "for the team that improves how it listens for its wake word, not for general review" in why[0]["why"]


def test_without_a_wake_word_team_such_clips_stay_out(ws: Workspace) -> None:
    _draw_for_the_team(ws, "turn the music down")
    [result] = ws.process_pending()
    assert (result.outcome, result.reason) == ("excluded", "wake_word_sample")


def test_a_draw_for_the_team_leaves_the_review_figures_of_the_draw_alone(ws: Workspace) -> None:
    f.ingest_speech(ws, "play some jazz", account_id="acct-aa", wake_score=0.9)
    for i in range(3):
        f.ingest_speech(ws, f"they said {i}", account_id="acct-aa", wake_score=0.2)
    f.allow(ws, "acct-aa")
    with ws.transaction() as s:
        result = draw_sample(
            s,
            actor=Actor.cli(),
            policy=SamplingPolicy(rate=1.0, wake_word_rate=1.0, cap_per_account=3),
            key=b"k" * 32,
            default_consent=Consent.deny,
            dry_run=True,
        )
    # One review candidate; two for the team, the third over the household's cap of three.
    assert (result.eligible, result.drawn, result.wake_word, result.capped) == (1, 3, 2, 1)
    assert result.as_dict()["strata"]["default"]["eligible"] == 1


def test_an_accidental_activation_drawn_upstream_for_review_goes_to_the_team_all_the_same(ws: Workspace) -> None:
    """An upstream draw under another policy said 'uniform'; this policy counts the clip as an
    accidental activation: it is the wake-word team's, never general review's."""
    ws.settings.no_speech_route = "wakeword"
    upstream = {"probability": 0.2, "reason": "uniform", "policy": "upstream"}
    m = f.meta(account_id="acct-aa", wake_score=0.2, sampling=upstream)
    ws.ingest(actor=Actor.cli(), meta=m, audio=f.speech_bytes("play shake it off by taylor swift"), via="test")
    f.allow(ws, "acct-aa")
    with ws.transaction() as s:
        result = draw_sample(
            s,
            actor=Actor.cli(),
            policy=SamplingPolicy(rate=0.01, wake_word_rate=0.001),
            key=b"k" * 32,
            default_consent=Consent.deny,
        )
    assert (result.eligible, result.wake_word) == (0, 1)
    with ws.sessions() as s:
        assert s.execute(select(Clip.sample_reason)).scalar_one() == "wake_word"
    assert [r.outcome for r in ws.process_pending()] == ["wakeword"]


def test_a_clip_drawn_for_the_team_with_speech_in_it_never_leaves_in_an_export(ws: Workspace, tmp_path: Path) -> None:
    ws.settings.no_speech_route = "wakeword"
    _draw_for_the_team(ws, "did you see the game last night")
    assert [r.outcome for r in ws.process_pending()] == ["wakeword"]
    f.wake_clips(ws, 1, account="acct-w")
    team = f.user(ws, "w1", Role.wakeword)
    _answer(ws, team, "media")
    _answer(ws, team, "media")
    with ws.transaction() as s:
        set_consent(s, actor=Actor.cli(), account_id="acct-aa", training_use=Consent.allow)
    result = run_export(ws, actor=Actor.cli(), fmt="wakeword", out=tmp_path / "protected")
    assert (result.items, result.skipped) == (1, {"speech": 1})
    # Not as original audio either, though that account allows training use.
    with pytest.raises(InvalidInput, match="speech 1"):
        run_export(ws, actor=Actor.cli(), fmt="wakeword", out=tmp_path / "original", audio="original")


def test_the_words_heard_in_a_wakeword_clip_are_not_kept_once_it_is_protected(ws: Workspace) -> None:
    ws.settings.no_speech_route = "wakeword"
    ws.parts = fast_components(vad=NoSpeech())
    faint = np.random.default_rng(7).normal(0, 0.001, SR * 2).astype(np.float32)
    text = "tell jennifer the code is on the fridge"
    m = f.meta(account_id="acct-w", device_asr={"text": text, "confidence": 0.3}, device_nlu=None)
    ws.ingest(actor=Actor.cli(), meta=m, audio=encode_wav(faint, SR), via="test")
    f.allow(ws, "acct-w")
    f.sample_all(ws)
    assert [r.outcome for r in ws.process_pending()] == ["wakeword"]
    with ws.sessions() as s:
        clip = s.execute(select(Clip)).scalar_one()
        prot = s.get(ClipProtection, clip.id)
        assert prot is not None
        assert (clip.redacted_text, prot.transcript, prot.words) == ("", "", [])
        assert [p["type"] for p in prot.pii] == ["PERSON"] and prot.wholesale  # what was found, and done
