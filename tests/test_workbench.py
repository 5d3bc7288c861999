"""The reviewer's actions and quality control, at the domain level."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import soundfile as sf
from sqlalchemy import select

from earmark import escalation, help
from earmark.catalog import import_catalog, import_inventory, link, load_inventory
from earmark.errors import InvalidInput, NotFound
from earmark.models import AuditEvent, Clip, ClipProtection, QueueItem
from earmark.quality import add_gold, agreement, cohen_kappa, gold_accuracy, serve_gold, slot_f1
from earmark.queues import lease_next
from earmark.review import SlotIn, flag_sensitive, report_missed_pii, skip_assignment, submit_annotation
from earmark.types import Actor, Role
from earmark.workspace import Workspace
from tests import factories as f

DATA = Path(__file__).resolve().parents[1] / "earmark" / "data"
TEXT = "play shake it off by taylor swift"


def _lease(ws: Workspace, user, queue: str = "general"):  # type: ignore[no-untyped-def]
    with ws.transaction() as s:
        a = lease_next(s, actor=user, queue=queue)
        assert a is not None
        return a


def _submit(ws: Workspace, user, a, transcript: str = TEXT, intent: str = "PlayMusic", **kw):  # type: ignore[no-untyped-def]
    with ws.transaction() as s:
        return submit_annotation(s, actor=user, assignment_id=a.id, transcript=transcript, intent=intent, **kw)


def _inventory(ws: Workspace) -> None:
    with ws.transaction() as s:
        import_inventory(s, actor=Actor.cli(), path=DATA / "inventory.json")
        import_catalog(s, actor=Actor.cli(), lines=(DATA / "catalog.jsonl").read_text().splitlines())


def test_catalog_links_by_spelling_and_by_sound(ws: Workspace) -> None:
    _inventory(ws)
    with ws.sessions() as s:
        assert link(s, "tailor swift", entity_type="MusicArtist")[0].id == "artist:taylor-swift"
        assert link(s, "beyonce", entity_type="MusicArtist")[0].name == "Beyonce"
        assert link(s, "the weekend")[0].id == "artist:the-weeknd"  # an alias
        assert link(s, "zzzz qqq") == []
        inv = load_inventory(s)
    assert "PlayMusic" in inv.intents and inv.slots["artist"] == "MusicArtist"


def test_catalog_import_reports_bad_lines_and_keeps_the_good(ws: Workspace) -> None:
    lines = [
        '{"id": "a:1", "name": "One", "type": "T"}',
        "{broken",
        '{"id": "a:2", "type": "T"}',
        '{"id": "a:1", "name": "Again", "type": "T"}',
    ]
    with ws.transaction() as s:
        report = import_catalog(s, actor=Actor.cli(), lines=lines)
    assert report.added == 1 and [n for n, _ in report.errors] == [2, 3, 4]
    assert "name" in report.errors[1][1] and "twice" in report.errors[2][1]


def test_slots_are_validated_and_linked(ws: Workspace) -> None:
    _inventory(ws)
    f.queue_clips(ws, 1)
    r = f.user(ws, "r1")
    a = _lease(ws, r)
    start = TEXT.index("taylor swift")
    with pytest.raises(InvalidInput, match="unknown intent"):
        _submit(ws, r, a, intent="OrderPizza")
    with pytest.raises(InvalidInput, match="unknown slot type"):
        _submit(ws, r, a, slots=[SlotIn(type="colour", start=0, end=4)])
    with pytest.raises(InvalidInput, match="inside the transcript"):
        _submit(ws, r, a, slots=[SlotIn(type="artist", start=10, end=400)])
    with pytest.raises(InvalidInput, match="unknown catalog entity"):
        _submit(ws, r, a, slots=[SlotIn(type="artist", start=start, end=start + 12, entity_id="nope")])
    # A link of another type ("bananas" as an item, linked to an artist, reached the exports).
    with pytest.raises(InvalidInput, match="'song' slot cannot link to a 'MusicArtist' entity"):
        _submit(ws, r, a, slots=[SlotIn(type="song", start=start, end=start + 12, entity_id="artist:taylor-swift")])
    with pytest.raises(InvalidInput, match="'item' slots link to no entity"):
        _submit(ws, r, a, slots=[SlotIn(type="item", start=start, end=start + 12, entity_id="artist:taylor-swift")])
    ann = _submit(
        ws,
        r,
        a,
        slots=[SlotIn(type="artist", start=start, end=start + 12, entity_id="artist:taylor-swift")],
        mode="verify",
        ms=4200,
    )
    assert ann.slots == [
        {
            "type": "artist",
            "start": start,
            "end": start + 12,
            "value": "taylor swift",
            "entity_id": "artist:taylor-swift",
        }
    ]
    assert ann.mode == "verify" and ann.ms == 4200


def test_placeholders_cannot_be_edited_into_text(ws: Workspace) -> None:
    f.queue_clips(ws, 1, text="call jennifer now")
    r = f.user(ws, "r1")
    a = _lease(ws, r)
    with pytest.raises(InvalidInput, match="placeholders"):
        _submit(ws, r, a, transcript="call jennifer now", intent="MakeCall")
    assert (
        _submit(ws, r, a, transcript="call [PERSON] right now", intent="MakeCall").transcript
        == "call [PERSON] right now"
    )


def test_skip_returns_the_clip_to_others_not_to_the_skipper(ws: Workspace) -> None:
    f.queue_clips(ws, 1)
    r1, r2 = f.user(ws, "r1"), f.user(ws, "r2")
    a = _lease(ws, r1)
    with pytest.raises(InvalidInput, match="unknown reason"), ws.transaction() as s:
        skip_assignment(s, actor=r1, assignment_id=a.id, reason="bored")
    with ws.transaction() as s:
        skip_assignment(s, actor=r1, assignment_id=a.id, reason="too_hard")
    with ws.transaction() as s:
        assert lease_next(s, actor=r1) is None
    assert _lease(ws, r2).clip_id == a.clip_id


def test_flags_close_the_pass(ws: Workspace) -> None:
    f.queue_clips(ws, 1)
    r = f.user(ws, "r1")
    a = _lease(ws, r)
    with pytest.raises(InvalidInput, match="unknown flag"):
        _submit(ws, r, a, flag="boring")
    ann = _submit(ws, r, a, flag="unintelligible")
    assert ann.kind == "flag" and ann.flags == ["unintelligible"]


def test_missed_pii_withdraws_reprotects_and_requeues(ws: Workspace) -> None:
    f.queue_clips(ws, 1)
    r = f.user(ws, "r1")
    a = _lease(ws, r)
    with ws.sessions() as s:
        before = s.get(Clip, a.clip_id).protected_blob_key  # type: ignore[union-attr]
    with pytest.raises(InvalidInput, match="inside the clip"), ws.transaction() as s:
        report_missed_pii(s, actor=r, assignment_id=a.id, start=5.0, end=99.0)
    with ws.transaction() as s:
        report_missed_pii(s, actor=r, assignment_id=a.id, start=1.0, end=1.6)
    with ws.sessions() as s:
        clip = s.get(Clip, a.clip_id)
        assert clip is not None and clip.status == "pending" and clip.extra_redactions == [[16000, 25600]]
    [result] = ws.process_pending()
    assert result.outcome == "general"
    with ws.sessions() as s:
        clip = s.get(Clip, a.clip_id)
        prot = s.get(ClipProtection, a.clip_id)
        assert clip is not None and prot is not None and clip.status == "queued"
        assert clip.protected_blob_key != before and not ws.blobs.exists(before)  # the old version is gone
        assert any(st <= 16000 and en >= 25600 for st, en in prot.audio_spans)
        # The words spoken in the reported span are masked in the transcript too, not only bleeped.
        pad = ws.settings.redaction_pad_ms * 16
        said = [w[0] for w in prot.words if w[3] < 25600 + pad and w[4] > 16000 - pad]
        assert said and "[REDACTED]" in (clip.redacted_text or "")
        assert clip.redacted_text.split().count("[REDACTED]") == 1  # adjacent words: one placeholder
        kept = clip.redacted_text.replace("[REDACTED]", " ").split()
        assert kept == [w for w in TEXT.split() if w not in said]
    r2 = f.user(ws, "r2")
    assert _lease(ws, r2).clip_id == a.clip_id


def test_passes_typed_before_a_missed_pii_report_lose_their_text_and_their_vote(ws: Workspace) -> None:
    from earmark.models import Annotation

    ws.settings.review_passes = 2
    f.queue_clips(ws, 1)
    r1, r2, r3, r4 = (f.user(ws, f"r{i}") for i in range(1, 5))
    first = _submit(ws, r1, _lease(ws, r1))  # typed while the name was audible
    b = _lease(ws, r2)
    with ws.transaction() as s:
        report_missed_pii(s, actor=r2, assignment_id=b.id, start=1.0, end=1.6)
    ws.process_pending()
    with ws.sessions() as s:
        masked = s.get(Clip, b.clip_id).redacted_text  # type: ignore[union-attr]
        old = s.get(Annotation, first.id)
        assert old is not None and old.kind == "superseded" and old.transcript == "" and old.slots == []
    assert masked is not None and "[REDACTED]" in masked
    for r in (r3, r4):  # the fresh passes agree with each other: no adjudication against the old text
        _submit(ws, r, _lease(ws, r), transcript=masked)
    with ws.sessions() as s:
        assert s.get(Clip, b.clip_id).status == "reviewed"  # type: ignore[union-attr]
        assert s.execute(select(QueueItem).where(QueueItem.queue == "adjudication")).first() is None


def test_adjudication_keeps_the_placeholders_too(ws: Workspace) -> None:
    ws.settings.review_passes = 2
    f.queue_clips(ws, 1, text="call jennifer now")
    r1, r2, senior = f.user(ws, "r1"), f.user(ws, "r2"), f.user(ws, "sen1", Role.senior)
    with ws.sessions() as s:
        masked = s.execute(select(Clip.redacted_text)).scalar_one()
    assert masked == "call [PERSON] now"
    _submit(ws, r1, _lease(ws, r1), transcript=masked, intent="MakeCall")
    _submit(ws, r2, _lease(ws, r2), transcript=masked, intent="SendMessage")  # disagrees
    adj = _lease(ws, senior, "adjudication")
    with pytest.raises(InvalidInput, match="placeholders"):
        _submit(ws, senior, adj, transcript="call jennifer now", intent="MakeCall")
    assert _submit(ws, senior, adj, transcript=masked, intent="MakeCall").kind == "adjudication"


def test_sensitive_flag_moves_the_clip_to_safety_and_blocks_near_sensitive_clips(ws: Workspace) -> None:
    f.queue_clips(ws, 2)
    r = f.user(ws, "r1")
    a = _lease(ws, r)
    with ws.transaction() as s:
        flag_sensitive(s, actor=r, assignment_id=a.id)
    with ws.sessions() as s:
        queues = {
            i.queue: i.state for i in s.execute(select(QueueItem).where(QueueItem.clip_id == a.clip_id)).scalars()
        }
        assert queues == {"general": "withdrawn", "safety": "queued"}
        other = s.execute(select(QueueItem.clip_id).where(QueueItem.clip_id != a.clip_id)).scalar_one()
    with ws.transaction() as s:
        s.get(ClipProtection, other).sensitivity = 0.5  # type: ignore[union-attr]
    with ws.transaction() as s:
        assert lease_next(s, actor=r, max_sensitivity=0.3) is None  # near-sensitive: not today
    safety = f.user(ws, "saf1", Role.safety)
    with ws.transaction() as s:
        lease = escalation.lease_safety(s, actor=safety, max_clips=1, window_minutes=60, lease_seconds=600)
        assert lease.assignment is not None and lease.assignment.clip_id == a.clip_id
    with pytest.raises(InvalidInput, match="note"), ws.transaction() as s:
        escalation.record_outcome(s, actor=safety, assignment_id=lease.assignment.id, outcome="handled", note="")
    with ws.transaction() as s:
        escalation.record_outcome(s, actor=safety, assignment_id=lease.assignment.id, outcome="false_alarm", note="")
    with ws.sessions() as s:
        states = [
            i.queue
            for i in s.execute(
                select(QueueItem).where(QueueItem.clip_id == a.clip_id, QueueItem.state == "queued")
            ).scalars()
        ]
    assert states == ["general"]  # a false alarm goes back to general review
    with ws.transaction() as s:
        assert escalation.lease_safety(s, actor=safety, max_clips=1, window_minutes=60, lease_seconds=600).paused


def test_two_passes_agree_or_go_to_adjudication(ws: Workspace) -> None:
    ws.settings.review_passes = 2
    f.queue_clips(ws, 2)
    r1, r2 = f.user(ws, "r1"), f.user(ws, "r2")
    first = [_lease(ws, r1)]
    _submit(ws, r1, first[0])
    b = _lease(ws, r2)
    assert b.clip_id == first[0].clip_id  # K passes need K different people
    _submit(ws, r2, b)  # agrees
    with ws.sessions() as s:
        assert s.get(Clip, b.clip_id).status == "reviewed"  # type: ignore[union-attr]
    c1, c2 = _lease(ws, r1), _lease(ws, r2)
    _submit(ws, r1, c1, transcript="play shake it off by taylor swift")
    _submit(ws, r2, c2, transcript="play bake it off by tailor swiss", intent="AddToPlaylist")
    with ws.sessions() as s:
        item = s.execute(select(QueueItem).where(QueueItem.queue == "adjudication")).scalar_one()
        assert item.clip_id == c1.clip_id
        figures = agreement(s)
    assert figures["clips"] == 2 and figures["transcript_wer"] > 0 and figures["intent_kappa"] is not None
    senior = f.user(ws, "sen1", Role.senior)
    adj = _lease(ws, senior, "adjudication")
    ann = _submit(ws, senior, adj)
    assert ann.kind == "adjudication"
    with ws.sessions() as s:
        assert s.get(Clip, adj.clip_id).status == "reviewed"  # type: ignore[union-attr]


def test_probation_adds_a_pass(ws: Workspace) -> None:
    f.queue_clips(ws, 1)
    newbie = f.user(ws, "new1")
    with ws.transaction() as s:
        s.merge(newbie).probation = True
    with ws.transaction() as s:
        newbie = s.get(type(newbie), newbie.id)
        a = lease_next(s, actor=newbie)
        submit_annotation(
            s, actor=newbie, assignment_id=a.id, transcript=TEXT, intent="PlayMusic", probation_extra_passes=1
        )  # type: ignore[union-attr]
    veteran = f.user(ws, "vet1")
    assert _lease(ws, veteran).clip_id == a.clip_id  # type: ignore[union-attr]


def test_gold_clips_measure_accuracy(ws: Workspace) -> None:
    ids = f.queue_clips(ws, 2)
    with ws.transaction() as s:
        clip = s.execute(select(Clip).where(Clip.external_id == ids[0])).scalar_one()
        add_gold(s, actor=Actor.cli(), clip=clip, transcript=TEXT, intent="PlayMusic")
    r = f.user(ws, "r1")
    with ws.transaction() as s:
        assert serve_gold(s, user=r) is not None
    a = _lease(ws, r, "gold")
    _submit(ws, r, a, transcript="play bake it of by taylor swift")
    with ws.sessions() as s:
        assert gold_accuracy(s, user_id=r.id) == (1, 0.0)
        assert s.get(Clip, a.clip_id).status == "queued"  # type: ignore[union-attr]  # serving gold changed nothing


def test_help_request_round_trip(ws: Workspace) -> None:
    f.queue_clips(ws, 1)
    r, senior = f.user(ws, "r1"), f.user(ws, "sen1", Role.senior)
    a = _lease(ws, r)
    with pytest.raises(InvalidInput, match="inside the clip"), ws.transaction() as s:
        help.ask_help(s, actor=r, assignment_id=a.id, start=50, end=51, question="?")
    with ws.transaction() as s:
        req = help.ask_help(s, actor=r, assignment_id=a.id, start=0.5, end=1.5, question="is this 'tulsa' or 'tulsi'?")
    with ws.sessions() as s:
        assert [q.id for q in help.open_requests(s)] == [req.id]
    other = f.user(ws, "r2")
    with pytest.raises(NotFound), ws.sessions() as s:
        help.get_request(s, user=other, help_id=req.id)
    with ws.transaction() as s:
        wav = help.help_audio(s, user=senior, help_id=req.id, blobs=ws.blobs, keyring=ws.keyring)
        clip = s.get(Clip, a.clip_id)
        assert clip is not None and clip.protected_sample_rate and clip.protected_num_samples
        whole = clip.protected_num_samples / clip.protected_sample_rate
        help.answer_help(s, actor=senior, help_id=req.id, answer="tulsa")
    # The senior hears the asked second with half a second either side, not the whole clip.
    part, rate = sf.read(io.BytesIO(wav))
    assert rate == clip.protected_sample_rate and part.size / rate == pytest.approx(2.0, abs=0.02)
    assert whole > 2.2  # so the range really is shorter than the clip
    with ws.sessions() as s:
        listen = s.execute(select(AuditEvent).where(AuditEvent.action == "help.audio")).scalar_one()
        assert listen.details["seconds"] == pytest.approx(2.0, abs=0.02)
    with pytest.raises(NotFound), ws.transaction() as s:
        help.help_audio(s, user=senior, help_id=req.id, blobs=ws.blobs, keyring=ws.keyring)  # no link outlives it
    with ws.transaction() as s:
        [item] = help.inbox(s, user=r, assignment_id=a.id)
        assert item.answer == "tulsa"
        assert help.apply_answer(s, actor=r, help_id=req.id).state == "applied"


def _gold(ws: Workspace, n: int) -> list[int]:
    ids = f.queue_clips(ws, n)
    with ws.transaction() as s:
        clips = [s.execute(select(Clip).where(Clip.external_id == i)).scalar_one() for i in ids]
        for clip in clips:
            add_gold(s, actor=Actor.cli(), clip=clip, transcript=TEXT, intent="PlayMusic")
        return [c.id for c in clips]


def test_gold_is_served_only_while_any_reviewer_may_hear_the_clip(ws: Workspace) -> None:
    pii_clip, sensitive_clip, near_clip, fine_clip = _gold(ws, 4)
    r, other = f.user(ws, "r1"), f.user(ws, "r2")
    for clip_id, report in ((pii_clip, "pii"), (sensitive_clip, "sensitive")):
        with ws.transaction() as s:
            a = s.merge(lease_next(s, actor=other))
            while a.clip_id != clip_id:  # give back the others until this one comes up
                skip_assignment(s, actor=other, assignment_id=a.id, reason="too_hard")
                a = lease_next(s, actor=other)
            if report == "pii":
                report_missed_pii(s, actor=other, assignment_id=a.id, start=0.5, end=1.0)
            else:
                flag_sensitive(s, actor=other, assignment_id=a.id)
    with ws.transaction() as s:
        s.get(ClipProtection, near_clip).sensitivity = 0.5  # type: ignore[union-attr]
    served = set()
    with ws.transaction() as s:
        while (item := serve_gold(s, user=r, max_sensitivity=0.3)) is not None:
            served.add(item.clip_id)
            a = lease_next(s, actor=r, queue="gold")
            assert a is not None
            submit_annotation(s, actor=r, assignment_id=a.id, transcript=TEXT, intent="PlayMusic")
    # Back in the pipeline after a missed-PII report, in the safety queue, or too sensitive today:
    # never served as gold.
    assert served == {fine_clip}
    with ws.transaction() as s:
        assert serve_gold(s, user=f.user(ws, "r3"), max_sensitivity=None).clip_id in {near_clip, fine_clip}  # type: ignore[union-attr]


def test_a_flagged_clip_stays_in_safety_and_a_later_consent_withdrawal_reaches_it(ws: Workspace) -> None:
    from earmark.consent import set_consent
    from earmark.types import Consent

    f.queue_clips(ws, 1)
    r = f.user(ws, "r1")
    a = _lease(ws, r)
    with ws.transaction() as s:
        flag_sensitive(s, actor=r, assignment_id=a.id)
    with ws.sessions() as s:
        assert s.get(Clip, a.clip_id).status == "queued"  # type: ignore[union-attr]  # waiting in safety
    with ws.transaction() as s:
        set_consent(s, actor=Actor.cli(), account_id="acct-q0", human_review=Consent.deny)
    with ws.sessions() as s:
        rows = s.execute(select(QueueItem.queue, QueueItem.state).where(QueueItem.clip_id == a.clip_id))
        states = {queue: state for queue, state in rows}
        assert states == {"general": "withdrawn", "safety": "withdrawn"}
        assert s.get(Clip, a.clip_id).status == "withdrawn"  # type: ignore[union-attr]


@pytest.mark.parametrize("report", ["pii", "sensitive"])
def test_a_withdrawn_clip_closes_its_help_requests(ws: Workspace, report: str) -> None:
    f.queue_clips(ws, 1)
    r, senior = f.user(ws, "r1"), f.user(ws, "sen1", Role.senior)
    a = _lease(ws, r)
    with ws.transaction() as s:
        req = help.ask_help(s, actor=r, assignment_id=a.id, start=0.5, end=1.5, question="what is this word?")
    with ws.transaction() as s:
        if report == "pii":
            report_missed_pii(s, actor=r, assignment_id=a.id, start=0.5, end=1.0)
        else:
            flag_sensitive(s, actor=r, assignment_id=a.id)
    with pytest.raises(NotFound), ws.transaction() as s:
        help.help_audio(s, user=senior, help_id=req.id, blobs=ws.blobs, keyring=ws.keyring)
    with ws.sessions() as s:
        assert help.open_requests(s) == []
        assert s.get(type(req), req.id).state == "closed"  # type: ignore[union-attr]


def test_two_submits_of_one_pass_at_once_store_one_annotation(ws: Workspace) -> None:
    """A double click that reaches two workers: the second submit waits for the first and returns
    its annotation (on PostgreSQL it used to fail on the unique assignment constraint)."""
    import threading
    import time

    from earmark.models import Annotation

    f.queue_clips(ws, 1)
    r = f.user(ws, "r1")
    a = _lease(ws, r)
    first_stored, results = threading.Event(), {}

    def second() -> None:
        first_stored.wait()
        results["second"] = _submit(ws, r, a).id

    t = threading.Thread(target=second)
    t.start()
    with ws.transaction() as s:
        results["first"] = submit_annotation(s, actor=r, assignment_id=a.id, transcript=TEXT, intent="PlayMusic").id
        first_stored.set()
        time.sleep(0.3)  # lets the second submit reach the row lock before this one commits (ordering only)
    t.join(timeout=30)
    assert results["second"] == results["first"]
    with ws.sessions() as s:
        assert len(s.execute(select(Annotation.id)).scalars().all()) == 1


def test_two_safety_outcomes_of_one_clip_at_once_store_one(ws: Workspace) -> None:
    """A double click on "false alarm": one outcome, one return to general review."""
    import threading
    import time

    from sqlalchemy import func

    from earmark.models import SafetyOutcome

    f.queue_clips(ws, 1)
    r, safety = f.user(ws, "r1"), f.user(ws, "saf1", Role.safety)
    with ws.transaction() as s:
        flag_sensitive(s, actor=r, assignment_id=lease_next(s, actor=r).id)  # type: ignore[union-attr]
    with ws.transaction() as s:
        lease = escalation.lease_safety(s, actor=safety, max_clips=5, window_minutes=60, lease_seconds=600)
    assert lease.assignment is not None
    aid, first_stored, results = lease.assignment.id, threading.Event(), {}

    def outcome(key: str) -> None:
        with ws.transaction() as s:
            results[key] = escalation.record_outcome(
                s, actor=safety, assignment_id=aid, outcome="false_alarm", note=""
            ).id
            if key == "first":
                first_stored.set()
                time.sleep(0.3)  # lets the second reach the row lock before this commits (ordering only)

    def second() -> None:
        first_stored.wait()
        outcome("second")

    t = threading.Thread(target=second)
    t.start()
    outcome("first")
    t.join(timeout=30)
    assert results["second"] == results["first"]
    with ws.sessions() as s:
        assert s.execute(select(func.count()).select_from(SafetyOutcome)).scalar_one() == 1
        general = (
            select(func.count()).select_from(QueueItem).where(QueueItem.queue == "general", QueueItem.state == "queued")
        )
        assert s.execute(general).scalar_one() == 1


def test_agreement_figures() -> None:
    assert cohen_kappa([("a", "a"), ("b", "b")]) == 1.0
    assert cohen_kappa([]) is None
    assert slot_f1([({("artist", "x")}, {("artist", "x")}), ({("song", "y")}, set())]) == round(2 / 3, 4)


def test_inventory_file_errors_name_the_problem(ws: Workspace, tmp_path: Path) -> None:
    bad = tmp_path / "inv.json"
    bad.write_text(json.dumps({"intents": [], "slots": []}))
    with pytest.raises(InvalidInput, match="not a valid inventory"), ws.transaction() as s:
        import_inventory(s, actor=Actor.cli(), path=bad)
