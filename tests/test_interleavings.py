"""A customer's "no" against everything else that touches the same clips, at every interleaving.

The race tests elsewhere each pin one interleaving someone thought of. Here Hypothesis picks them:
each example copies a prepared workspace (PostgreSQL's `CREATE DATABASE … TEMPLATE`, the files by
copy), runs one operation in this thread up to its n-th SQL statement, starts the other operation in
a second thread and lets it run until it waits on a lock or ends, then lets the first finish. What
must hold whatever the order is then checked (`_check`):

- neither operation failed with anything but a domain error (a deadlock, a serialization failure,
  stale data or an assertion is a bug: the customer's "no" or a reviewer's work was lost);
- after a withdrawal, no clip of the account waits in any queue, in review or in the pipeline;
- after an erasure, nothing of the account is left: no audio, text, annotation, gold answer, help
  question or key;
- no blob file is left that no row points at, and the audit chain verifies.

PostgreSQL only (SQLite runs one writer at a time). `EARMARK_INTERLEAVINGS=N` runs N examples per
test instead of the default (a longer hunt: `EARMARK_INTERLEAVINGS=300 bash scripts/test -k interleav`).
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as note_event
from hypothesis import strategies as st
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.engine import make_url

from earmark import audit, auth, keys, wakeword
from earmark.config import load_settings
from earmark.errors import EarmarkError
from earmark.escalation import lease_safety, record_outcome
from earmark.export import prune_exports, run_export
from earmark.gold import pick_gold, remove_gold
from earmark.help import answer_help, apply_answer, ask_help
from earmark.metrics import refresh_errors
from earmark.models import (
    Account,
    AccountKey,
    Annotation,
    Assignment,
    Clip,
    ClipError,
    GoldAnswer,
    HelpRequest,
    QueueItem,
    User,
    WakeAnswer,
    utcnow,
)
from earmark.quality import serve_gold
from earmark.queues import lease_next
from earmark.review import flag_sensitive, report_missed_pii, skip_assignment, submit_annotation
from earmark.types import Actor, ClipStatus, Consent, QueueState, Role
from earmark.workspace import Workspace, init_workspace, open_workspace
from tests import factories as f
from tests.conftest import PG_MODE, PG_URL
from tests.fakes import fast_components

pytestmark = pytest.mark.skipif(PG_MODE == "skip", reason="interleavings need PostgreSQL")

VICTIM, BYSTANDER = "acct-q0", "acct-q1"
EXAMPLES = int(os.environ.get("EARMARK_INTERLEAVINGS", "60"))
JOIN_SECONDS = 60


@dataclass(frozen=True)
class Scenario:
    """A prepared workspace: its database (a template) and its home folder, and the ids in it."""

    database: str
    home: Path
    held: str  # r1's assignment on a queued clip of the victim, with an open help question
    help_id: str


def _admin():  # type: ignore[no-untyped-def]
    return create_engine(PG_URL, isolation_level="AUTOCOMMIT")


def _url(database: str) -> str:
    return make_url(PG_URL).set(database=database).render_as_string(hide_password=False)


def _prepare(ws: Workspace) -> tuple[str, str]:
    """Both households: two clips reviewed by two agreeing passes (one gold clip each), four clips
    queued, and one sampled clip still in the pipeline; r1 holds a victim clip and asked about it."""
    ws.settings.review_passes = 2
    f.queue_clips(ws, 2, accounts=2)
    f.review_all(ws, f.user(ws, "r2"), f.user(ws, "r3"))
    # A victim clip whose two passes disagree: it waits for a senior's adjudication.
    f.queue_clips(ws, 1, accounts=1)
    f.review_all(ws, _user(ws, "r2"), _user(ws, "r3"), transcript=lambda clip_id, u: f"play {u.username} please")
    with ws.transaction() as s:
        assert len(pick_gold(s, actor=Actor.cli(), n=2, consent_default=Consent.deny, seed=0)) == 2
    f.queue_clips(ws, 4, accounts=2)
    for name, role in (("r1", Role.reviewer), ("r4", Role.reviewer), ("r5", Role.reviewer), ("sen1", Role.senior)):
        f.user(ws, name, role)
    r1 = _user(ws, "r1")
    with ws.transaction() as s:
        victim = s.execute(select(Account.id).where(Account.external_id == VICTIM)).scalar_one()
        while True:  # r1 takes queued clips until one is the victim's (the others go back)
            a = lease_next(s, actor=r1)
            assert a is not None
            clip = s.get(Clip, a.clip_id)
            assert clip is not None
            if clip.account_id == victim:
                break
            skip_assignment(s, actor=r1, assignment_id=a.id, reason="too_hard")
        held = a.id
        help_id = ask_help(s, actor=r1, assignment_id=held, start=0.1, end=0.6, question="taylor or tailor?").id
    f.user(ws, "saf1", Role.safety)
    r6 = f.user(ws, "r6")
    with ws.transaction() as s:  # a bystander's clip waits in the safety queue (not r1's clip)
        held_clip = s.get(Assignment, held)
        assert held_clip is not None
        while True:
            flagged = lease_next(s, actor=r6)
            assert flagged is not None
            clip = s.get(Clip, flagged.clip_id)
            assert clip is not None
            if clip.account_id != victim and clip.id != held_clip.clip_id:
                break
            skip_assignment(s, actor=r6, assignment_id=flagged.id, reason="too_hard")
        flag_sensitive(s, actor=r6, assignment_id=flagged.id)
    f.wake_clips(ws, 1, account=VICTIM)  # a victim clip without speech waits for the wake-word team
    f.user(ws, "w1", Role.wakeword)
    f.ingest_speech(ws, "call jennifer on her mobile", account_id=VICTIM)
    f.sample_all(ws)  # sampled: waits for the pipeline
    f.ingest_speech(ws, "turn off the lights", account_id=VICTIM)  # stored, not sampled yet
    return held, help_id


@pytest.fixture(scope="module")
def scenario(pg_template: str | None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    assert pg_template is not None
    name = f"earmark_il_{uuid.uuid4().hex[:10]}"
    admin = _admin()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    home = tmp_path_factory.mktemp("interleavings") / "home"
    ws, _ = init_workspace(
        load_settings(home, database_url=_url(name), blob_fsync=False), admin_username="admin", admin_password=None
    )
    ws.parts = fast_components()
    try:
        held, help_id = _prepare(ws)
    finally:
        ws.close()
    yield Scenario(name, home, held, help_id)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@contextmanager
def _copy(scenario: Scenario, tmp: Path) -> Iterator[Workspace]:
    """A workspace of its own, equal to the scenario's."""
    name = f"earmark_ilx_{uuid.uuid4().hex[:10]}"
    admin = _admin()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{scenario.database}"'))
    home = tmp / name
    shutil.copytree(scenario.home, home)
    ws = open_workspace(load_settings(home, database_url=_url(name), blob_fsync=False))
    ws.parts = fast_components()
    ws.settings.review_passes = 2
    try:
        yield ws
    finally:
        ws.close()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        shutil.rmtree(home, ignore_errors=True)


