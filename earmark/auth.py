"""Users, passwords (argon2), login sessions with CSRF tokens, and hashed service tokens."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from earmark import audit
from earmark.errors import AuthenticationFailed, Conflict, InvalidInput, NotFound
from earmark.models import ApiToken, User, WebSession, utcnow
from earmark.queues import give_back_held
from earmark.types import Actor, Role

_hasher = PasswordHasher()
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
TOKEN_PREFIX = "emk_"
MIN_PASSWORD = 10
# A fixed hash to verify against when the username does not exist, so a failed login takes as long
# for an unknown name as for a wrong password (no user enumeration by timing).
_DUMMY_HASH = _hasher.hash("earmark-dummy-password")


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"password must be at least {MIN_PASSWORD} characters", field="password")
    return _hasher.hash(password)


def generate_password() -> str:
    return secrets.token_urlsafe(12)


def create_user(session: Session, *, actor: Actor, username: str, password: str, role: Role) -> User:
    """Create a user. Audited (role only, never the password); caller commits."""
    if not USERNAME_RE.match(username):
        raise InvalidInput(
            "username must be 2-64 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit",
            field="username",
        )
    if session.execute(select(User).where(User.username == username)).scalar_one_or_none():
        raise Conflict(f"user {username!r} already exists", field="username")
    user = User(username=username, password_hash=hash_password(password), role=Role(role))
    session.add(user)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="user.create",
        object_type="user",
        object_id=user.id,
        details={"role": str(role)},
    )
    return user


def authenticate(
    session: Session, *, username: str, password: str, max_failures: int = 5, lockout_minutes: int = 15
) -> User:
    """Check a login. Failures are audited and counted; too many lock the account for a while.

    Raises AuthenticationFailed with the same message for unknown names and wrong passwords.
    The caller commits in both cases, so the failure count and audit row persist.
    """
    now = utcnow()
    # Locked and read afresh (PostgreSQL): parallel guesses at one account wait for each other, so
    # none of their failures is lost from the count that locks the account.
    user = session.execute(
        select(User)
        .where(User.username == username)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    generic = AuthenticationFailed("wrong username or password")
    if user is None or not user.active:
        with contextlib.suppress(VerificationError):
            _hasher.verify(_DUMMY_HASH, password)
        audit.record(
            session,
            actor=Actor("anonymous"),
            action="auth.login_failed",
            object_type="user",
            object_id=None if user is None else user.id,
            details={"reason": "unknown_user" if user is None else "inactive"},
        )
        raise generic
    if user.locked_until is not None and user.locked_until > now:
        audit.record(
            session,
            actor=Actor("anonymous"),
            action="auth.login_failed",
            object_type="user",
            object_id=user.id,
            details={"reason": "locked"},
        )
        minutes = max(1, int((user.locked_until - now).total_seconds() // 60) + 1)
        raise AuthenticationFailed(f"too many failed logins; try again in {minutes} minutes")
    try:
        _hasher.verify(user.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        user.failed_logins += 1
        audit.record(
            session,
            actor=Actor("anonymous"),
            action="auth.login_failed",
            object_type="user",
            object_id=user.id,
            details={"reason": "bad_password", "failures": user.failed_logins},
        )
        if user.failed_logins >= max_failures:
            user.locked_until = now + timedelta(minutes=lockout_minutes)
            user.failed_logins = 0
            audit.record(
                session,
                actor=Actor.system(),
                action="auth.lockout",
                object_type="user",
                object_id=user.id,
                details={"minutes": lockout_minutes},
            )
        raise generic from None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.failed_logins = 0
    user.locked_until = None
    return user


@dataclass(frozen=True, slots=True)
class NewSession:
    token: str  # goes into the cookie; only its hash is stored
    csrf_token: str


def start_session(session: Session, *, user: User, hours: int) -> NewSession:
    """Open a login session for `user`. Audited; caller commits."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        WebSession(
            token_hash=sha256_hex(token),
            user_id=user.id,
            csrf_token=csrf,
            created_at=now,
            expires_at=now + timedelta(hours=hours),
        )
    )
    audit.record(
        session,
        actor=Actor("user", user.id, user.role),
        action="auth.login",
        object_type="user",
        object_id=user.id,
    )
    return NewSession(token, csrf)


