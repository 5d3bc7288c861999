"""A workspace: settings + database + blob store + keys, opened once at an entry point.

This is a boundary module (like cli.py and web/): it owns transactions and commits; the domain
functions it calls never do.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from earmark import audit, auth, db
from earmark.audio import AudioLimits
from earmark.config import SETTINGS_FILE, Settings
from earmark.consent import ConsentResult, set_consent
from earmark.crypto import Keyring, new_key, parse_env_key, read_keyring, write_keyring
from earmark.erasure import ErasureResult, erase_account
from earmark.errors import ConfigError, EarmarkError, InvalidInput
from earmark.ingest import IngestResult, ingest_clip, lock_batch_accounts
from earmark.manifest import ClipMeta
from earmark.models import Clip, SettingsSnapshot, User, utcnow
from earmark.pipeline import (
    Components,
    PipelineConfig,
    ProcessResult,
    build_components,
    clip_rng,
    hold_clip,
    load_pending,
    pending_clip_ids,
    protect,
    store_protection,
)
from earmark.retention import RetentionPolicy, RetentionResult, run_retention
from earmark.sampling import SampleResult, draw_sample
from earmark.sampling_policy import SamplingPolicy, capped, load_policy
from earmark.stats import workspace_stats
from earmark.storage import InflightJournal, LocalBlobStore, collect_orphans
from earmark.types import Actor, Consent, Role

log = logging.getLogger("earmark.workspace")

SETTINGS_TEMPLATE = """\
# earmark workspace settings. Every key is documented in docs/config.md;
# EARMARK_<KEY> environment variables override what is written here.
consent_default = "deny"
max_clip_seconds = 30
sample_cap_per_account = 5
sample_cap_days = 30
lease_seconds = 600
"""


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    """What became of one clip of a batch: a result, or the error that refused it."""

    meta: ClipMeta
    result: IngestResult | None
    error: EarmarkError | None


@dataclass
class Workspace:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    blobs: LocalBlobStore
    keyring: Keyring = field(repr=False)
    secret: bytes = field(repr=False)  # signs short-lived audio URLs, seeds per-clip anonymization
    parts: Components | None = field(default=None, repr=False)  # pipeline models, loaded on first use

    def components(self) -> Components:
        """The pipeline's models, built from settings once per workspace (they are heavy)."""
        if self.parts is None:
            self.parts = build_components(self.settings)
        return self.parts

    @property
    def pipeline_config(self) -> PipelineConfig:
        s = self.settings
        return PipelineConfig(
            min_speech_seconds=s.min_speech_seconds,
            no_speech=s.no_speech_route,
            redaction_mode=s.redaction_mode,
            pad_ms=s.redaction_pad_ms,
            passes=s.review_passes,
        )

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
            journal = self.blobs.journal()
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
                        journal=journal,
                        via=via,
                        secret=self.secret,
                    )
            except IntegrityError:
                self._discard(journal, journal.keys)
                if attempt == 2:
                    raise
                continue
            except BaseException:
                self._discard(journal, journal.keys)
                raise
            journal.close()
            return result
        raise AssertionError("unreachable")

    def ingest_many(
        self,
        items: Iterable[tuple[ClipMeta, Callable[[], bytes]]],
        *,
        actor: Actor,
        via: str,
        batch_size: int = 64,
    ) -> Iterator[IngestOutcome]:
        """Ingest many clips, `batch_size` per transaction; yields one outcome per item, in order.

        Each clip runs in a savepoint, so a bad clip costs only itself. A killed process loses at
        most the open batch, whose blobs the next run collects; re-running is idempotent.
        """
        batch: list[tuple[ClipMeta, Callable[[], bytes]]] = []
        for item in items:
            batch.append(item)
            if len(batch) >= batch_size:
                yield from self._ingest_batch(batch, actor=actor, via=via)
                batch = []
        if batch:
            yield from self._ingest_batch(batch, actor=actor, via=via)

    def _ingest_batch(
        self, batch: list[tuple[ClipMeta, Callable[[], bytes]]], *, actor: Actor, via: str
    ) -> list[IngestOutcome]:
        outcomes: list[IngestOutcome] = []
        journal = self.blobs.journal()
        failed: list[str] = []
        try:
            with self.transaction() as session:
                lock_batch_accounts(session, [meta.account_id for meta, _ in batch])
                for meta, load in batch:
                    mark = len(journal.keys)
                    try:
                        audio = load()
                        with session.begin_nested():
                            result = ingest_clip(
                                session,
                                actor=actor,
                                meta=meta,
                                audio=audio,
                                blobs=self.blobs,
                                keyring=self.keyring,
                                limits=self.limits,
                                journal=journal,
                                via=via,
                                secret=self.secret,
                            )
                    except EarmarkError as exc:
                        failed += journal.keys[mark:]
                        outcomes.append(IngestOutcome(meta, None, exc))
                        continue
                    outcomes.append(IngestOutcome(meta, result, None))
        except IntegrityError:
            # Another writer inserted one of these clip ids meanwhile: redo them one by one.
            self._discard(journal, journal.keys)
            redo: list[IngestOutcome] = []
            for meta, load in batch:
                try:
                    redo.append(IngestOutcome(meta, self.ingest(actor=actor, meta=meta, audio=load(), via=via), None))
                except EarmarkError as exc:
                    redo.append(IngestOutcome(meta, None, exc))
            return redo
        except BaseException:
            self._discard(journal, journal.keys)
            raise
        self._discard(journal, failed)
        return outcomes

    def _discard(self, journal: InflightJournal, keys: Iterable[str]) -> None:
        """Delete blobs whose rows were not committed, then close the journal."""
        for key in keys:
            self.blobs.delete(key)
        journal.close()

    def process_pending(
        self, *, limit: int = 1000, on_done: Callable[[ProcessResult], None] | None = None
    ) -> list[ProcessResult]:
        """Run pending clips through the safe-to-hear pipeline, one transaction per clip.

        A clip whose processing fails for any reason is held with that reason: fail closed.
        """
        with self.sessions() as s:
            ids = pending_clip_ids(s, limit=limit)
        results = []
        for clip_id in ids:
            result = self.process_one(clip_id)
            results.append(result)
            if on_done is not None:
                on_done(result)
        return results

    def process_one(self, clip_id: int) -> ProcessResult:
        """Protect one clip: read it (short transaction), run the models (no transaction), store
        the result (short transaction). Any failure holds the clip with its reason."""
        journal = self.blobs.journal()
        try:
            with self.sessions() as session:
                pending = load_pending(session, clip_id=clip_id, blobs=self.blobs, keyring=self.keyring)
                session.rollback()
            if pending is None:
                return ProcessResult(clip_id, "skipped", "no_longer_pending")
            result = protect(
                pending.samples,
                pending.sample_rate,
                device_text=pending.device_text,
                parts=self.components(),
                config=self.pipeline_config,
                rng=clip_rng(self.secret, pending.external_id),
                extra_spans=pending.extra_spans,
                device_slots=pending.device_slots,
                for_wake_word=pending.for_wake_word,
            )
            with self.transaction() as session:
                stored = store_protection(
                    session,
                    actor=Actor.system(),
                    clip_id=clip_id,
                    result=result,
                    blobs=self.blobs,
                    keyring=self.keyring,
                    journal=journal,
                    passes_for={"general": self.settings.review_passes},
                    redactions=pending.extra_spans,
                )
        except Exception as exc:
            self._discard(journal, journal.keys)
            if db.is_transient(exc):
                # A conflict the database rolled back (a deadlock victim, a lock timeout): nothing
                # was stored and the clip is still pending; the next round takes it again.
                log.warning("pipeline store for clip %s met a database conflict; it stays pending", clip_id)
                return ProcessResult(clip_id, "skipped", "database_busy")
            reason = f"error:{type(exc).__name__}"
            log.warning("pipeline failed for clip %s: %s", clip_id, type(exc).__name__)
            with self.transaction() as session:
                hold_clip(session, actor=Actor.system(), clip_id=clip_id, reason=reason)
            return ProcessResult(clip_id, "held", reason)
        journal.close()
        if stored.replaced_blob:
            self.blobs.delete(stored.replaced_blob)
        return stored

    def draw_sample(
        self,
        *,
        actor: Actor,
        policy: SamplingPolicy,
        dry_run: bool = False,
        ingested_since: datetime | None = None,
        record_empty: bool = True,
    ) -> SampleResult:
        """Draw with `policy` in one transaction (nothing kept when `dry_run`); see
        `sampling.draw_sample` for the worker's `ingested_since` and `record_empty`."""
        with self.transaction() as session:
            result = draw_sample(
                session,
                actor=actor,
                policy=policy,
                key=sampling_key(self.settings),
                default_consent=Consent(self.settings.consent_default),
                dry_run=dry_run,
                ingested_since=ingested_since,
                record_empty=record_empty,
            )
            if dry_run:
                session.rollback()
        return result

    @property
    def retention_policy(self) -> RetentionPolicy:
        s = self.settings
        return RetentionPolicy(
            original_days=s.retention_original_days,
            derivative_days=s.retention_derivative_days,
            transcript_days=s.retention_transcript_days,
            annotation_days=s.retention_annotation_days,
            audit_days=s.retention_audit_days,
        )

    def run_retention(self, *, actor: Actor, now: datetime | None = None, dry_run: bool = False) -> RetentionResult:
        """Purge expired data in one transaction, then its blobs; SQLite's WAL is checkpointed so
        no older copy of the purged text stays in it. `dry_run`: count what would go, keep all."""
        with self.transaction() as session:
            result = run_retention(session, actor=actor, policy=self.retention_policy, now=now)
            if dry_run:
                session.rollback()
        if dry_run:
            return result
        for key in result.blob_keys:
            self.blobs.delete(key)
        db.checkpoint(self.engine)
        return result

    def set_consent(
        self,
        *,
        actor: Actor,
        account_id: str,
        human_review: Consent | None = None,
        training_use: Consent | None = None,
        create: bool = False,
    ) -> ConsentResult:
        """Record consent (see earmark.consent); protected audio of a withdrawal goes after the commit."""
        with self.transaction() as session:
            result = set_consent(
                session,
                actor=actor,
                account_id=account_id,
                human_review=human_review,
                training_use=training_use,
                create=create,
                keep_reviewed=self.settings.keep_reviewed_after_withdrawal,
            )
        for key in result.blob_keys:
            self.blobs.delete(key)
        if result.blob_keys or result.annotations_deleted:
            db.checkpoint(self.engine)
        return result

    def erase(self, *, actor: Actor, account_id: str) -> ErasureResult:
        """Erase an account (see earmark.erasure); blobs go after the commit, then the WAL."""
        with self.transaction() as session:
            result = erase_account(session, actor=actor, account_id=account_id, secret=self.secret)
        for key in result.blob_keys:
            self.blobs.delete(key)
        db.checkpoint(self.engine)
        return result

    def collect_orphans(self, *, grace_seconds: float = 3600.0) -> int:
        """Delete blobs that no row points at (left by a killed ingest). Audited when any go."""

        def referenced(keys: Iterable[str]) -> set[str]:
            keys = list(keys)
            with self.sessions() as s:
                originals = s.execute(select(Clip.blob_key).where(Clip.blob_key.in_(keys))).scalars()
                derived = s.execute(select(Clip.protected_blob_key).where(Clip.protected_blob_key.in_(keys))).scalars()
                return {k for k in [*originals, *derived] if k}

        n = collect_orphans(self.blobs, referenced, grace_seconds=grace_seconds)
        if n:
            with self.transaction() as session:
                audit.record(session, actor=Actor.system(), action="blob.collect", details={"count": n})
        return n

    def stats(self) -> dict[str, object]:
        """Counts for `earmark stats`: accounts by consent, clips by status, queue states."""
        with self.sessions() as session:
            return workspace_stats(session, consent_default=self.settings.consent_default)


