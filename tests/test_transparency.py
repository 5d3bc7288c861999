from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from earmark.consent import set_consent
from earmark.queues import lease_next
from earmark.review import assignment_audio, submit_annotation
from earmark.transparency import build_report, render_html
from earmark.types import Actor, Consent, Role
from earmark.workspace import Workspace
from tests import factories as f


def _report(ws: Workspace, account: str) -> dict:  # type: ignore[type-arg]
    with ws.transaction() as s:
        return build_report(s, actor=Actor.cli(), account_id=account, secret=ws.secret)


def test_report_lists_recordings_samples_and_every_listen_by_role(ws: Workspace) -> None:
    ids = f.queue_clips(ws, 2, accounts=1)
    f.ingest(ws, 1, account_id="acct-q0")  # stored, never sampled
    reviewer = f.user(ws, "alice", Role.reviewer)
    with ws.transaction() as s:
        a = lease_next(s, actor=reviewer)
        assert a is not None
        for _ in range(2):  # the page opened, then reloaded: one person, the audio sent twice
            assignment_audio(s, user=reviewer, assignment_id=a.id, blobs=ws.blobs, keyring=ws.keyring)
        submit_annotation(s, actor=reviewer, assignment_id=a.id, transcript="play music", intent="PlayMusic")
    report = _report(ws, "acct-q0")
    assert report["known"] and report["recordings"]["stored"] == 3
    assert {s["clip_id"] for s in report["sampled_for_human_review"]} == set(ids)
    assert "at random" in report["sampled_for_human_review"][0]["why"]
    [listen] = report["human_listens"]
    assert listen["role"] == "reviewer" and listen["team"] == "general review team" and listen["times"] == 2
    assert "alice" not in str(report)  # never names
    assert report["annotations_kept"]["count"] == 1
    html = render_html(report)
    assert "general review team" in html and "<script" not in html


def test_a_seniors_listen_through_a_help_request_is_reported_and_outlives_the_request(ws: Workspace) -> None:
    from earmark import help
    from earmark.models import HelpRequest, utcnow

    [clip_id] = f.queue_clips(ws, 1)
    reviewer, senior = f.user(ws, "r1"), f.user(ws, "sen1", Role.senior)
    with ws.transaction() as s:
        a = lease_next(s, actor=reviewer)
        assert a is not None
        assignment_audio(s, user=reviewer, assignment_id=a.id, blobs=ws.blobs, keyring=ws.keyring)
        req = help.ask_help(s, actor=reviewer, assignment_id=a.id, start=0.1, end=0.5, question="tulsa or tulsi?")
    with ws.transaction() as s:
        help.help_audio(s, user=senior, help_id=req.id, blobs=ws.blobs, keyring=ws.keyring)
    listens = [(x["clip_id"], x["role"]) for x in _report(ws, "acct-q0")["human_listens"]]
    assert listens == [(clip_id, "reviewer"), (clip_id, "senior")]
    # Annotation retention deletes the help request; the listen stays in the report.
    ws.settings.retention_annotation_days = 0
    ws.run_retention(actor=Actor.cli(), now=utcnow() + timedelta(days=1))
    with ws.sessions() as s:
        assert s.get(HelpRequest, req.id) is None
    assert [(x["clip_id"], x["role"]) for x in _report(ws, "acct-q0")["human_listens"]] == listens


def test_unknown_account_gets_an_empty_report(ws: Workspace) -> None:
    report = _report(ws, "never-seen")
    assert report["known"] is False and report["human_listens"] == [] and report["recordings"]["stored"] == 0
    assert "no recordings" in render_html(report)
    f.queue_clips(ws, 1)
    known = _report(ws, "acct-q0")
    # The same shape as a known account's, so a caller reads both alike.
    assert known.keys() == report.keys() and known["recordings"].keys() == report["recordings"].keys()
    assert known["deleted"].keys() == report["deleted"].keys() and report["recordings"]["total_received"] == 0


