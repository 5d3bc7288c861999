"""The tamper-evident audit log: every state change appends one hash-chained row.

Row hash = SHA-256(previous row's hash + canonical JSON of the row's own content). Changing, deleting,
inserting or reordering a row breaks the chain at that row, which `verify_chain` names. Appends lock
the single `audit_head` row, so concurrent writers on PostgreSQL cannot fork the chain.

Rows hold ids, counts and enums only, never transcript text or audio (`record` enforces short,
scalar details): the log must not become a second copy of customer data.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from earmark.errors import InvalidInput
from earmark.models import Assignment, AuditEvent, AuditHead, Clip, utcnow
from earmark.types import Actor

GENESIS = "0" * 64
# Detail strings are ids and enums: no spaces, so no sentence of a transcript can slip in.
_TOKEN_RE = re.compile(r"^[A-Za-z0-9._:@/+=-]{0,64}$")

# Every action the code can record, with what it means. docs/audit-events.md lists the same set
# (tests/test_conventions.py checks), so an auditor can read any row.
EVENTS: dict[str, str] = {
    "workspace.init": "A workspace was created.",
    "user.create": "A user account was created (details: role).",
    "user.role_change": "A user's role changed (details: old, new, clips_given_back).",
    "user.deactivate": "A user account was deactivated (details: clips_given_back).",
    "auth.login": "A user logged in.",
    "auth.login_failed": "A login failed (details: reason; object is the user id when the name exists).",
    "auth.lockout": "Too many failed logins locked a user out (details: minutes).",
    "auth.logout": "A user logged out.",
    "token.create": "A service token was created (details: role, prefix).",
    "token.revoke": "A service token was revoked.",
    "clip.ingest": "A clip was stored (details: format, sample_rate, channels, num_samples, via).",
    "consent.set": "An account's consent changed (details: human_review, training_use, withdrawn, exports_to_prune).",
    "sample.draw": "Clips were drawn for review, or for the wake-word team, by a policy (details: policy, eligible, "
    "drawn, priority, wake_word, capped).",
    "export.create": "A training-data export was written (details: format, version, items, audio, skipped counts).",
    "export.forget": (
        "An export's folder was deleted outside earmark and its row marked gone, so no prune waits "
        "for it (details: version, state it had, items)."
    ),
    "export.prune": (
        "An export was rewritten without erased or withdrawn clips, or (removed 0) found to hold none and "
        "marked current again at the same version (details: version, removed, items)."
    ),
    "metrics.view": "Program metrics were computed for someone (details: clips counted).",
    "queue.withdraw": "A clip left its queue (details: reason).",
    "review.lease": "A reviewer leased a clip (details: queue, expires_s).",
    "review.audio": "A reviewer's browser fetched a clip's audio (details: bytes).",
    "review.submit": "A reviewer submitted an annotation (details: words, intent_changed).",
    "review.expire": "A lease ran out and its clip returned to the queue.",
    "review.release": "A reviewer opened another queue, or their role changed or they were deactivated; the clip "
    "they held returned to its queue unsaved (details: queue, and opened or reason).",
    "pipeline.process": "The safe-to-hear pipeline finished a clip (details: outcome, reason, pii_spans, labels).",
    "pipeline.retry": "Clips held by a processing error were sent back to the pipeline (details: clips, skipped).",
    "pipeline.hold": "A clip's processing failed; it is held, never queued unprotected (details: reason).",
    "account.erase": "An account was erased: key shredded, text deleted (details: clips, annotations, blobs, "
    "exports_to_prune).",
    "retention.run": "The retention policy purged expired data (details: counts per data class).",
    "audit.export": "The audit log was exported (details: rows).",
    "safety.account_lookup": "The program owner looked up the account of an escalated clip (details: escalation).",
    "safety.resolve": "The program owner closed an escalation (details: escalation, resolution).",
    "audit.anchor": "The chain's head was written out, to be kept outside the database (details: seq).",
    "report.create": "A transparency report was produced for an account (details: format).",
    "settings.change": "The effective settings differ from the last ones seen (details: changed keys).",
    "catalog.import": "Entities were imported into the catalog (details: added, updated, errors).",
    "inventory.import": "The intent and slot inventory was replaced (details: intents, slots).",
    "review.skip": "A reviewer skipped a clip (details: reason); it returns to the queue for others.",
    "review.flag": "A reviewer flagged a clip (details: flag).",
    "review.pii_missed": (
        "A reviewer reported personal data left audible; the clip is re-protected and earlier passes "
        "lose their text, as does its gold answer (details: spans, passes_superseded, gold_removed)."
    ),
    "review.sensitive": (
        "A reviewer flagged distressing content; the clip moved to the safety queue and left the gold set "
        "(details: gold_removed)."
    ),
    "review.adjudicate": "A senior settled a clip whose passes disagreed.",
    "quality.disagreement": "Passes of a clip disagreed; it went to adjudication (details: wer, intent_differs).",
    "help.ask": "A reviewer asked a senior about a time range of a clip (details: seconds).",
    "help.audio": "A senior heard the asked range of a help request's clip (the object; details: help, bytes, seconds)",
    "help.answer": "A senior answered a help request.",
    "help.apply": "The asker applied the answer to their transcript.",
    "safety.lease": "A safety reviewer opened a clip of the safety queue.",
    "safety.outcome": "A safety reviewer recorded an outcome (details: outcome).",
    "safety.pause": "A safety reviewer reached the exposure limit; their queue paused (details: clips, window).",
    "wakeword.answer": "The wake-word team said what woke the device for a clip without speech (details: label).",
    "gold.add": "A clip was made a gold clip with its reviewed answer (details: source, annotation).",
    "gold.remove": "A clip left the gold set (details: withdrawn_items, gold items not yet leased).",
    "keys.rotate": "The workspace key was rotated (details: old/new key ids, accounts rewrapped).",
    "blob.collect": "Orphan blobs were deleted (details: count).",
}


class AuditDetailError(ValueError):
    """Audit details must be ids, counts and enums; this one was not."""


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    rows: int
    first_bad_seq: int | None = None
    reason: str = ""


def _check_details(details: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in details.items():
        if isinstance(value, bool | int | float) or value is None:
            out[key] = value
        elif isinstance(value, str):
            if not _TOKEN_RE.match(value):
                raise AuditDetailError(f"audit detail {key!r} is not an id or enum (no free text)")
            out[key] = value
        elif isinstance(value, list | tuple) and all(isinstance(v, int | str) for v in value):
            if len(value) > 1000 or any(isinstance(v, str) and not _TOKEN_RE.match(v) for v in value):
                raise AuditDetailError(f"audit detail {key!r}: ids only, at most 1000")
            out[key] = list(value)
        else:
            raise AuditDetailError(f"audit detail {key!r} has type {type(value).__name__}")
    return out


def canonical(
    *,
    seq: int,
    at: datetime,
    actor: str,
    actor_role: str | None,
    action: str,
    object_type: str | None,
    object_id: str | None,
    details: Mapping[str, Any],
) -> bytes:
    body = {
        "seq": seq,
        "at": at.isoformat(timespec="microseconds"),
        "actor": actor,
        "actor_role": actor_role,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "details": details,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def row_hash(prev_hash: str, content: bytes) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + content).hexdigest()


def _locked_head(session: Session) -> AuditHead:
    """The chain's head row, locked for the rest of the transaction (taken once per transaction)."""
    key = "earmark.audit_head"
    held = session.info.get(key)
    if held is not None and held[0] is session.get_transaction():
        return held[1]  # type: ignore[no-any-return]
    head = session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one()
    session.info[key] = (session.get_transaction(), head)
    return head


