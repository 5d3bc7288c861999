from __future__ import annotations

import pytest
from sqlalchemy import select

from earmark import auth
from earmark.errors import AuthenticationFailed, Conflict, InvalidInput
from earmark.models import ApiToken, AuditEvent, User
from earmark.types import Actor, Role
from earmark.workspace import Workspace
from tests import factories as f


def test_password_is_stored_as_argon2_only(ws: Workspace) -> None:
    f.user(ws, "alice", password="correct horse battery")
    with ws.sessions() as s:
        row = s.execute(select(User).where(User.username == "alice")).scalar_one()
    assert row.password_hash.startswith("$argon2id$")
    assert "correct horse" not in row.password_hash


def test_wrong_password_and_unknown_user_get_the_same_message(ws: Workspace) -> None:
    f.user(ws, "alice", password="correct horse battery")
    for name in ("alice", "mallory"):
        with pytest.raises(AuthenticationFailed, match="wrong username or password"), ws.transaction() as s:
            try:
                auth.authenticate(s, username=name, password="wrong password!")
            finally:
                s.commit()
    with ws.sessions() as s:
        reasons = [
            e.details["reason"]
            for e in s.execute(select(AuditEvent).where(AuditEvent.action == "auth.login_failed")).scalars()
        ]
    assert reasons == ["bad_password", "unknown_user"]


def test_repeated_failures_lock_the_account(ws: Workspace) -> None:
    f.user(ws, "bob", password="correct horse battery")
    for _ in range(3):
        with pytest.raises(AuthenticationFailed), ws.transaction() as s:
            try:
                auth.authenticate(s, username="bob", password="nope-nope-nope", max_failures=3)
            finally:
                s.commit()
    with pytest.raises(AuthenticationFailed, match="too many failed logins"), ws.transaction() as s:
        auth.authenticate(s, username="bob", password="correct horse battery", max_failures=3)


def test_sessions_and_csrf(ws: Workspace) -> None:
    u = f.user(ws, "carol")
    with ws.transaction() as s:
        new = auth.start_session(s, user=u, hours=1)
    with ws.sessions() as s:
        found = auth.session_user(s, new.token)
        assert found is not None and found[0].id == u.id
        assert auth.session_user(s, "forged") is None
        assert auth.csrf_matches(found[1].csrf_token, new.csrf_token)
        assert not auth.csrf_matches(found[1].csrf_token, None)
        assert not auth.csrf_matches(found[1].csrf_token, "x")
    with ws.transaction() as s:
        auth.end_session(s, token=new.token)
    with ws.sessions() as s:
        assert auth.session_user(s, new.token) is None


def test_service_token_is_shown_once_and_stored_hashed(ws: Workspace) -> None:
    with ws.transaction() as s:
        row, secret = auth.create_token(s, actor=Actor.cli(), role=Role.service)
    with ws.sessions() as s:
        stored = s.execute(select(ApiToken)).scalar_one()
        assert secret not in (stored.token_hash, stored.prefix) and stored.token_hash == auth.sha256_hex(secret)
        actor = auth.token_actor(s, secret)
        assert actor is not None and actor.role == "service"
        assert auth.token_actor(s, secret + "x") is None
    with ws.transaction() as s:
        auth.revoke_token(s, actor=Actor.cli(), token_id=row.id)
    with ws.sessions() as s:
        assert auth.token_actor(s, secret) is None


def test_user_validation(ws: Workspace) -> None:
    with pytest.raises(InvalidInput, match="username"), ws.transaction() as s:
        auth.create_user(s, actor=Actor.cli(), username="Bad Name!", password="long enough pw", role=Role.reviewer)
    with pytest.raises(InvalidInput, match="at least 10"), ws.transaction() as s:
        auth.create_user(s, actor=Actor.cli(), username="short", password="short", role=Role.reviewer)
    f.user(ws, "dup")
    with pytest.raises(Conflict), ws.transaction() as s:
        auth.create_user(s, actor=Actor.cli(), username="dup", password="long enough pw", role=Role.reviewer)


def test_role_change_and_deactivation_end_sessions_and_are_audited(ws: Workspace) -> None:
    u = f.user(ws, "dave")
    with ws.transaction() as s:
        new = auth.start_session(s, user=u, hours=1)
    with ws.transaction() as s:
        auth.change_role(s, actor=Actor.cli(), username="dave", role=Role.senior)
    with ws.sessions() as s:
        assert auth.session_user(s, new.token) is None
        assert s.execute(select(User.role).where(User.username == "dave")).scalar_one() == "senior"
    with ws.transaction() as s:
        auth.deactivate_user(s, actor=Actor.cli(), username="dave")
    with pytest.raises(AuthenticationFailed), ws.transaction() as s:
        try:
            auth.authenticate(s, username="dave", password="reviewer-password")
        finally:
            s.commit()
    with ws.sessions() as s:
        actions = [e.action for e in s.execute(select(AuditEvent)).scalars()]
    assert "user.role_change" in actions and "user.deactivate" in actions


@f.postgres_only
def test_parallel_wrong_passwords_each_count_toward_the_lockout(ws: Workspace) -> None:
    """Each guess read the failure count unlocked and wrote count + 1: two guesses at once
    counted as one, so an attacker guessing in parallel got more tries than max_failures."""

    def guess() -> None:
        with pytest.raises(AuthenticationFailed), ws.transaction() as s:
            try:
                auth.authenticate(s, username="bob", password="wrong-guess-2", max_failures=5)
            finally:
                s.commit()

    f.user(ws, "bob", password="correct horse battery")
    second = f.Racer(guess)
    with f.at_the_audit_head(ws, second):  # the first guess has written its count; the second starts
        guess()
    second.join()
    assert second.error is None, second.error
    with ws.sessions() as s:
        assert s.execute(select(User.failed_logins).where(User.username == "bob")).scalar_one() == 2
