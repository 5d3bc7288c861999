from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from earmark.metrics import compute_metrics
from earmark.models import AuditEvent, Clip, ClipError
from earmark.queues import lease_next
from earmark.review import SlotIn, submit_annotation
from earmark.types import Actor
from earmark.workspace import Workspace
from tests import factories as f

DEVICE = "play shake it off by taylor swift"  # what the device heard (7 words)


def _review(ws: Workspace, answers: list[tuple[str, str, list[SlotIn]]]) -> list[int]:
    """Review queued clips in order with the given (transcript, intent, slots); returns clip ids."""
    reviewer = f.user(ws, "m-reviewer")
    done = []
    for text, intent, slots in answers:
        with ws.transaction() as s:
            a = lease_next(s, actor=reviewer)
            assert a is not None
            submit_annotation(
                s, actor=reviewer, assignment_id=a.id, transcript=text, intent=intent, slots=slots, ms=30_000
            )
            done.append(a.clip_id)
    return done


ARTIST = [SlotIn(type="artist", start=21, end=33)]


def _protected(ws: Workspace, text: str, intent: str, *, contact: str) -> None:
    """One clip the device heard as `text`, with its NLU naming `contact`, made safe to hear."""
    nlu = {"intent": intent, "slots": [{"type": "contact", "value": contact}], "confidence": 0.9}
    m = f.meta(account_id=f"acct-{contact}", device_asr={"text": text, "confidence": 0.9}, device_nlu=nlu)
    ws.ingest(actor=Actor.cli(), meta=m, audio=f.speech_bytes(text), via="test")
    f.allow(ws, f"acct-{contact}")
    f.sample_all(ws)
    ws.process_pending()


def test_errors_are_inverse_probability_weighted(ws: Workspace) -> None:
    f.queue_clips(ws, 2, accounts=2, text=DEVICE)
    right, wrong = _review(
        ws,
        [
            (DEVICE, "PlayMusic", ARTIST),
            ("play shake it up by taylor swift", "AddToPlaylist", []),  # one word of seven wrong
        ],
    )
    with ws.transaction() as s:
        # The correct clip was drawn uniformly (p 0.5); the wrong one by priority (p 0.1): weight 10.
        s.execute(update(Clip).where(Clip.id == right).values(inclusion_probability=0.5))
        s.execute(update(Clip).where(Clip.id == wrong).values(inclusion_probability=0.1))
    with ws.transaction() as s:
        m = compute_metrics(s, actor=Actor.cli()).as_dict()
    o = m["overall"]
    assert o["clips"] == 2
    assert o["asr_wer_unweighted"] == pytest.approx(1 / 14, abs=1e-4)  # 1 error in 14 reference words
    assert o["asr_wer"] == pytest.approx(10 / (2 * 7 + 10 * 7), abs=1e-4)  # weights 2 and 10
    assert o["intent_accuracy_unweighted"] == 0.5
    assert o["intent_accuracy"] == pytest.approx(2 / 12, abs=1e-4)
    # How much the weights let one clip decide: (2 + 10)^2 / (4 + 100) equally weighted clips.
    assert (o["effective_clips"], o["largest_weight_share"]) == (1.4, pytest.approx(10 / 12, abs=1e-4))
    assert o["slot_f1_unweighted"] is not None
    assert m["intent_confusion"] == [{"device": "PlayMusic", "reviewed": "AddToPlaylist", "clips": 1}]
    assert set(m["by"]["intent"]) == {"PlayMusic", "AddToPlaylist"}
    assert m["by"]["intent"]["PlayMusic"]["asr_wer"] == 0.0
    assert m["by"]["locale"]["en-US"]["clips"] == 2
    assert m["worst_examples"][0]["reviewed"] == "play shake it up by taylor swift"
    assert m["cost"]["useful_labels"] == 1 and m["cost"]["seconds_per_useful_label"] == 60.0
    p = m["privacy"]
    assert p["heard_by_a_person"] == 2 and p["recordings"] == 2 and p["share_heard"] == 1.0
    assert p["most_clips_heard_per_account_per_period"] == 1
    with ws.sessions() as s:
        assert s.execute(select(AuditEvent.action).order_by(AuditEvent.seq.desc()).limit(1)).scalar_one() == (
            "metrics.view"
        )