def _user(ws: Workspace, username: str) -> User:
    with ws.sessions() as s:
        user = s.execute(select(User).where(User.username == username)).scalar_one()
        s.expunge(user)
        return user


# -- the operations --------------------------------------------------------------------------------


def _withdraw(ws: Workspace, sc: Scenario) -> None:
    ws.set_consent(actor=Actor.cli(), account_id=VICTIM, human_review=Consent.deny)


def _erase(ws: Workspace, sc: Scenario) -> None:
    ws.erase(actor=Actor.cli(), account_id=VICTIM)


def _lease_then_submit(ws: Workspace, username: str, queue: str) -> None:
    """As the workbench does it: the lease and the submit are two transactions."""
    user = _user(ws, username)
    with ws.transaction() as s:
        a = lease_next(s, actor=user, queue=queue)
        assignment = a.id if a is not None else None
    if assignment is not None:
        with ws.transaction() as s:
            submit_annotation(s, actor=user, assignment_id=assignment, transcript="play it", intent="PlayMusic")


def _lease_and_submit(ws: Workspace, sc: Scenario) -> None:
    _lease_then_submit(ws, "r4", "general")


def _submit_held(ws: Workspace, sc: Scenario) -> None:
    with ws.transaction() as s:
        submit_annotation(s, actor=_user(ws, "r1"), assignment_id=sc.held, transcript="play it", intent="PlayMusic")


