"""Transparency reports: what earmark holds about one account and who (by role, never by name)
heard which of its recordings. For the customer, through the assistant's backend (service API)
or the CLI."""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime
from importlib import resources
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from earmark import audit
from earmark.erasure import erased_accounts, find_account
from earmark.errors import InvalidInput
from earmark.export import still_exportable
from earmark.manifest import ID_PATTERN
from earmark.models import (
    Account,
    Annotation,
    Assignment,
    AuditEvent,
    Clip,
    Export,
    ExportClip,
    HelpRequest,
    QueueItem,
    SafetyOutcome,
    utcnow,
)
from earmark.types import Actor, Consent
from earmark.wakeword import KIND as WAKE_KIND

TEAMS = {
    "reviewer": "general review team",
    "senior": "senior reviewers",
    "safety": "safety team (trained for distressing content)",
    "wakeword": "wake-word team (recordings in which nobody spoke to the assistant)",
    "admin": "program administrators",
}
REASONS = {
    "uniform": "chosen at random from consenting accounts (probability {p:.1%})",
    "priority": "chosen because the assistant was unsure what was said or meant, where a person's check helps "
    "most (probability {p:.1%})",
    "wake_word": "chosen at random among recordings the assistant may have started by mistake, for the team that "
    "improves how it listens for its wake word, not for general review (probability {p:.1%})",
}


# Why a team heard a recording, beyond why it was chosen: the queue it went to.
SENT_TO = {
    "general": "the general review team",
    "safety_screening": "the safety team, because automatic screening found it may hold distress or danger",
    "safety_flag": "the safety team, because a reviewer found it may hold distress or danger",
    "safety": "the safety team, because it may hold distress or danger",
    "wakeword": "the wake-word team, because nobody seemed to speak to the assistant after it started listening",
}


def _day(value: datetime | None) -> str | None:
    return value.date().isoformat() if value else None