def test_slot_f1_and_placeholders_count_as_one_word(ws: Workspace) -> None:
    # What a redacted device transcript looks like; the device's artist slot is in it.
    f.queue_clips(ws, 1, text="call [PHONE] now taylor swift")
    _review(ws, [("call [PHONE] now taylor swift", "PlayMusic", [])])
    with ws.transaction() as s:
        m = compute_metrics(s).as_dict()
    assert m["overall"]["asr_wer"] == 0.0
    # The device tagged an artist the reviewer did not: precision 0, recall undefined -> F1 0.
    assert m["overall"]["slot_f1"] == 0.0


def test_no_reviews_gives_empty_figures_not_errors(ws: Workspace) -> None:
    with ws.transaction() as s:
        m = compute_metrics(s).as_dict()
    assert m["overall"]["clips"] == 0 and m["overall"]["asr_wer"] is None
    assert m["privacy"]["share_heard"] is None and m["cost"]["seconds_per_useful_label"] is None


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(["play", "the", "song", "[PHONE]", "call", "mom"]), min_size=1, max_size=12),
    st.lists(st.sampled_from(["play", "a", "song", "[PHONE]", "call", "mum"]), min_size=1, max_size=12),
)
def test_word_errors_match_jiwer(ref: list[str], hyp: list[str]) -> None:
    """The metrics count word errors with rapidfuzz directly; they are jiwer's S + D + I."""
    import jiwer
    from rapidfuzz.distance import Levenshtein

    from earmark.metrics import _tokens

    r, h = _tokens(" ".join(ref)), _tokens(" ".join(hyp))
    out = jiwer.process_words(r, h)
    assert Levenshtein.distance(r.split(), h.split()) == out.substitutions + out.deletions + out.insertions


def test_figures_are_kept_per_clip_and_follow_withdrawal(ws: Workspace) -> None:
    from earmark.models import ClipError
    from earmark.types import Consent

    f.queue_clips(ws, 2, accounts=2, text=DEVICE)
    up = [SlotIn(type="artist", start=20, end=32)]
    _review(ws, [(DEVICE, "PlayMusic", ARTIST), ("play shake it up by taylor swift", "PlayMusic", up)])
    with ws.transaction() as s:
        assert compute_metrics(s).overall["clips"] == 2
    with ws.sessions() as s:
        rows = s.execute(select(ClipError.asr_errors, ClipError.asr_words)).all()
    assert sorted(rows) == [(0, 7), (1, 7)]  # numbers only: no text is kept in this table
    with ws.transaction() as s:
        again = compute_metrics(s, actor=Actor.cli())
    assert again.overall["clips"] == 2
    with ws.sessions() as s:
        details = s.execute(select(AuditEvent.details).order_by(AuditEvent.seq.desc()).limit(1)).scalar_one()
    assert details == {"clips": 2, "refreshed": 0}  # the second view reuses the stored figures
    ws.set_consent(actor=Actor.cli(), account_id="acct-q1", human_review=Consent.deny)
    with ws.transaction() as s:
        m = compute_metrics(s).as_dict()
    assert m["overall"]["clips"] == 1


def test_periods_in_sql_are_the_sampling_cap_periods(ws: Workspace) -> None:
    from datetime import UTC, datetime, timedelta

    from earmark.metrics import _period_sql
    from earmark.sampling_policy import period_of

    base = datetime(2026, 12, 7, 23, 59, tzinfo=UTC)  # a 30-day period ends at 2026-12-08 00:00 UTC
    for minutes in (0, 2, 60 * 24 * 29, -60 * 24 * 400):
        f.ingest(ws, 1, account_id="p", recorded_at=base + timedelta(minutes=minutes))
    with ws.sessions() as s:
        for days in (1, 7, 30):
            rows = s.execute(select(Clip.recorded_at, _period_sql(s, days))).all()
            assert [int(p) for _, p in rows] == [period_of(at, days) for at, _ in rows], days