def _report_pii(ws: Workspace, sc: Scenario) -> None:
    with ws.transaction() as s:
        report_missed_pii(s, actor=_user(ws, "r1"), assignment_id=sc.held, start=0.1, end=0.5)
    ws.process_pending()


def _flag(ws: Workspace, sc: Scenario) -> None:
    with ws.transaction() as s:
        flag_sensitive(s, actor=_user(ws, "r1"), assignment_id=sc.held)


def _ask(ws: Workspace, sc: Scenario) -> None:
    with ws.transaction() as s:
        ask_help(s, actor=_user(ws, "r1"), assignment_id=sc.held, start=0.2, end=0.4, question="again?")


def _answer(ws: Workspace, sc: Scenario) -> None:
    with ws.transaction() as s:
        answer_help(s, actor=_user(ws, "sen1"), help_id=sc.help_id, answer="taylor")


def _serve_gold(ws: Workspace, sc: Scenario) -> None:
    r5 = _user(ws, "r5")
    with ws.transaction() as s:
        item = serve_gold(s, user=r5)
        if item is not None:
            lease_next(s, actor=r5, queue="gold", only_item=item.id)


def _pick_gold(ws: Workspace, sc: Scenario) -> None:
    with ws.transaction() as s:
        pick_gold(s, actor=Actor.cli(), n=5, per_account=5, consent_default=Consent.deny, seed=1)


def _pipeline(ws: Workspace, sc: Scenario) -> None:
    for result in ws.process_pending():
        assert result.reason != "database_busy", result  # a conflict the database rolled back


def _sample(ws: Workspace, sc: Scenario) -> None:
    f.sample_all(ws, seed=1)


def _ingest(ws: Workspace, sc: Scenario) -> None:
    f.ingest_speech(ws, "what time is it", account_id=VICTIM)


def _remove_gold(ws: Workspace, sc: Scenario) -> None:
    """As the gold page and `earmark gold remove` do it: one clip per transaction."""
    with ws.sessions() as s:
        gold = s.execute(select(GoldAnswer.clip_id).order_by(GoldAnswer.clip_id)).scalars().all()
    for clip_id in gold:
        with ws.transaction() as s:
            remove_gold(s, actor=Actor.cli(), clip_id=clip_id)


def _adjudicate(ws: Workspace, sc: Scenario) -> None:
    _lease_then_submit(ws, "sen1", "adjudication")


def _answer_and_apply(ws: Workspace, sc: Scenario) -> None:
    with ws.transaction() as s:
        answer_help(s, actor=_user(ws, "sen1"), help_id=sc.help_id, answer="taylor")
    with ws.transaction() as s:
        apply_answer(s, actor=_user(ws, "r1"), help_id=sc.help_id)


def _safety_outcome(ws: Workspace, sc: Scenario) -> None:
    """As the safety page does it: a lease, then the outcome, two transactions."""
    saf = _user(ws, "saf1")
    with ws.transaction() as s:
        lease = lease_safety(s, actor=saf, max_clips=100, window_minutes=60, lease_seconds=600)
        assignment = lease.assignment.id if lease.assignment is not None else None
    if assignment is not None:
        with ws.transaction() as s:
            record_outcome(s, actor=saf, assignment_id=assignment, outcome="false_alarm", note="")


def _wake_answer(ws: Workspace, sc: Scenario) -> None:
    """As the wake-word page does it: a lease, then the answer, two transactions."""
    w1 = _user(ws, "w1")
    with ws.transaction() as s:
        a = wakeword.lease(s, actor=w1, lease_seconds=600, consent_default="deny")
        assignment = a.id if a is not None else None
    if assignment is not None:
        with ws.transaction() as s:
            wakeword.record_answer(s, actor=w1, assignment_id=assignment, label="media")


def _role_change(ws: Workspace, sc: Scenario) -> None:
    """An admin moves r1, who holds a victim clip and asked about it, to the wake-word team: the
    clip goes back to its queue, the question is closed."""
    with ws.transaction() as s:
        auth.change_role(s, actor=Actor.cli(), username="r1", role=Role.wakeword)


def _skip_held(ws: Workspace, sc: Scenario) -> None:
    with ws.transaction() as s:
        skip_assignment(s, actor=_user(ws, "r1"), assignment_id=sc.held, reason="too_hard")