def build_report(
    session: Session, *, actor: Actor, account_id: str, secret: bytes, consent_default: str = Consent.deny
) -> dict[str, Any]:
    """The report as plain data. An account earmark never saw gets an empty report of the same
    shape. An id no account can have (the ingest rules) is refused. Audited."""
    if not re.fullmatch(ID_PATTERN, account_id):
        raise InvalidInput(
            "not an account id: 1 to 128 letters, digits and . _ : @ -, starting with a letter or digit",
            field="account_id",
        )
    account, erased = find_account(session, secret=secret, account_id=account_id)
    report: dict[str, Any] = {
        "account_id": account_id,
        "generated_at": utcnow().isoformat(timespec="seconds"),
        "known": account is not None,
        "erased_on": None,
        "human_review_consent": None,
        "training_use_consent": None,
        "recordings": {
            "stored": 0,
            "total_received": 0,
            "by_status": {},
            "first_recorded": None,
            "last_recorded": None,
        },
        "sampled_for_human_review": [],
        "human_listens": [],
        "annotations_kept": {"count": 0, "fields": [], "help_questions": 0, "safety_notes": 0},
        "exports": [],
        "exports_left": [],
        "deleted": {
            "erased_recordings": 0,
            "original_audio_deleted_by_retention": 0,
            "protected_audio_deleted_by_retention_or_withdrawal": 0,
            "transcripts_deleted_by_retention": 0,
        },
        "earlier_erasures": [],
    }
    if account is None:
        audit.record(session, actor=actor, action="report.create", details={"known": False})
        return report
    report["erased_on"] = _day(account.erased_at)
    # The consent in effect, as sampling and review apply it: no answer means the program's default.
    if account.human_review:
        report["human_review_consent"] = account.human_review
    elif Consent(consent_default) == Consent.allow:
        report["human_review_consent"] = "allow (you gave no answer; this program reviews unless told not to)"
    else:
        report["human_review_consent"] = "not given (review not allowed)"
    report["training_use_consent"] = account.training_use or (
        "not given (your own voice is not used to train models; a version with the voice changed may be)"
    )
    # Earlier erasures of this account id stay in its history: the customer recording again after
    # an erasure must still learn who heard the erased recordings, and that they were erased.
    earlier = [t for t in erased_accounts(session, secret=secret, account_id=account_id) if t.id != account.id]
    report["earlier_erasures"] = [_day(t.erased_at) for t in earlier]
    owners = [account.id, *(t.id for t in earlier)]
    clips = list(session.execute(select(Clip).where(Clip.account_id.in_(owners)).order_by(Clip.recorded_at)).scalars())
    by_status = Counter(c.status for c in clips)
    report["recordings"] = {
        "stored": sum(1 for c in clips if c.blob_key),
        "total_received": len(clips),
        "by_status": dict(sorted(by_status.items())),
        "first_recorded": _day(clips[0].recorded_at) if clips else None,
        "last_recorded": _day(clips[-1].recorded_at) if clips else None,
    }
    sent = _sent_to(session, [c.id for c in clips if c.sampled_at is not None])
    for c in clips:
        if c.sampled_at is None:
            continue
        why = REASONS.get(c.sample_reason or "", "{p}").format(p=c.inclusion_probability or 0)
        report["sampled_for_human_review"].append(
            {
                "clip_id": c.external_id,
                "recorded_on": _day(c.recorded_at),
                "sampled_on": _day(c.sampled_at),
                "why": why,
                "sent_to": [SENT_TO[k] for k in sent.get(c.id, [])],
                "status": c.status,
            }
        )
    clip_by_id = {c.id: c for c in clips}
    if clip_by_id:
        listens = session.execute(
            # The listener's role when they listened (the event's), not their role now.
            select(AuditEvent.at, Assignment.clip_id, AuditEvent.actor_role, AuditEvent.seq, AuditEvent.actor)
            .join(Assignment, Assignment.id == AuditEvent.object_id)
            .where(AuditEvent.action == "review.audio", Assignment.clip_id.in_(list(clip_by_id)))
            .order_by(AuditEvent.seq)
        ).all()
        # A senior answering a help request hears the clip too. Older events name the request, not
        # the clip: found through it while the request exists.
        helped = session.execute(
            select(AuditEvent.at, AuditEvent.object_id, AuditEvent.actor_role, AuditEvent.seq, AuditEvent.actor).where(
                AuditEvent.action == "help.audio",
                AuditEvent.object_type == "clip",
                AuditEvent.object_id.in_([str(i) for i in clip_by_id]),
            )
        ).all()
        helped_before = session.execute(
            select(AuditEvent.at, HelpRequest.clip_id, AuditEvent.actor_role, AuditEvent.seq, AuditEvent.actor)
            .join(HelpRequest, HelpRequest.id == AuditEvent.object_id)
            .where(
                AuditEvent.action == "help.audio",
                AuditEvent.object_type == "help",
                HelpRequest.clip_id.in_(list(clip_by_id)),
            )
        ).all()
        # One row per person and recording (a page reload fetches the audio again: that is one
        # person hearing it, fetched twice), with how often the audio was sent to them.
        rows: dict[tuple[int, str, str], dict[str, Any]] = {}
        for at, clip_id, role, _seq, who in sorted([*listens, *helped, *helped_before], key=lambda row: row[3]):
            key = (int(clip_id), str(role), str(who))
            if key in rows:
                rows[key]["times"] += 1
                rows[key]["last_date"] = _day(at)
                continue
            rows[key] = {
                "clip_id": clip_by_id[int(clip_id)].external_id,
                "date": _day(at),
                "role": role,
                "team": TEAMS.get(role, role),
                "heard": "protected version: voice anonymized, personal data bleeped",
                "times": 1,
                "last_date": _day(at),
            }
        report["human_listens"] = list(rows.values())
        by_kind = dict(
            session.execute(
                select(Annotation.kind, func.count())
                .where(Annotation.clip_id.in_(list(clip_by_id)))
                .group_by(Annotation.kind)
            ).all()
        )
        fields = ["transcript", "intent"] if set(by_kind) - {WAKE_KIND} else []
        if WAKE_KIND in by_kind:  # the wake-word team's answers hold no words
            fields.append("what woke the device")
        asked = session.execute(
            select(func.count()).select_from(HelpRequest).where(HelpRequest.clip_id.in_(list(clip_by_id)))
        ).scalar_one()
        notes = session.execute(
            select(func.count())
            .select_from(SafetyOutcome)
            .where(SafetyOutcome.clip_id.in_(list(clip_by_id)), SafetyOutcome.note.is_not(None))
        ).scalar_one()
        report["annotations_kept"] = {
            "count": int(sum(by_kind.values())),
            "fields": fields,
            "help_questions": int(asked),  # a reviewer's question to the seniors, with its answer
            "safety_notes": int(notes),  # what the safety team wrote about a recording
        }
    if clip_by_id:
        # The training datasets that hold its recordings now; a prune removes them (and the rows).
        # Which of its recordings a prune will take out (as `export.prune_exports` decides): erased,
        # review no longer allowed, kept by the safety team, or, in original audio, training use
        # no longer allowed. Another account's erasure marks the same export; that is not this one's.
        # Not true (false, or NULL for no consent given) counts as leaving, as in the prune.
        leaving = case((still_exportable(consent_default, Export.audio), 0), else_=1)
        held = session.execute(
            select(
                Export.name,
                Export.format,
                Export.created_at,
                func.count(),
                func.sum(leaving),
            )
            .join(ExportClip, ExportClip.export_id == Export.id)
            .join(Clip, Clip.id == ExportClip.clip_id)
            .join(Account, Account.id == Clip.account_id)
            .where(
                ExportClip.clip_id.in_(list(clip_by_id)),
                ExportClip.removed_at.is_(None),
                Export.state.not_in(["superseded", "gone"]),
            )
            .group_by(Export.id, Export.name, Export.format, Export.created_at)
            .order_by(Export.created_at)
        ).all()
        # The datasets its recordings were in and are no longer: taken out by a prune, left out of
        # a newer version, or the dataset deleted (forgotten). Copies made before may exist, so the
        # customer is told. Per export name, as its versions share it.
        ever = session.execute(
            select(
                Export.name,
                Export.format,
                Export.created_at,
                Export.state,
                Export.forgotten_at,
                ExportClip.clip_id,
                ExportClip.removed_at,
            )
            .join(ExportClip, ExportClip.export_id == Export.id)
            .where(ExportClip.clip_id.in_(list(clip_by_id)))
            .order_by(Export.id)
        ).all()
        now_in = {(r.name, r.clip_id) for r in ever if r.state not in ("superseded", "gone") and r.removed_at is None}
        per_name: dict[str, list[Any]] = {}
        per_clip: dict[tuple[str, int], list[Any]] = {}
        for r in ever:
            per_name.setdefault(r.name, []).append(r)
            per_clip.setdefault((r.name, r.clip_id), []).append(r)
        names = sorted(per_name)
        newest = (
            dict(
                session.execute(
                    select(Export.name, func.max(Export.created_at)).where(Export.name.in_(names)).group_by(Export.name)
                ).all()
            )
            if names
            else {}
        )
        # Per export name and way out: each clip once, by how it left (a prune's removal stands
        # even if the folder was deleted later) and when.
        left: dict[tuple[str, str], dict[str, Any]] = {}
        for (name, clip_id), mine in sorted(per_clip.items()):
            if (name, clip_id) in now_in:
                continue
            removed = [r.removed_at for r in mine if r.removed_at is not None]
            forgotten = [r.forgotten_at for r in mine if r.state == "gone" and r.removed_at is None]
            if removed:
                how, when = "taken out of the dataset", max(removed)
            elif forgotten and forgotten[-1] is not None:
                how, when = "the dataset was deleted", forgotten[-1]
            else:  # left out of a newer version: the day that version was made
                how, when = "taken out of the dataset", newest.get(name)
            rows = per_name[name]
            entry = left.setdefault(
                (name, how),
                {
                    "name": name,
                    "format": rows[-1].format,
                    "created_on": _day(rows[0].created_at),
                    "recordings": 0,
                    "removed_on": None,
                    "how": how,
                },
            )
            entry["recordings"] += 1
            entry["removed_on"] = max(filter(None, [entry["removed_on"], _day(when)]), default=None)
        report["exports_left"] = list(left.values())
        report["exports"] = [
            {
                "name": name,
                "format": fmt,
                "created_on": _day(created),
                "recordings": n,
                "to_be_removed": bool(out),  # some of this account's recordings leave it at the next prune
                "recordings_to_be_removed": int(out or 0),
            }
            for name, fmt, created, n, out in held
        ]
    report["deleted"] = {
        "erased_recordings": sum(1 for c in clips if c.erased_at),
        "original_audio_deleted_by_retention": sum(1 for c in clips if c.original_purged_at),
        # A consent withdrawal deletes the protected audio too, and marks it the same way.
        "protected_audio_deleted_by_retention_or_withdrawal": sum(1 for c in clips if c.derivative_purged_at),
        "transcripts_deleted_by_retention": sum(1 for c in clips if c.text_purged_at),
    }
    audit.record(
        session,
        actor=actor,
        action="report.create",
        object_type="account",
        object_id=account.id,
        details={"known": True, "erased": erased, "listens": len(report["human_listens"])},
    )
    return report