@f.postgres_only
def test_an_erasure_while_the_figures_are_refreshed_leaves_no_row_of_the_erased_clip(ws: Workspace) -> None:
    """The refresh read the reviewed clips unlocked; an erasure deleted their rows and committed;
    the refresh then inserted figures for the erased clip, which no one would delete again."""
    from earmark.models import ClipError

    f.queue_clips(ws, 2, accounts=2, text=DEVICE)
    ids = _review(ws, [(DEVICE, "PlayMusic", ARTIST), (DEVICE, "PlayMusic", ARTIST)])
    with ws.sessions() as s:
        erased = s.execute(
            select(Clip.id).where(Clip.id.in_(ids), Clip.account_id == _account_id(s, "acct-q0"))
        ).scalar_one()
    eraser = f.Racer(lambda: ws.erase(actor=Actor.cli(), account_id="acct-q0"))
    with f.at_statement(ws, eraser, "INSERT INTO clip_errors"), ws.transaction() as s:
        compute_metrics(s, actor=Actor.cli())
    eraser.join()
    assert eraser.error is None and eraser.result.clips == 1
    with ws.sessions() as s:
        assert s.execute(select(ClipError.clip_id)).scalars().all() == [c for c in ids if c != erased]


def _account_id(s, external_id: str) -> int:  # type: ignore[no-untyped-def]
    from earmark.models import Account

    return s.execute(select(Account.id).where(Account.external_id == external_id)).scalar_one()  # type: ignore[no-any-return]


def test_most_clips_heard_per_household_counts_whole_periods(ws: Workspace) -> None:
    """On SQLite the period was computed with real division, so each day was a period of its own
    and three clips heard on three days of one period read as one."""
    from datetime import UTC, datetime

    from earmark.sampling_policy import period_of

    days = [datetime(2026, 11, d, 9, 0, tzinfo=UTC) for d in (4, 11, 18)]
    assert len({period_of(d, 30) for d in days}) == 1  # one 30-day period
    for d in days:
        f.ingest_speech(ws, "play some jazz", account_id="acct-h", recorded_at=d)
    f.allow(ws, "acct-h")
    f.sample_all(ws)
    ws.process_pending()
    f.review_all(ws, f.user(ws, "r1"))  # all three heard by a person
    with ws.transaction() as s:
        m = compute_metrics(s, actor=Actor.cli(), period_days=30).as_dict()
    assert m["privacy"]["most_clips_heard_per_account_per_period"] == 3


def test_a_masked_slot_value_is_not_counted_as_a_device_error(ws: Workspace) -> None:
    """A reviewer shown "call [PERSON]" (the device's slot: contact = jennifer) cannot tag a masked
    name, so the slot counted as missed and the clip as corrected when the device was right."""
    _protected(ws, "call jennifer", "MakeCall", contact="jennifer")
    with ws.sessions() as s:
        assert s.execute(select(Clip.redacted_text)).scalar_one() == "call [PERSON]"
    _review(ws, [("call [PERSON]", "MakeCall", [])])
    with ws.transaction() as s:
        result = compute_metrics(s, actor=Actor.cli()).as_dict()
    assert result["overall"]["slot_f1"] is None or result["overall"]["slot_f1"] == 1.0
    assert result["cost"]["useful_labels"] == 0  # nothing was corrected


def test_a_slot_the_device_understood_though_its_recognizer_misheard_counts_when_right(ws: Workspace) -> None:
    """The device heard "parents" and understood city = paris; the reviewer typed "paris" and tagged
    it. The slot counted as missed: values not in the shown transcript were all taken for masked."""
    text = "what is the weather in parents tomorrow"
    nlu = {"intent": "GetWeather", "slots": [{"type": "city", "value": "paris"}], "confidence": 0.9}
    m = f.meta(account_id="acct-p", device_asr={"text": text, "confidence": 0.9}, device_nlu=nlu)
    ws.ingest(actor=Actor.cli(), meta=m, audio=f.speech_bytes(text), via="test")
    f.allow(ws, "acct-p")
    f.sample_all(ws)
    ws.process_pending()
    fixed = "what is the weather in paris tomorrow"
    _review(ws, [(fixed, "GetWeather", [SlotIn(type="city", start=23, end=28)])])
    with ws.transaction() as s:
        result = compute_metrics(s, actor=Actor.cli()).as_dict()
        row = s.execute(select(ClipError)).scalar_one()
    assert (row.slot_tp, row.slot_fp, row.slot_fn) == (1, 0, 0)
    assert result["overall"]["slot_f1"] == 1.0