def _export_prune(ws: Workspace, sc: Scenario) -> None:
    prune_exports(ws, actor=Actor.cli())


def _retention(ws: Workspace, sc: Scenario) -> None:
    ws.run_retention(actor=Actor.cli(), now=utcnow() + timedelta(days=3650))


def _export(ws: Workspace, sc: Scenario) -> None:
    run_export(ws, actor=Actor.cli(), fmt="lhotse", out=ws.settings.home / "exports" / uuid.uuid4().hex)


def _metrics(ws: Workspace, sc: Scenario) -> None:
    with ws.transaction() as s:
        refresh_errors(s)


def _rotate(ws: Workspace, sc: Scenario) -> None:
    key_file = ws.settings.key_file
    with ws.transaction() as s:
        new_id, new, _n = keys.rotate_workspace_key(s, actor=Actor.cli(), keyring=ws.keyring, key_file=key_file)
    keys.finish_rotation(key_file, new_id, new)


NO: dict[str, Callable[[Workspace, Scenario], None]] = {"withdraw": _withdraw, "erase": _erase}
OTHERS: dict[str, Callable[[Workspace, Scenario], None]] = {
    "lease_and_submit": _lease_and_submit,
    "submit_held": _submit_held,
    "report_pii": _report_pii,
    "flag": _flag,
    "ask": _ask,
    "answer": _answer,
    "serve_gold": _serve_gold,
    "pick_gold": _pick_gold,
    "remove_gold": _remove_gold,
    "safety_outcome": _safety_outcome,
    "wake_answer": _wake_answer,
    "role_change": _role_change,
    "adjudicate": _adjudicate,
    "answer_and_apply": _answer_and_apply,
    "skip_held": _skip_held,
    "export_prune": _export_prune,
    "pipeline": _pipeline,
    "sample": _sample,
    "ingest": _ingest,
    "retention": _retention,
    "export": _export,
    "metrics": _metrics,
    "rotate": _rotate,
    "withdraw": _withdraw,
    "erase": _erase,
}


# -- running two at once ---------------------------------------------------------------------------


class _Op(threading.Thread):
    def __init__(self, name: str, run: Callable[[], None]) -> None:
        super().__init__(daemon=True, name=name)
        self._run = run
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # kept for the check
            self.error = exc