def _load_keyring(settings: Settings) -> Keyring:
    if settings.workspace_key is not None:
        return parse_env_key(settings.workspace_key.get_secret_value())
    return read_keyring(settings.key_file)


def _load_secret(settings: Settings) -> bytes:
    path = settings.secret_file
    if not path.exists():
        raise ConfigError(f"{path} is missing; run `earmark init` first")
    try:
        secret = bytes.fromhex(path.read_text(encoding="ascii", errors="replace").strip())
    except ValueError:
        secret = b""
    if len(secret) < 16:
        # Everything keyed by it (pseudonyms, erased ids, signed URLs) depends on its exact bytes.
        raise ConfigError(f"{path} is damaged (not the hex secret `earmark init` wrote); restore it from a backup")
    return secret


def sampling_key(settings: Settings) -> bytes:
    """The key of the keyed hashes that draw clips: the `sampling_key` setting (shared with the
    upstream stream job), else one derived from the workspace secret."""
    if settings.sampling_key is not None:
        return bytes.fromhex(settings.sampling_key.get_secret_value())
    return hmac.new(_load_secret(settings), b"earmark-sampling-key", hashlib.sha256).digest()


SECRET_SETTINGS = {"workspace_key", "database_url", "home", "sampling_key"}


def workspace_policy(s: Settings) -> SamplingPolicy:
    """The `sampling_policy` file (a relative path from the workspace folder, not from where a
    command runs) under the workspace's household cap, a ceiling for every draw."""
    if s.sampling_policy is None:
        raise InvalidInput(
            "no sampling policy: pass --policy FILE (TOML or YAML, see docs/sampling.md), set "
            "`sampling_policy` in settings.toml, or draw uniformly with --rate",
            field="policy",
        )
    path = s.sampling_policy if s.sampling_policy.is_absolute() else s.home / s.sampling_policy
    return capped(load_policy(path), s.sample_cap_per_account)


def record_settings(session: Session, settings: Settings) -> list[str]:
    """Audit a change of the effective settings since they were last seen (values are not logged,
    only which keys changed). Returns the changed keys; caller commits."""
    values = {
        k: (str(v) if v is not None else None) for k, v in settings.model_dump().items() if k not in SECRET_SETTINGS
    }
    snap = session.get(SettingsSnapshot, 1)
    if snap is None:
        session.add(SettingsSnapshot(id=1, values=values))
        return []
    changed = sorted(k for k in values.keys() | snap.values.keys() if values.get(k) != snap.values.get(k))
    if changed:
        snap.values = values
        snap.updated_at = utcnow()
        audit.record(session, actor=Actor.system(), action="settings.change", details={"changed": changed})
    return changed


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
    ws = Workspace(
        settings=settings,
        engine=engine,
        sessions=db.make_sessionmaker(engine),
        blobs=LocalBlobStore(settings.blob_dir, fsync=settings.blob_fsync),
        keyring=keyring,
        secret=secret,
    )
    if check_schema:
        try:
            with ws.transaction() as session:
                record_settings(session, settings)
        except BaseException:
            ws.close()  # a busy database, say: its pool must not outlive the failed open
            raise
    return ws


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
