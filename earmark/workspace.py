"""A workspace: settings + database + blob store + keys, opened once at an entry point.

This is a boundary module (like cli.py and web/): it owns transactions and commits; the domain
functions it calls never do.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from earmark import audit, auth, db
from earmark.audio import AudioLimits
from earmark.config import SETTINGS_FILE, Settings
from earmark.crypto import Keyring, new_key, parse_env_key, read_keyring, write_keyring
from earmark.errors import ConfigError
from earmark.ingest import ClipMeta, IngestResult, ingest_clip
from earmark.models import Account, Assignment, Clip, QueueItem, User
from earmark.queues import queue_depths
from earmark.storage import LocalBlobStore, collect_orphans
from earmark.types import Actor, AssignmentState, Role

SETTINGS_TEMPLATE = """\
# earmark workspace settings. Every key is documented in docs/config.md;
# EARMARK_<KEY> environment variables override what is written here.
consent_default = "deny"
max_clip_seconds = 30
sample_cap_per_account = 5
sample_cap_days = 30
lease_seconds = 600
"""


@dataclass
class Workspace:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    blobs: LocalBlobStore
    keyring: Keyring
    secret: bytes  # signs short-lived audio URLs

    @property
    def limits(self) -> AudioLimits:
        s = self.settings
        return AudioLimits(s.max_clip_seconds, s.min_sample_rate, s.max_channels)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with db.transaction(self.sessions) as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()

    # -- boundary operations shared by the CLI and the web layer ----------------------------------

    def ingest(self, *, actor: Actor, meta: ClipMeta, audio: bytes, via: str) -> IngestResult:
        """Ingest one clip in its own transaction; blobs of a failed attempt are removed.

        A concurrent ingest of the same clip_id loses on the unique constraint; it is retried once
        and then reports duplicate or conflict like any re-send.
        """
        for attempt in (1, 2):
            written: list[str] = []
            try:
                with self.transaction() as session:
                    result = ingest_clip(
                        session,
                        actor=actor,
                        meta=meta,
                        audio=audio,
                        blobs=self.blobs,
                        keyring=self.keyring,
                        limits=self.limits,
                        written=written,
                        via=via,
                    )
            except IntegrityError:
                self._discard(written)
                if attempt == 2:
                    raise
                continue
            except BaseException:
                self._discard(written)
                raise
            for key in written:
                self.blobs.settle(key)
            return result
        raise AssertionError("unreachable")

    def _discard(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.blobs.delete(key)
            self.blobs.settle(key)

    def collect_orphans(self, *, grace_seconds: float = 3600.0) -> int:
        """Delete blobs that no row points at (left by a killed ingest). Audited when any go."""

        def referenced(keys: Iterable[str]) -> set[str]:
            keys = list(keys)
            with self.sessions() as s:
                return set(s.execute(select(Clip.blob_key).where(Clip.blob_key.in_(keys))).scalars())

        n = collect_orphans(self.blobs, referenced, grace_seconds=grace_seconds)
        if n:
            with self.transaction() as session:
                audit.record(session, actor=Actor.system(), action="blob.collect", details={"count": n})
        return n

    def stats(self) -> dict[str, object]:
        """Counts for `earmark stats`: accounts by consent, clips by status, queue states."""
        default = self.settings.consent_default
        with self.sessions() as s:
            by_consent: dict[str, int] = {"allow": 0, "deny": 0}
            for value, count in s.execute(
                select(Account.human_review, func.count()).group_by(Account.human_review)
            ).all():
                key = value or default
                by_consent[key] = by_consent.get(key, 0) + count
            clips = dict(s.execute(select(Clip.status, func.count()).group_by(Clip.status)).all())
            depths = queue_depths(s)
            reviewed = s.execute(
                select(func.count()).select_from(Assignment).where(Assignment.state == AssignmentState.submitted)
            ).scalar_one()
            total_items = s.execute(select(func.count()).select_from(QueueItem)).scalar_one()
        queued = sum(d.get("queued", 0) for d in depths.values())
        leased = sum(d.get("leased", 0) for d in depths.values())
        return {
            "accounts": {"total": sum(by_consent.values()), "by_consent": by_consent},
            "clips": {"total": sum(clips.values()), "by_status": clips},
            "queue": {"items": total_items, "queued": queued, "leased": leased, "by_queue": depths},
            "reviewed": reviewed,
        }


def _load_keyring(settings: Settings) -> Keyring:
    if settings.workspace_key is not None:
        return parse_env_key(settings.workspace_key.get_secret_value())
    return read_keyring(settings.key_file)


def _load_secret(settings: Settings) -> bytes:
    path = settings.secret_file
    if not path.exists():
        raise ConfigError(f"{path} is missing; run `earmark init` first")
    return bytes.fromhex(path.read_text().strip())


def open_workspace(settings: Settings, *, check_schema: bool = True) -> Workspace:
    """Open an existing workspace. Refuses a missing or unmigrated one with what to run."""
    home = settings.home
    if not home.is_dir():
        raise ConfigError(f"no workspace at {home}; run `earmark --home {home} init` to create one")
    engine = db.make_engine(settings.db_url)
    try:
        if check_schema:
            db.check_schema(engine)
        keyring = _load_keyring(settings)
        secret = _load_secret(settings)
    except BaseException:
        engine.dispose()
        raise
    return Workspace(
        settings=settings,
        engine=engine,
        sessions=db.make_sessionmaker(engine),
        blobs=LocalBlobStore(settings.blob_dir, fsync=settings.blob_fsync),
        keyring=keyring,
        secret=secret,
    )


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def init_workspace(settings: Settings, *, admin_username: str, admin_password: str | None) -> tuple[Workspace, str]:
    """Create folders, keys, schema and the first admin. Returns the workspace and admin password."""
    home = settings.home
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    settings.blob_dir.mkdir(exist_ok=True)
    if not (home / SETTINGS_FILE).exists():
        (home / SETTINGS_FILE).write_text(SETTINGS_TEMPLATE, encoding="utf-8")
    if settings.workspace_key is None and not settings.key_file.exists():
        write_keyring(settings.key_file, Keyring.single(new_key()))
    if not settings.secret_file.exists():
        _write_private(settings.secret_file, secrets.token_hex(32))
    engine = db.make_engine(settings.db_url)
    try:
        current, _ = db.schema_revisions(engine)
        db.upgrade(engine)
    finally:
        engine.dispose()
    ws = open_workspace(settings)
    password = admin_password or auth.generate_password()
    with ws.transaction() as session:
        if current is None:
            audit.record(session, actor=Actor.cli(), action="workspace.init")
        exists = session.execute(select(User).where(User.username == admin_username)).scalar_one_or_none()
        if exists is None:
            auth.create_user(session, actor=Actor.cli(), username=admin_username, password=password, role=Role.admin)
        else:
            password = ""
    return ws, password