def test_review_time_is_unknown_not_zero_once_the_passes_are_past_retention(ws: Workspace) -> None:
    """The cost read '0.0 s per useful label' after annotation retention: review looked free."""
    from datetime import timedelta

    from earmark.models import utcnow

    f.queue_clips(ws, 2, accounts=2, text=DEVICE)
    _review(ws, [(DEVICE, "PlayMusic", ARTIST), ("play shake it up by taylor swift", "PlayMusic", [])])
    with ws.transaction() as s:
        before = compute_metrics(s).as_dict()["cost"]
    assert before["seconds_per_useful_label"] == 60.0
    ws.settings.retention_annotation_days = 1
    ws.run_retention(actor=Actor.cli(), now=utcnow() + timedelta(days=2))
    with ws.transaction() as s:
        after = compute_metrics(s).as_dict()["cost"]
    assert after["reviewed_clips"] == 2 and after["useful_labels"] == 1  # the error figures stay
    assert after["seconds_per_useful_label"] is None and after["seconds_per_reviewed_clip"] is None


@f.postgres_only
def test_two_refreshes_at_once_do_not_fail(ws: Workspace) -> None:
    """The metrics page and the worker refreshing together each inserted the same rows; one failed
    on the primary key (a 500 on the page). Found by tests/test_interleavings.py."""
    from earmark.metrics import refresh_errors

    f.queue_clips(ws, 2, accounts=2, text=DEVICE)
    _review(ws, [(DEVICE, "PlayMusic", ARTIST), (DEVICE, "PlayMusic", ARTIST)])
    other = f.Racer(lambda: _in_tx(ws, refresh_errors))
    with f.racing(ws, other) as s:
        assert refresh_errors(s) == 2
    assert other.error is None, other.error
    assert other.result == 0  # it waited, then found the rows made


def _in_tx(ws: Workspace, target):  # type: ignore[no-untyped-def]
    with ws.transaction() as s:
        return target(s)


def test_personal_data_slots_count_on_neither_side(ws: Workspace) -> None:
    """A visible name (a clip processed before masking improved) tagged by the reviewer from the
    device's prefill counted as a slot the device missed, since the device side was filtered."""
    text = "text daniel on whatsapp"
    _protected(ws, text, "SendMessage", contact="daniel")
    with ws.transaction() as s:  # as an older pipeline left it: the name visible
        s.execute(update(Clip).values(redacted_text=text))
    _review(ws, [(text, "SendMessage", [SlotIn(type="contact", start=5, end=11)])])
    with ws.transaction() as s:
        result = compute_metrics(s).as_dict()
    assert result["cost"]["useful_labels"] == 0


def test_time_per_reviewed_clip_counts_every_pass_of_reviewed_clips_only(ws: Workspace) -> None:
    """With two passes per clip, a clip still waiting for its second pass was counted as a timed
    clip, and the time per reviewed clip read low."""
    ws.settings.review_passes = 2
    f.queue_clips(ws, 2, accounts=2, text=DEVICE)
    first, second = f.user(ws, "p1"), f.user(ws, "p2")
    for reviewer, n in ((first, 2), (second, 1)):  # clip A: two passes (reviewed); clip B: one
        for _ in range(n):
            with ws.transaction() as s:
                a = lease_next(s, actor=reviewer)
                assert a is not None
                submit_annotation(
                    s, actor=reviewer, assignment_id=a.id, transcript=DEVICE, intent="PlayMusic", ms=30_000
                )
    with ws.transaction() as s:
        cost = compute_metrics(s).as_dict()["cost"]
    assert cost["reviewed_clips"] == 1 and cost["passes"] == 3
    assert cost["seconds_per_reviewed_clip"] == 60.0  # two people's 30 s on the one reviewed clip