def session_user(session: Session, token: str | None) -> tuple[User, WebSession] | None:
    """The user of a live session cookie, or None."""
    if not token:
        return None
    ws = session.get(WebSession, sha256_hex(token))
    if ws is None or ws.expires_at <= utcnow():
        return None
    user = session.get(User, ws.user_id)
    if user is None or not user.active:
        return None
    return user, ws


def end_session(session: Session, *, token: str) -> None:
    ws = session.get(WebSession, sha256_hex(token))
    if ws is None:
        return
    user = session.get(User, ws.user_id)
    session.execute(delete(WebSession).where(WebSession.token_hash == ws.token_hash))
    if user is not None:
        audit.record(
            session,
            actor=Actor("user", user.id, user.role),
            action="auth.logout",
            object_type="user",
            object_id=user.id,
        )


def csrf_matches(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


def create_token(session: Session, *, actor: Actor, role: Role, label: str = "") -> tuple[ApiToken, str]:
    """Create a service token; returns the row and the plaintext, which is never stored. Audited."""
    if Role(role) not in (Role.service, Role.admin, Role.auditor):
        raise InvalidInput("tokens are for the service, admin or auditor roles", field="role")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(token_hash=sha256_hex(secret), prefix=secret[:10], role=Role(role), label=label[:128])
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="token.create",
        object_type="token",
        object_id=row.id,
        details={"role": str(role), "prefix": row.prefix},
    )
    return row, secret


def token_actor(session: Session, secret: str | None) -> Actor | None:
    """The actor behind a bearer token, or None if unknown or revoked."""
    if not secret or not secret.startswith(TOKEN_PREFIX):
        return None
    row = session.execute(select(ApiToken).where(ApiToken.token_hash == sha256_hex(secret))).scalar_one_or_none()
    if row is None or row.revoked_at is not None:
        return None
    return Actor("token", row.id, row.role)


def revoke_token(session: Session, *, actor: Actor, token_id: int) -> None:
    row = session.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"no token {token_id}")
    row.revoked_at = utcnow()
    audit.record(session, actor=actor, action="token.revoke", object_type="token", object_id=token_id)


def _user(session: Session, username: str) -> User:
    user = session.execute(select(User).where(User.username == username)).scalar_one_or_none()
    if user is None:
        raise NotFound(f"no user {username!r}")
    return user


def change_role(session: Session, *, actor: Actor, username: str, role: Role) -> User:
    """Give a user another role; their open sessions end (new rights need a new login) and, if the
    role is another, the clip they hold goes back to its queue unsaved (it may be of a queue the
    new role may not work in: a safety or wake-word clip). Audited."""
    user = _user(session, username)
    old = user.role
    # The held clip first (its clip row, then item and assignment), then the user row: the order
    # a pass takes them in (a flag locks the clip, then sets the user's day block).
    given = give_back_held(session, user=user) if Role(role) != Role(old) else []
    user.role = Role(role)
    session.execute(delete(WebSession).where(WebSession.user_id == user.id))
    _record_given_back(session, actor, given, "role_change")
    audit.record(
        session, actor=actor, action="user.role_change", object_type="user", object_id=user.id,
        details={"old": old, "new": str(role), "clips_given_back": len(given)},
    )  # fmt: skip
    return user


def list_users(session: Session) -> list[dict[str, Any]]:
    """Every user, by id: the id is how the audit log names them (`user:<id>`)."""
    return [
        {
            "actor": f"user:{u.id}",
            "username": u.username,
            "role": str(u.role),
            "active": bool(u.active),
            "created": u.created_at.date().isoformat(),
        }
        for u in session.execute(select(User).order_by(User.id)).scalars()
    ]


def deactivate_user(session: Session, *, actor: Actor, username: str) -> User:
    """Lock a user out for good, end their sessions and give back the clip they hold. Audited."""
    user = _user(session, username)
    given = give_back_held(session, user=user)  # the clip first, then the user row (as in change_role)
    user.active = False
    session.execute(delete(WebSession).where(WebSession.user_id == user.id))
    _record_given_back(session, actor, given, "deactivated")
    audit.record(
        session, actor=actor, action="user.deactivate", object_type="user", object_id=user.id,
        details={"clips_given_back": len(given)},
    )  # fmt: skip
    return user


def _record_given_back(session: Session, actor: Actor, given: list[tuple[str, str]], reason: str) -> None:
    for assignment_id, queue in given:
        audit.record(
            session, actor=actor, action="review.release", object_type="assignment", object_id=assignment_id,
            details={"queue": queue, "reason": reason},
        )  # fmt: skip
