from __future__ import annotations

import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from earmark import audit
from earmark.audit import AuditDetailError, record, verify_chain
from earmark.errors import InvalidInput
from earmark.types import Actor
from earmark.workspace import Workspace
from tests import factories as f


def _tamper(ws: Workspace, sql: str) -> None:
    """What an attacker with database access does: drop the guard triggers, then edit."""
    with ws.engine.begin() as conn:
        if ws.engine.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        else:
            conn.execute(text("DROP TRIGGER IF EXISTS audit_events_no_update"))
            conn.execute(text("DROP TRIGGER IF EXISTS audit_events_no_delete"))
        conn.execute(text(sql))


def _populated(ws: Workspace) -> int:
    f.queue_clips(ws, 3)
    with ws.sessions() as s:
        result = verify_chain(s)
    assert result.ok, result
    return result.rows


def test_chain_verifies_after_real_work(ws: Workspace) -> None:
    assert _populated(ws) > 5


@pytest.mark.parametrize(
    ("sql", "bad"),
    [
        ('UPDATE audit_events SET details = \'{"human_review": "deny"}\' WHERE seq = 4', 4),
        ("DELETE FROM audit_events WHERE seq = 3", 3),
        ("UPDATE audit_events SET actor = 'user:99' WHERE seq = 5", 5),
    ],
)
def test_changed_or_deleted_rows_are_named(ws: Workspace, sql: str, bad: int) -> None:
    _populated(ws)
    _tamper(ws, sql)
    with ws.sessions() as s:
        result = verify_chain(s)
    assert not result.ok and result.first_bad_seq == bad


def test_reordered_rows_are_detected(ws: Workspace) -> None:
    _populated(ws)
    _tamper(ws, "UPDATE audit_events SET seq = -1 WHERE seq = 3")
    _tamper(ws, "UPDATE audit_events SET seq = 3 WHERE seq = 4")
    _tamper(ws, "UPDATE audit_events SET seq = 4 WHERE seq = -1")
    with ws.sessions() as s:
        result = verify_chain(s)
    assert not result.ok and result.first_bad_seq == 3


def test_truncated_tail_is_detected(ws: Workspace) -> None:
    rows = _populated(ws)
    _tamper(ws, f"DELETE FROM audit_events WHERE seq = {rows}")
    with ws.sessions() as s:
        result = verify_chain(s)
    assert not result.ok and result.first_bad_seq == rows


def test_a_tail_cut_off_with_the_head_set_back_shows_only_against_an_anchor(ws: Workspace) -> None:
    rows = _populated(ws)
    with ws.sessions() as s:
        anchor = audit.head_anchor(s)
        kept = s.execute(text(f"SELECT hash FROM audit_events WHERE seq = {rows - 2}")).scalar_one()
    assert anchor.seq == rows
    _tamper(ws, f"DELETE FROM audit_events WHERE seq > {rows - 2}")
    with ws.engine.begin() as conn:
        conn.execute(text(f"UPDATE audit_head SET seq = {rows - 2}, hash = '{kept}'"))
    with ws.sessions() as s:
        assert verify_chain(s).ok  # the chain alone cannot tell
        broken = audit.check_anchors(s, [anchor])
        assert broken is not None and broken.first_bad_seq == rows and "cut off" in broken.reason
        assert audit.check_anchors(s, [audit.Anchor(rows - 2, kept)]) is None
        other = audit.check_anchors(s, [audit.Anchor(rows - 3, "0" * 64)])
        assert other is not None and "rewritten" in other.reason


def test_anchors_are_read_from_anchor_lines_or_an_earlier_export() -> None:
    lines = '{"seq": 4, "hash": "a", "at": "x"}\n\n{"seq": 9, "hash": "b"}\n'
    assert audit.read_anchors(lines) == [audit.Anchor(4, "a"), audit.Anchor(9, "b")]
    export = "".join(f'{{"seq": {i}, "hash": "h{i}", "action": "x"}}\n' for i in range(1, 6))
    assert audit.read_anchors(export) == [audit.Anchor(5, "h5")]  # the chain links the rest
    for bad in ("", "not json", '{"seq": "x", "hash": "a"}', '{"hash": "a"}'):
        with pytest.raises(InvalidInput, match="anchor"):
            audit.read_anchors(bad, source="anchor.jsonl")


def test_database_refuses_update_and_delete(ws: Workspace) -> None:
    _populated(ws)
    for sql in (
        "UPDATE audit_events SET actor = 'x' WHERE seq = 1",
        "DELETE FROM audit_events WHERE seq = 1",
    ):
        with pytest.raises(DBAPIError, match="append-only"), ws.engine.begin() as conn:
            conn.execute(text(sql))


def test_details_must_be_ids_and_counts(ws: Workspace) -> None:
    with pytest.raises(AuditDetailError), ws.transaction() as s:
        record(
            s,
            actor=Actor.cli(),
            action="blob.collect",
            details={"text": "call jennifer on her mobile at five five five"},
        )
    with pytest.raises(AuditDetailError), ws.transaction() as s:
        record(s, actor=Actor.cli(), action="blob.collect", details={"nested": {"a": 1}})
    with pytest.raises(ValueError, match="unknown audit action"), ws.transaction() as s:
        record(s, actor=Actor.cli(), action="made.up")


def test_concurrent_appends_keep_one_chain(ws: Workspace) -> None:
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(10):
                with ws.transaction() as s:
                    record(s, actor=Actor.system(), action="blob.collect", details={"count": 0})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with ws.sessions() as s:
        result = audit.verify_chain(s)
    assert result.ok and result.rows >= 40
