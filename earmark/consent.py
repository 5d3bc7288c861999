"""Consent to human review, per account. Opt-in: an account that never said gets the default."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session

from earmark import audit
from earmark.errors import InvalidInput, NotFound
from earmark.ingest import check_account_id, get_or_create_account
from earmark.manifest import ID_PATTERN
from earmark.models import Account, Clip, QueueItem, utcnow
from earmark.queues import lock_account_clips, record_events, withdraw_clips
from earmark.types import Actor, ClipStatus, Consent, QueueState


@dataclass(frozen=True, slots=True)
class ConsentResult:
    account_id: str
    human_review: Consent
    withdrawn: int
    derivatives_deleted: int = 0
    annotations_deleted: int = 0
    blob_keys: list[str] = field(default_factory=list)  # the boundary deletes them after the commit
    training_use: Consent = Consent.deny  # the account's effective training-use consent now
    exports_to_prune: int = 0  # exports this change marked for `earmark export prune`


def allows_review(default: Consent | str) -> ColumnElement[bool]:
    """SQL condition: the account's effective human-review consent is `allow`."""
    if Consent(default) == Consent.allow:
        return or_(Account.human_review == Consent.allow, Account.human_review.is_(None))
    return and_(Account.human_review == Consent.allow)


def share_lock_accounts(session: Session, account_ids: Iterable[int], *where: ColumnElement[bool]) -> set[int]:
    """Share-lock these accounts, in id order, until commit (PostgreSQL): a consent change or an
    erasure of any of them waits for this transaction, and one committed before is seen. Returns
    the ids that match `where`, read under the lock. SQLite: a plain read."""
    ids = sorted(set(account_ids))
    found: set[int] = set()
    for i in range(0, len(ids), 500):
        query = select(Account.id).where(Account.id.in_(ids[i : i + 500]), *where)
        found.update(session.execute(query.order_by(Account.id).with_for_update(read=True)).scalars())
    return found


def set_consent(
    session: Session,
    *,
    actor: Actor,
    account_id: str,
    human_review: Consent | None = None,
    create: bool = False,
    training_use: Consent | None = None,
    keep_reviewed: bool = False,
) -> ConsentResult:
    """Record the account's choices: human review (`deny` pulls its not-yet-reviewed clips from
    every queue at once and marks exports holding its clips for pruning) and training use of its
    original audio (`deny` marks the original-audio exports holding its clips: the others never
    depended on it). A choice left None stays as it was.

    Withdrawing human-review consent also deletes what was made for reviewers: the protected audio
    (its blob keys come back in the result), the pipeline's transcript and redacted text, and, unless
    `keep_reviewed` (the `keep_reviewed_after_withdrawal` setting), the annotations of clips already
    reviewed, which then leave every export and metric.

    Audited; caller commits. An unknown account is an error unless `create` (consent may arrive
    before the account's first recording).
    """
    check_account_id(account_id)
    if create:
        if not re.fullmatch(ID_PATTERN, account_id):
            raise InvalidInput(f"{account_id!r} is not an account id clips could carry", field="account_id")
        account = get_or_create_account(session, account_id)
    else:
        account = session.execute(select(Account).where(Account.external_id == account_id)).scalar_one_or_none()
        if account is None:
            raise NotFound(
                f"unknown account {account_id!r}: earmark holds no clips for it (nor, once erased, its id); "
                "use --create to record consent ahead of its clips"
            )
    if human_review is None and training_use is None:
        raise InvalidInput("give human_review, training_use or both", field="human_review")
    # The rows this change may touch are locked before the first audit event takes the chain head
    # (PostgreSQL; SQLite's writer lock already serializes): the pipeline storing one of these clips
    # locks the clip first and the head last, so taking them in the other order could deadlock.
    # Read afresh under the lock: an erasure that committed since the read above left a tombstone.
    locked = session.get(Account, account.id, with_for_update={"key_share": True}, populate_existing=True)
    if locked is None or locked.erased_at is not None:
        raise NotFound(f"account {account_id!r} was erased; its consent no longer applies to anything")
    account = locked
    lock_account_clips(session, account.id)
    if human_review is not None:
        account.human_review = human_review
    if training_use is not None:
        account.training_use = training_use
    account.consent_updated_at = utcnow()
    withdrawn = 0
    marked = 0
    derivatives = annotations = 0
    keys: list[str] = []
    if Consent.deny in (human_review, training_use):
        # Imported here: export reads consent (allows_review) at import time.
        from earmark.export import mark_exports

        every = list(session.execute(select(Clip.id).where(Clip.account_id == account.id)).scalars())
        marked = mark_exports(session, every, audio=None if human_review == Consent.deny else "original")
    if human_review == Consent.deny:
        # Queued and pending clips, and any other with a queue item still open (a reviewed gold
        # clip waits in the gold queue).
        open_items = select(QueueItem.clip_id).where(QueueItem.state.in_([QueueState.queued, QueueState.leased]))
        clip_ids = list(
            session.execute(
                select(Clip.id).where(
                    Clip.account_id == account.id,
                    or_(Clip.status.in_([ClipStatus.queued, ClipStatus.pending]), Clip.id.in_(open_items)),
                )
            ).scalars()
        )
        events: list[dict[str, Any]] = []  # recorded after the purge's row changes
        withdrawn = withdraw_clips(session, actor=actor, clip_ids=clip_ids, reason="consent_withdrawn", events=events)
        derivatives, annotations, keys = _purge_review_data(session, account.id, keep_reviewed=keep_reviewed)
        record_events(session, events)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="consent.set",
        object_type="account",
        object_id=account.id,
        details={
            "human_review": str(human_review) if human_review else None,
            "training_use": str(training_use) if training_use else None,
            "withdrawn": withdrawn,
            "exports_to_prune": marked,
            "derivatives_deleted": derivatives,
            "annotations_deleted": annotations,
        },
    )
    return ConsentResult(
        account_id,
        Consent(account.human_review or "deny"),
        withdrawn,
        derivatives,
        annotations,
        keys,
        training_use=Consent(account.training_use or "deny"),
        exports_to_prune=marked,
    )


def _purge_review_data(session: Session, account_id: int, *, keep_reviewed: bool) -> tuple[int, int, list[str]]:
    """Delete what was made for human review of the account's clips; returns counts and blob keys."""
    now = utcnow()
    clips = list(
        session.execute(
            select(Clip).where(Clip.account_id == account_id, Clip.protected_blob_key.is_not(None))
        ).scalars()
    )
    keys = [c.protected_blob_key for c in clips if c.protected_blob_key]
    for clip in clips:
        clip.protected_blob_key = None
        clip.redacted_text = None
        clip.derivative_purged_at = now
    from earmark.erasure import delete_review_text  # erasure -> export -> consent at import time

    ids = list(session.execute(select(Clip.id).where(Clip.account_id == account_id)).scalars())
    annotations = delete_review_text(session, ids, annotations=not keep_reviewed)
    if not keep_reviewed:
        for start in range(0, len(ids), 500):
            session.execute(
                update(Clip)
                .where(Clip.id.in_(ids[start : start + 500]), Clip.status == ClipStatus.reviewed)
                .values(status=ClipStatus.withdrawn)
                .execution_options(synchronize_session=False)
            )
    return len(keys), annotations, keys