def test_why_the_safety_team_heard_a_recording_outlives_transcript_retention(ws: Workspace) -> None:
    """The reason came from the pipeline's record, which transcript retention deletes: the report
    then said only "it may hold distress". The audit log keeps it."""
    from earmark.models import utcnow

    f.ingest_speech(ws, "somebody help me call the police", account_id="p1")
    f.allow(ws, "p1")
    f.sample_all(ws)
    [result] = ws.process_pending()
    assert result.outcome == "safety"
    screened = "the safety team, because automatic screening found it may hold distress or danger"
    assert _report(ws, "p1")["sampled_for_human_review"][0]["sent_to"] == [screened]
    ws.run_retention(actor=Actor.cli(), now=utcnow() + timedelta(days=100))  # the pipeline's record goes
    assert _report(ws, "p1")["sampled_for_human_review"][0]["sent_to"] == [screened]


def test_an_id_no_account_can_have_is_refused(ws: Workspace) -> None:
    import pytest

    from earmark.errors import InvalidInput

    for bad in ("", " acct-q0 ", "x" * 129, "acct\x00", "-leading-dash", "acct/../x"):
        with pytest.raises(InvalidInput, match="not an account id"):
            _report(ws, bad)


def test_the_report_says_which_team_heard_why_and_what_was_written_and_the_consent_in_effect(ws: Workspace) -> None:
    from earmark import escalation, help
    from earmark.review import flag_sensitive

    f.queue_clips(ws, 2)
    reviewer, senior = f.user(ws, "r1"), f.user(ws, "sen1", Role.senior)
    safety = f.user(ws, "saf1", Role.safety)
    with ws.transaction() as s:
        first = lease_next(s, actor=reviewer)
        assert first is not None
        help.ask_help(s, actor=reviewer, assignment_id=first.id, start=0.1, end=0.5, question="tulsa or tulsi?")
        submit_annotation(s, actor=reviewer, assignment_id=first.id, transcript="play music", intent="PlayMusic")
    with ws.transaction() as s:
        second = lease_next(s, actor=reviewer)
        assert second is not None
        flag_sensitive(s, actor=reviewer, assignment_id=second.id)
    with ws.transaction() as s:
        lease = escalation.lease_safety(s, actor=safety, max_clips=10, window_minutes=60, lease_seconds=600)
        assert lease.assignment is not None
        escalation.record_outcome(s, actor=safety, assignment_id=lease.assignment.id, outcome="handled", note="ok")
    del senior
    report = _report(ws, "acct-q0")
    sent = {x["clip_id"]: x["sent_to"] for x in report["sampled_for_human_review"]}
    assert sorted(map(tuple, sent.values())) == [
        ("the general review team",),
        ("the general review team", "the safety team, because a reviewer found it may hold distress or danger"),
    ]
    kept = report["annotations_kept"]
    assert (kept["count"], kept["help_questions"], kept["safety_notes"]) == (1, 1, 1)
    html = render_html(report)
    assert "1 question(s) a reviewer asked senior reviewers" in html and "1 note(s) the safety team wrote" in html
    assert "Training use of your own voice: <b>not given" in html
    # An account that never answered, under a program that reviews unless told not to: says so.
    with ws.transaction() as s:
        unknown_consent = build_report(
            s, actor=Actor.cli(), account_id="acct-q0", secret=ws.secret, consent_default=Consent.allow
        )
    assert unknown_consent["human_review_consent"] == "allow"  # this account did answer
    f.ingest(ws, 1, account_id="acct-silent")
    with ws.transaction() as s:
        silent = build_report(
            s, actor=Actor.cli(), account_id="acct-silent", secret=ws.secret, consent_default=Consent.allow
        )
    assert silent["human_review_consent"].startswith("allow (you gave no answer")
    assert _report(ws, "acct-silent")["human_review_consent"] == "not given (review not allowed)"


def test_report_after_erasure_says_what_was_deleted(ws: Workspace) -> None:
    f.queue_clips(ws, 2)
    ws.erase(actor=Actor.cli(), account_id="acct-q0")
    report = _report(ws, "acct-q0")
    assert report["known"] and report["erased_on"] and report["deleted"]["erased_recordings"] == 2
    assert report["recordings"]["stored"] == 0