def _interleave(ws: Workspace, first: _Op, second: _Op, at: int) -> None:
    """Run `first` until just before its `at`-th SQL statement, then `second` until it waits on a
    lock or ends, then both to the end."""
    count = 0
    lock = threading.Lock()

    def hook(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        nonlocal count
        if threading.current_thread() is not first:
            return
        with lock:
            count += 1
            start = count == at
        if start:
            second.start()
            f.wait_for_lock_wait(ws, [second])

    event.listen(ws.engine, "before_cursor_execute", hook)
    try:
        first.start()
        first.join(JOIN_SECONDS)
        if not second.is_alive() and second.ident is None:  # `first` ended before its at-th statement
            second.start()
        second.join(JOIN_SECONDS)
        first.join(JOIN_SECONDS)
    finally:
        event.remove(ws.engine, "before_cursor_execute", hook)
    assert not first.is_alive() and not second.is_alive(), "an operation hangs"


def _check(ws: Workspace, done: list[_Op]) -> None:
    for op in done:
        if op.error is not None and not isinstance(op.error, EarmarkError):
            raise AssertionError(f"{op.name} failed: {type(op.error).__name__}: {op.error}") from op.error
    ok = {op.name for op in done if op.error is None}
    with ws.sessions() as s:
        assert audit.verify_chain(s).ok
        # After an erasure the victim is the erased account (a clip ingested since starts a new one).
        whose = Account.erased_at.is_not(None) if "erase" in ok else Account.external_id == VICTIM
        victim = s.execute(select(Account).where(whose)).scalar_one()
        assert victim is not None
        clips = list(s.execute(select(Clip).where(Clip.account_id == victim.id)).scalars())
        ids = [c.id for c in clips]
        open_items = s.execute(
            select(QueueItem.clip_id, QueueItem.queue, QueueItem.state).where(
                QueueItem.clip_id.in_(ids), QueueItem.state.in_([QueueState.queued, QueueState.leased])
            )
        ).all()
        if ok & {"withdraw", "erase"}:
            assert open_items == [], open_items
            in_review = [c.id for c in clips if c.status in (ClipStatus.queued, ClipStatus.pending)]
            assert in_review == [], in_review
            open_help = s.execute(
                select(HelpRequest.id).where(HelpRequest.clip_id.in_(ids), HelpRequest.state == "open")
            ).all()
            assert open_help == []
        if "erase" in ok:
            assert victim.erased_at is not None
            assert all(c.blob_key is None and c.protected_blob_key is None for c in clips)
            assert all(c.redacted_text is None and c.device_asr_text is None for c in clips)
            for table, column in (
                (Annotation, Annotation.clip_id),
                (GoldAnswer, GoldAnswer.clip_id),
                (HelpRequest, HelpRequest.clip_id),
                (ClipError, ClipError.clip_id),
                (WakeAnswer, WakeAnswer.clip_id),
            ):
                left = s.execute(select(func.count()).select_from(table).where(column.in_(ids))).scalar_one()
                assert left == 0, table.__name__
            assert s.get(AccountKey, victim.id) is None
        if "role_change" in ok:  # r1 holds nothing under the new role; questions on a clip given back are closed
            r1 = s.execute(select(User.id).where(User.username == "r1")).scalar_one()
            held = s.execute(select(Assignment.id).where(Assignment.user_id == r1, Assignment.state == "active")).all()
            assert held == []
            asked = s.execute(
                select(HelpRequest.id)
                .join(Assignment, Assignment.id == HelpRequest.assignment_id)
                .where(HelpRequest.asker_id == r1, HelpRequest.state == "open", Assignment.state == "released")
            )
            assert asked.all() == []
        referenced = {
            k for c in s.execute(select(Clip.blob_key, Clip.protected_blob_key)).all() for k in c if k is not None
        }
    stray = set(ws.blobs.iter_keys()) - referenced
    assert stray == set(), f"{len(stray)} blob(s) no row points at"


def _run(scenario: Scenario, tmp: Path, first: tuple[str, Any], second: tuple[str, Any], at: int) -> None:
    with _copy(scenario, tmp) as ws:
        a = _Op(first[0], lambda: first[1](ws, scenario))
        b = _Op(second[0], lambda: second[1](ws, scenario))
        _interleave(ws, a, b, at)
        _check(ws, [a, b])


_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@_SETTINGS
@given(
    no=st.sampled_from(sorted(NO)),
    other=st.sampled_from(sorted(OTHERS)),
    at=st.integers(1, 40),
    no_first=st.booleans(),
)
def test_a_customers_no_holds_against_any_operation_at_any_point(
    scenario: Scenario, tmp_path: Path, no: str, other: str, at: int, no_first: bool
) -> None:
    note_event(f"{no} / {other}")
    pair = [(no, NO[no]), (other, OTHERS[other])]
    if not no_first:
        pair.reverse()
    _run(scenario, tmp_path, pair[0], pair[1], at)


@_SETTINGS
@given(
    first=st.sampled_from(sorted(OTHERS)),
    second=st.sampled_from(sorted(OTHERS)),
    at=st.integers(1, 40),
)
def test_any_two_operations_at_once_end_without_a_database_error(
    scenario: Scenario, tmp_path: Path, first: str, second: str, at: int
) -> None:
    """Every pair, customers' "no" or not: neither fails but with a domain error, no blob is left
    that no row points at, and the chain verifies (`_check`)."""
    note_event(f"{first} / {second}")
    _run(scenario, tmp_path, (first, OTHERS[first]), (second, OTHERS[second]), at)


@pytest.mark.parametrize("partner", ["flag", "report_pii", "submit_held", "ask", "answer_and_apply", "erase"])
@pytest.mark.parametrize("at", [1, 3, 6])
def test_a_role_change_against_what_its_holder_does_with_the_clip(
    scenario: Scenario, tmp_path: Path, partner: str, at: int
) -> None:
    """The role change's own check, beside the random pairs: the holder's pass and the change at
    once, each first, at three points of the first."""
    for first, second in (("role_change", partner), (partner, "role_change")):
        _run(scenario, tmp_path, (first, OTHERS[first]), (second, OTHERS[second]), at)