def record(
    session: Session,
    *,
    actor: Actor,
    action: str,
    object_type: str | None = None,
    object_id: str | int | None = None,
    details: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the chain inside the caller's transaction (the caller commits)."""
    if action not in EVENTS:
        raise ValueError(f"unknown audit action {action!r}; add it to audit.EVENTS and docs/audit-events.md")
    clean = _check_details(details or {})
    head = _locked_head(session)
    # Microsecond precision survives every backend, so the stored row re-hashes to the same value.
    at = utcnow()
    seq = head.seq + 1
    oid = None if object_id is None else str(object_id)
    content = canonical(
        seq=seq,
        at=at,
        actor=actor.label,
        actor_role=actor.role,
        action=action,
        object_type=object_type,
        object_id=oid,
        details=clean,
    )
    digest = row_hash(head.hash, content)
    event = AuditEvent(
        seq=seq,
        at=at,
        actor=actor.label,
        actor_role=actor.role,
        action=action,
        object_type=object_type,
        object_id=oid,
        details=clean,
        prev_hash=head.hash,
        hash=digest,
    )
    session.add(event)
    head.seq = seq
    head.hash = digest
    session.flush()
    return event


def iter_events(session: Session, *, batch: int = 2000) -> Iterator[AuditEvent]:
    last = 0
    while True:
        rows = (
            session.execute(select(AuditEvent).where(AuditEvent.seq > last).order_by(AuditEvent.seq).limit(batch))
            .scalars()
            .all()
        )
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def verify_chain(session: Session) -> VerifyResult:
    """Walk the whole chain; report the first row that was changed, deleted, inserted or moved."""
    prev = GENESIS
    expected = 1
    n = 0
    for ev in iter_events(session):
        n += 1
        if ev.seq != expected:
            return VerifyResult(False, n, expected, f"row {expected} is missing (next row is {ev.seq})")
        if ev.prev_hash != prev:
            return VerifyResult(False, n, ev.seq, "does not link to the row before it")
        content = canonical(
            seq=ev.seq,
            at=ev.at,
            actor=ev.actor,
            actor_role=ev.actor_role,
            action=ev.action,
            object_type=ev.object_type,
            object_id=ev.object_id,
            details=ev.details,
        )
        if row_hash(prev, content) != ev.hash:
            return VerifyResult(False, n, ev.seq, "content does not match its hash (edited)")
        prev = ev.hash
        expected += 1
    head = session.execute(select(AuditHead).where(AuditHead.id == 1)).scalar_one()
    if head.seq != expected - 1 or head.hash != prev:
        return VerifyResult(False, n, expected, f"rows after {expected - 1} were deleted (head is {head.seq})")
    return VerifyResult(True, n)


@dataclass(frozen=True, slots=True)
class Anchor:
    """A row of the chain as someone outside the database wrote it down: its sequence number and
    hash. The chain alone cannot show that its newest rows were cut off (the head can be set
    back with them); a row it no longer holds, or holds with another hash, against an anchor kept
    elsewhere can."""

    seq: int
    hash: str


def head_anchor(session: Session) -> Anchor:
    """The chain's newest row, to be kept outside the database (`earmark audit anchor`)."""
    head = session.execute(select(AuditHead).where(AuditHead.id == 1)).scalar_one()
    return Anchor(int(head.seq), str(head.hash))


def read_anchors(text: str, *, source: str = "anchor") -> list[Anchor]:
    """Anchors from a file `earmark audit anchor` wrote (one JSON object per line) or from an
    earlier `earmark audit export` (its rows are anchors; the last one names the head then)."""
    anchors = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            anchors.append(Anchor(int(row["seq"]), str(row["hash"])))
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(f"{source}, line {number}: not an audit anchor or exported audit row ({exc})") from None
    if not anchors:
        raise InvalidInput(f"{source}: holds no anchor")
    # An export is every row: its last one says as much as all (the chain links them).
    return [max(anchors, key=lambda a: a.seq)] if len(anchors) > 1 and _is_chain(anchors) else anchors


def _is_chain(anchors: list[Anchor]) -> bool:
    return [a.seq for a in anchors] == list(range(anchors[0].seq, anchors[0].seq + len(anchors)))


def check_anchors(session: Session, anchors: list[Anchor]) -> VerifyResult | None:
    """The first anchor the database no longer agrees with, as a failed result; None if all hold.
    Call after `verify_chain` passed: each row's hash then stands for every row before it."""
    last = session.execute(select(func.max(AuditEvent.seq))).scalar_one() or 0
    for anchor in sorted(anchors, key=lambda a: a.seq):
        row = session.execute(select(AuditEvent.hash).where(AuditEvent.seq == anchor.seq)).scalar_one_or_none()
        if row is None:
            gone = f"row {anchor.seq} of the anchor is gone: the chain ends at {last} (rows were cut off)"
            return VerifyResult(False, last, anchor.seq, gone)
        if row != anchor.hash:
            return VerifyResult(
                False, last, anchor.seq, f"row {anchor.seq} differs from the anchor (the chain up to it was rewritten)"
            )
    return None


def event_dict(ev: AuditEvent) -> dict[str, Any]:
    return {
        "seq": ev.seq,
        "at": ev.at.isoformat(timespec="microseconds"),
        "actor": ev.actor,
        "actor_role": ev.actor_role,
        "action": ev.action,
        "object_type": ev.object_type,
        "object_id": ev.object_id,
        "details": ev.details,
        "prev_hash": ev.prev_hash,
        "hash": ev.hash,
    }


OBJECT_TYPES = ("account", "assignment", "clip", "export", "help", "queue_item", "token", "user")


def search(
    session: Session,
    *,
    action: str | None = None,
    actor: str | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    before_seq: int | None = None,
    limit: int = 100,
) -> list[AuditEvent]:
    """Newest first, filtered; page with `before_seq` (keyset pagination, cheap on big logs).

    `action` is a prefix, taken literally ("%" and "_" are not wildcards). A clip (`object_type`
    "clip", by its id or its external id) also brings the events of its passes (leases, listens,
    submits are recorded against the assignment): who heard this clip, and when."""
    q = select(AuditEvent)
    if action:
        q = q.where(AuditEvent.action.startswith(action, autoescape=True))
    if actor:
        q = q.where(AuditEvent.actor == actor)
    if object_type == "clip" and object_id:
        # An internal id (ASCII digits) or a clip id as the customer's report shows it; an all-digit
        # clip id is looked up as such too.
        number = int(object_id) if object_id.isascii() and object_id.isdecimal() and len(object_id) <= 18 else None
        by = Clip.external_id == object_id if number is None else or_(Clip.id == number, Clip.external_id == object_id)
        found = list(session.execute(select(Clip.id).where(by).order_by(Clip.id).limit(10)).scalars())
        ids = [str(i) for i in found] or [object_id]
        theirs = (AuditEvent.object_type == "clip") & AuditEvent.object_id.in_(ids)
        if found:
            passes = select(Assignment.id).where(Assignment.clip_id.in_(found))
            theirs = theirs | ((AuditEvent.object_type == "assignment") & AuditEvent.object_id.in_(passes))
        q = q.where(theirs)
    else:
        if object_type:
            q = q.where(AuditEvent.object_type == object_type)
        if object_id:
            q = q.where(AuditEvent.object_id == object_id)
    if before_seq is not None:
        q = q.where(AuditEvent.seq < before_seq)
    return list(session.execute(q.order_by(AuditEvent.seq.desc()).limit(limit)).scalars())