def _sent_to(session: Session, clip_ids: list[int]) -> dict[int, list[str]]:
    """Per clip, the teams whose queue it went to, in order (keys of SENT_TO). Why a clip went to
    the safety team comes from the audit log, which outlives every retention: screening routed it
    (`pipeline.process`, outcome safety) or a person flagged it (`review.sensitive`), in the order
    they happened (a clip can be both, e.g. flagged after it was re-protected)."""
    if not clip_ids:
        return {}
    why: dict[int, list[str]] = {}
    for object_id, action, details in session.execute(
        select(AuditEvent.object_id, AuditEvent.action, AuditEvent.details)
        .where(
            AuditEvent.object_type == "clip",
            AuditEvent.object_id.in_([str(i) for i in clip_ids]),
            AuditEvent.action.in_(["pipeline.process", "review.sensitive"]),
        )
        .order_by(AuditEvent.seq)
    ).all():
        if action == "review.sensitive":
            key = "safety_flag"
        elif (details or {}).get("outcome") == "safety":
            key = "safety_screening"
        else:
            continue
        reasons = why.setdefault(int(object_id), [])
        if key not in reasons:
            reasons.append(key)
    out: dict[int, list[str]] = {}
    for clip_id, queue in session.execute(
        select(QueueItem.clip_id, QueueItem.queue).where(QueueItem.clip_id.in_(clip_ids)).order_by(QueueItem.id)
    ).all():
        keys = (why.get(clip_id) or ["safety"]) if queue == "safety" else [queue]
        for key in keys:
            if key in SENT_TO and key not in out.setdefault(clip_id, []):
                out[clip_id].append(key)
    return out


def render_html(report: dict[str, Any]) -> str:
    env = Environment(
        loader=FileSystemLoader(str(resources.files("earmark.web") / "templates")),
        autoescape=select_autoescape(["html"]),
    )
    return env.get_template("transparency_report.html").render(r=report)