def test_report_lists_the_exports_that_hold_the_accounts_recordings(ws: Workspace, tmp_path: Path) -> None:
    from earmark.export import run_export
    from tests.test_export import _reviewed

    _reviewed(ws, 2, accounts=2)
    run_export(ws, actor=Actor.cli(), fmt="massive", out=tmp_path / "nlu-2026-11")
    with ws.transaction() as s:
        report = build_report(s, actor=Actor.cli(), account_id="acct-q0", secret=ws.secret)
    assert report["exports"] == [
        {
            "name": "nlu-2026-11",
            "format": "massive",
            "created_on": report["exports"][0]["created_on"],
            "recordings": 1,
            "to_be_removed": False,
            "recordings_to_be_removed": 0,
        }
    ]
    with ws.transaction() as s:
        set_consent(s, actor=Actor.cli(), account_id="acct-q0", human_review=Consent.deny)
    with ws.transaction() as s:
        report = build_report(s, actor=Actor.cli(), account_id="acct-q0", secret=ws.secret)
    assert report["exports"][0]["to_be_removed"] is True and report["exports"][0]["recordings_to_be_removed"] == 1
    assert "1 of them being removed from it" in render_html(report)
    # The same export is marked for pruning, but nothing of the other household leaves it.
    with ws.transaction() as s:
        other = build_report(s, actor=Actor.cli(), account_id="acct-q1", secret=ws.secret)
    assert other["exports"][0]["to_be_removed"] is False and "being removed" not in render_html(other)
    # After the prune the recording is out of the dataset, and the report still says it was in it
    # (copies made before may exist); the other household's stays where it is.
    from earmark.export import prune_exports

    assert prune_exports(ws, actor=Actor.cli()).items_removed == 1
    with ws.transaction() as s:
        report = build_report(s, actor=Actor.cli(), account_id="acct-q0", secret=ws.secret)
    assert report["exports"] == []
    [left] = report["exports_left"]
    assert (left["name"], left["recordings"], left["how"]) == ("nlu-2026-11", 1, "taken out of the dataset")
    assert left["removed_on"] is not None
    assert "taken out of the dataset on" in render_html(report)
    with ws.transaction() as s:
        other = build_report(s, actor=Actor.cli(), account_id="acct-q1", secret=ws.secret)
    assert other["exports"][0]["recordings"] == 1 and other["exports_left"] == []
    # The folder deleted and forgotten later: acct-q0's recording was taken out before, and stays
    # so; acct-q1's left with the folder.
    import shutil

    from earmark.export import forget_export

    shutil.rmtree(tmp_path / "nlu-2026-11")
    with ws.transaction() as s:
        forget_export(s, actor=Actor.cli(), export=str(tmp_path / "nlu-2026-11"))
        report = build_report(s, actor=Actor.cli(), account_id="acct-q0", secret=ws.secret)
        other = build_report(s, actor=Actor.cli(), account_id="acct-q1", secret=ws.secret)
    assert [(e["how"], e["recordings"]) for e in report["exports_left"]] == [("taken out of the dataset", 1)]
    assert [(e["how"], e["recordings"]) for e in other["exports_left"]] == [("the dataset was deleted", 1)]
    assert other["exports"] == [] and other["exports_left"][0]["removed_on"] is not None


def test_a_recording_left_out_of_a_newer_version_stays_in_the_history(ws: Workspace, tmp_path: Path) -> None:
    """A forced new version instead of a prune marked v1 superseded: the report then said no
    dataset had ever held the recording, though v1 did and copies may exist."""
    from earmark.export import run_export
    from tests.test_export import _reviewed

    _reviewed(ws, 2, accounts=2)
    run_export(ws, actor=Actor.cli(), fmt="massive", out=tmp_path / "a")
    with ws.transaction() as s:
        set_consent(s, actor=Actor.cli(), account_id="acct-q0", human_review=Consent.deny)
    run_export(ws, actor=Actor.cli(), fmt="massive", out=tmp_path / "a", force=True)
    report = _report(ws, "acct-q0")
    assert report["exports"] == []
    [left] = report["exports_left"]
    assert (left["name"], left["recordings"], left["how"]) == ("a", 1, "taken out of the dataset")
    assert left["removed_on"] is not None
    other = _report(ws, "acct-q1")  # in both versions: held now, not left
    assert [e["name"] for e in other["exports"]] == ["a"] and other["exports_left"] == []


def test_an_undecided_account_under_an_allowing_default_is_not_told_its_recordings_leave(
    ws: Workspace, tmp_path: Path
) -> None:
    """The report counted every account that never answered as leaving, while the prune (reading
    the default, allow) keeps its clips."""
    from sqlalchemy import update

    from earmark.export import run_export
    from earmark.models import Account
    from tests.test_export import _reviewed

    _reviewed(ws, 2, accounts=2)
    with ws.transaction() as s:  # acct-q1 never answered; the program's default allows
        s.execute(update(Account).where(Account.external_id == "acct-q1").values(human_review=None))
    ws.settings.consent_default = "allow"
    run_export(ws, actor=Actor.cli(), fmt="massive", out=tmp_path / "nlu")
    with ws.transaction() as s:
        set_consent(s, actor=Actor.cli(), account_id="acct-q0", human_review=Consent.deny)
    with ws.transaction() as s:
        report = build_report(
            s, actor=Actor.cli(), account_id="acct-q1", secret=ws.secret, consent_default=Consent.allow
        )
    assert report["exports"][0]["to_be_removed"] is False


def test_an_account_that_records_again_after_erasure_keeps_the_erased_history(ws: Workspace) -> None:
    """The report of a reused account id showed no erasure and none of the earlier listens."""
    f.queue_clips(ws, 1)
    reviewer = f.user(ws, "alice", Role.reviewer)
    with ws.transaction() as s:
        a = lease_next(s, actor=reviewer)
        assert a is not None
        assignment_audio(s, user=reviewer, assignment_id=a.id, blobs=ws.blobs, keyring=ws.keyring)
    ws.erase(actor=Actor.cli(), account_id="acct-q0")
    erased = _report(ws, "acct-q0")
    assert erased["erased_on"] and len(erased["human_listens"]) == 1
    f.ingest(ws, 1, account_id="acct-q0")  # the customer records again
    report = _report(ws, "acct-q0")
    assert report["erased_on"] is None and report["earlier_erasures"] == [erased["erased_on"]]
    assert report["human_listens"] == erased["human_listens"]
    assert report["recordings"]["by_status"] == {"erased": 1, "stored": 1}
    assert "Earlier data of this account was erased on" in render_html(report)


def test_a_listen_by_the_wakeword_team_is_reported_as_theirs(ws: Workspace) -> None:
    from earmark import wakeword

    f.wake_clips(ws, 1, account="acct-w")
    team = f.user(ws, "w1", Role.wakeword)
    with ws.transaction() as s:
        a = wakeword.lease(s, actor=team, lease_seconds=600, consent_default="deny")
        assert a is not None
        assignment_audio(s, user=team, assignment_id=a.id, blobs=ws.blobs, keyring=ws.keyring)
        wakeword.record_answer(s, actor=team, assignment_id=a.id, label="media")
    report = _report(ws, "acct-w")
    [listen] = report["human_listens"]
    assert listen["role"] == "wakeword" and listen["team"].startswith("wake-word team")
    # The answer holds no words: the report does not claim a transcript is kept.
    assert report["annotations_kept"] == {
        "count": 1, "fields": ["what woke the device"], "help_questions": 0, "safety_notes": 0,
    }  # fmt: skip
    [sampled] = report["sampled_for_human_review"]
    assert sampled["sent_to"] == [
        "the wake-word team, because nobody seemed to speak to the assistant after it started listening"
    ]
    # The team of the listen is the listener's role then, not now.
    from earmark import auth

    with ws.transaction() as s:
        auth.change_role(s, actor=Actor.cli(), username="w1", role=Role.reviewer)
    [listen] = _report(ws, "acct-w")["human_listens"]
    assert listen["role"] == "wakeword"
