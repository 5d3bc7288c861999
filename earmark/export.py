"""Training-data exports: reviewed clips out, in the formats speech teams use, versioned and prunable.

An export is a folder: the format's files (earmark/export_formats.py), `items.jsonl` (what they are
rendered from), `audio/` for the ASR formats, and `earmark-manifest.json` (name, version, format,
item ids, the sampling behind them, counts and a content hash). The database keeps one `exports`
row per folder and which clips each holds, so erasure can mark every export holding an erased
clip and `earmark export prune` can render it again without them.

Only reviewed clips of accounts that still allow review go out. Audio is the protected derivative
(voice anonymized, personal data bleeped) unless an admin asks for originals, and then only for
accounts whose `training_use` consent is `allow`. Item ids are keyed pseudonyms, never clip ids.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import soundfile as sf
from sqlalchemy import ColumnElement, Select, and_, func, literal, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import Subquery

from earmark import audit
from earmark.audio import decode_mono, encode_wav, resample
from earmark.consent import allows_review, share_lock_accounts
from earmark.crypto import decrypt_blob
from earmark.errors import InvalidInput, KeyUnavailable, NotFound
from earmark.export_formats import (
    AUDIO_FORMATS,
    DEFAULT_SPLIT,
    FORMATS,
    NLU_FORMATS,
    PLACEHOLDER,
    SPLITS,
    WAKE_FORMATS,
    Item,
    audio_path,
    parse_split,
    render,
    split_of,
)
from earmark.keys import data_key
from earmark.models import Account, Annotation, Assignment, Clip, Export, ExportClip, QueueItem, utcnow
from earmark.quality import GOLD
from earmark.queues import restricted_clips
from earmark.types import Actor, ClipStatus, Consent
from earmark.wakeword import EXPORTED as WAKE_EXPORTED
from earmark.wakeword import KIND as WAKE_KIND
from earmark.wakeword import no_speech_clips

if TYPE_CHECKING:
    from earmark.workspace import Workspace

MANIFEST = "earmark-manifest.json"
ITEMS = "items.jsonl"
CHUNK = 100


@dataclass(slots=True)
class ExportResult:
    name: str
    version: int
    path: Path
    format: str
    items: int
    content_hash: str
    skipped: dict[str, int] = field(default_factory=dict)
    splits: dict[str, int] = field(default_factory=dict)  # items per split
    masked: int = 0  # items whose transcript holds a redaction placeholder


def item_id(secret: bytes, clip_external_id: str) -> str:
    """The clip's pseudonym in exports: stable across exports, meaningless without the workspace secret."""
    return "utt-" + hmac.new(secret, f"export-item|{clip_external_id}".encode(), hashlib.sha256).hexdigest()[:20]


LABEL_KINDS = ("label", "adjudication")


def final_label_ids(kinds: tuple[str, ...] = LABEL_KINDS) -> Subquery:
    """(clip_id, ann_id) of each clip's final label: its newest label or adjudication (an
    adjudication comes after the passes it settles), or with `kinds=("wakeword",)` its wake-word
    answer. Gold-queue passes are tests of the reviewer, not labels of the clip."""
    return (
        select(Annotation.clip_id, func.max(Annotation.id).label("ann_id"))
        .join(Assignment, Assignment.id == Annotation.assignment_id)
        .join(QueueItem, QueueItem.id == Assignment.queue_item_id)
        .where(Annotation.kind.in_(kinds), QueueItem.queue != GOLD)
        .group_by(Annotation.clip_id)
        .subquery()
    )


def _exportable(query: Select[Any], consent_default: Consent, audio: str | None = None) -> Select[Any]:
    """`query` (over clips) narrowed to clips an export may hold: reviewed, not erased, consent
    allows review, not kept by the safety team, and for original audio, training use allowed."""
    query = (
        query.join(Account, Account.id == Clip.account_id)
        .where(Clip.status == ClipStatus.reviewed, Clip.erased_at.is_(None), allows_review(consent_default))
        .where(Clip.id.not_in(restricted_clips()))  # the safety team's clips are not training data
    )
    if audio == "original":
        query = query.where(Account.training_use == Consent.allow)
    return query


def final_labels(
    session: Session, *, consent_default: Consent, kinds: tuple[str, ...] = LABEL_KINDS
) -> list[tuple[Clip, Annotation]]:
    """Each exportable clip with its final label (of `kinds`)."""
    newest = final_label_ids(kinds)
    rows = session.execute(
        _exportable(
            select(Clip, Annotation)
            .join(newest, newest.c.clip_id == Clip.id)
            .join(Annotation, Annotation.id == newest.c.ann_id),
            consent_default,
        ).order_by(Clip.id)
    ).all()
    return [(c, a) for c, a in rows]


def _check_folder(out: Path, force: bool, home: Path) -> None:
    """`out` may be a new or empty folder, or (with `force`) an earlier export, nothing else: the
    replace deletes the old folder whole, so `--force` on the workspace, a folder inside it that is
    not an export, or any other folder would delete what is in it."""
    if out.exists() and not out.is_dir():
        raise InvalidInput(f"{out} is a file; give a folder for the export", field="output")
    where, ws_home = out.resolve(), home.resolve()
    inside = ws_home in where.parents and (ws_home / "exports") not in where.parents
    if where == ws_home or where in ws_home.parents or inside:
        raise InvalidInput(
            f"{out} is the workspace, holds it, or is part of it; write the export to a folder of its own "
            f"(for example {ws_home / 'exports' / 'name'}, or one outside the workspace)",
            field="output",
        )
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise InvalidInput(f"{out} is not empty; choose a new folder or pass --force to replace it", field="output")
        if not (out / MANIFEST).is_file():
            raise InvalidInput(
                f"{out} is not an earmark export (no {MANIFEST}); --force only replaces an earlier export",
                field="output",
            )


def _check_next_version(session: Session, out: Path, fmt: str, name: str | None) -> None:
    """A forced export into an earlier one's folder is its next version: same format, same name.
    Anything else would change what a name and version history mean under the reader's feet."""
    previous = session.execute(
        select(Export).where(Export.path == str(out.resolve()), Export.state.not_in(["superseded", "gone"]))
    ).scalar_one_or_none()
    if previous is None:
        return
    if previous.format != fmt:
        raise InvalidInput(
            f"{out} holds export {previous.name!r} in {previous.format} format; a new version keeps the format, "
            f"so write {fmt} to a new folder",
            field="format",
        )
    if name is not None and name != previous.name:
        raise InvalidInput(
            f"{out} holds export {previous.name!r}; a new version keeps its name, so leave out --name "
            f"or write {name!r} to a new folder",
            field="name",
        )


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def content_hash(folder: Path) -> str:
    """SHA-256 over every file's relative path and SHA-256, the manifest itself left out."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != MANIFEST:
            h.update(f"{p.relative_to(folder).as_posix()}\0{hashlib.sha256(p.read_bytes()).hexdigest()}\n".encode())
    return h.hexdigest()


def _render_folder(folder: Path, fmt: str, items: list[Item], before: list[Item] | None = None) -> None:
    """Write `items` and the format's files; with `before` (the items the folder was rendered
    from), delete the files only `before` had (a split a prune emptied) and folders left empty."""
    _write(folder / ITEMS, "".join(it.to_json() + "\n" for it in items))
    files = render(fmt, items)
    for name, text in files.items():
        _write(folder / name, text)
    if before is not None:
        for name in render(fmt, before).keys() - files.keys():
            (folder / name).unlink(missing_ok=True)
            top = folder / Path(name).parts[0]
            if top.is_dir() and not any(p.is_file() for p in top.rglob("*")):
                shutil.rmtree(top)  # a split's folder (hf, rasa) whose last item was pruned


def _manifest(row: Export, items: list[Item], sampling: dict[str, Any], skipped: dict[str, int]) -> dict[str, Any]:
    splits = Counter(it.split for it in items)
    return {
        "name": row.name,
        "version": row.version,
        "format": row.format,
        "created_at": row.created_at.isoformat(timespec="seconds"),
        "pruned_at": row.pruned_at.isoformat(timespec="seconds") if row.pruned_at else None,
        "audio": row.audio,
        "policy": row.policy,
        "sampling": sampling,
        "counts": {
            "items": len(items),
            "intents": len({it.intent for it in items if it.intent}),
            "slots": sum(len(it.slots) for it in items),
            "audio_seconds": round(sum(it.duration for it in items if it.audio), 3),
            "skipped": skipped,
            # In original audio these pair the customer's real words with `[PHONE]`: a wrong ASR target.
            "masked_transcripts": sum(1 for it in items if PLACEHOLDER.search(it.text)),
            # Items per split (household-disjoint); an export made before splits has none.
            "splits": {k: splits[k] for k in SPLITS} if None not in splits else None,
        },
        "item_ids": [it.id for it in items],
        "content_hash": row.content_hash,
    }


def _audio(ws: Workspace, session: Session, clip: Clip, kind: str, keys: dict[int, bytes]) -> bytes:
    if clip.account_id not in keys:
        keys[clip.account_id] = data_key(session, ws.keyring, clip.account_id)
    blob = clip.protected_blob_key if kind == "protected" else clip.blob_key
    assert blob is not None
    data = decrypt_blob(keys[clip.account_id], ws.blobs.get(blob), blob_key=blob)
    if kind == "protected":
        return data
    x, rate = decode_mono(data)  # originals come in many formats and rates: one WAV layout out
    return encode_wav(resample(x, rate, 16_000), 16_000)


def _gone(session: Session, clip_id: int, audio: str) -> bool:
    """Was the clip erased, or its audio deleted? (In a new session: what has committed.)"""
    row = session.execute(
        select(Clip.erased_at, Clip.protected_blob_key if audio == "protected" else Clip.blob_key).where(
            Clip.id == clip_id
        )
    ).one_or_none()
    return row is None or row[0] is not None or row[1] is None


def run_export(
    ws: Workspace,
    *,
    actor: Actor,
    fmt: str,
    out: Path,
    audio: str = "protected",
    name: str | None = None,
    force: bool = False,
    split: str = DEFAULT_SPLIT,
    skip_masked: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ExportResult:
    """Write an export of every exportable reviewed clip to `out` and register it (one transaction).

    Each household (account) goes to one split, `split` percent of households for train/dev/test
    (`none`: all train), by a keyed hash of its account id (export_formats.split_of).

    `skip_masked` leaves out items whose transcript holds a redaction placeholder (`[PHONE]`): in
    original audio the speech says the number the text does not.

    Clips erased while the export is written are left out: each chunk re-reads the clips it writes,
    and the registering transaction locks them and drops any that were erased since."""
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown format {fmt!r} (one of: {', '.join(FORMATS)})", field="format")
    if audio not in ("protected", "original"):
        raise InvalidInput("audio must be 'protected' or 'original'", field="audio")
    if audio == "original" and fmt in NLU_FORMATS:
        raise InvalidInput(
            f"{fmt} is a text-only format: it carries no audio, original or protected; leave out --audio",
            field="audio",
        )
    ratio = parse_split(split)
    _check_folder(out, force, ws.settings.home)
    with ws.sessions() as session:
        _check_next_version(session, out, fmt, name)
    asr = fmt in AUDIO_FORMATS
    wake = fmt in WAKE_FORMATS
    consent = Consent(ws.settings.consent_default)
    with ws.sessions() as session:
        kinds = (WAKE_KIND,) if wake else LABEL_KINDS
        todo = [(c.id, a.id) for c, a in final_labels(session, consent_default=consent, kinds=kinds)]
    skipped: Counter[str] = Counter()
    items: dict[int, Item] = {}
    out.parent.mkdir(parents=True, exist_ok=True)
    # Written next to `out`, so the finished folder moves into place with one rename.
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for start in range(0, len(todo), CHUNK):
            chunk = dict(todo[start : start + CHUNK])
            with ws.sessions() as session:
                rows = session.execute(
                    select(Clip, Annotation, Account.training_use, Account.external_id)
                    .join(Annotation, Annotation.clip_id == Clip.id)
                    .join(Account, Account.id == Clip.account_id)
                    .where(Clip.id.in_(list(chunk)), Annotation.id.in_(list(chunk.values())))
                ).all()
                keys: dict[int, bytes] = {}
                quiet = no_speech_clips(session, list(chunk)) if wake else set()
                for clip, ann, training_use, household in rows:
                    if clip.erased_at is not None:
                        skipped["erased"] += 1
                        continue
                    if wake and ann.reason not in WAKE_EXPORTED:
                        skipped[f"answer_{ann.reason}"] += 1
                        continue
                    if wake and clip.id not in quiet:
                        # Drawn for the team, with speech in it: voices that never spoke to the
                        # assistant, whatever woke it.
                        skipped["speech"] += 1
                        continue
                    it = Item(
                        id=item_id(ws.secret, clip.external_id),
                        text=ann.transcript,
                        locale=clip.locale,
                        intent=ann.intent,
                        slots=[dict(s) for s in ann.slots or []],
                        label=ann.reason if wake else None,
                        split=split_of(ws.secret, household, ratio),
                    )
                    if skip_masked and PLACEHOLDER.search(it.text):
                        skipped["masked"] += 1
                        continue
                    if asr:
                        if audio == "original" and training_use != Consent.allow:
                            skipped["no_training_consent"] += 1
                            continue
                        if not (clip.protected_blob_key if audio == "protected" else clip.blob_key):
                            skipped["audio_deleted"] += 1
                            continue
                        try:
                            wav = _audio(ws, session, clip, audio, keys)
                        except (KeyUnavailable, NotFound):
                            # An erasure (or retention) committed after this chunk was read: its key
                            # or blob is gone. Left out, as registration would leave it out.
                            with ws.sessions() as fresh:
                                if not _gone(fresh, clip.id, audio):
                                    raise
                            skipped["erased"] += 1
                            continue
                        rel = audio_path(fmt, it)
                        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                        (tmp / rel).write_bytes(wav)
                        info = sf.info(io.BytesIO(wav))
                        it = replace(it, audio=rel, sample_rate=info.samplerate, num_samples=info.frames)
                    items[clip.id] = it
            if progress is not None:
                progress(min(start + CHUNK, len(todo)), len(todo))
        return _register(
            ws,
            actor=actor,
            fmt=fmt,
            out=out,
            tmp=tmp,
            items=items,
            audio=audio if asr else None,
            name=name or out.name,
            skipped=skipped,
            split="/".join(map(str, ratio)) if ratio else "none",
        )
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _sampling_summary(session: Session, clip_ids: list[int]) -> dict[str, Any]:
    reasons: Counter[str] = Counter()
    policies: Counter[str] = Counter()
    probs: list[float] = []
    for i in range(0, len(clip_ids), 500):
        for reason, policy, p in session.execute(
            select(Clip.sample_reason, Clip.sample_policy, Clip.inclusion_probability).where(
                Clip.id.in_(clip_ids[i : i + 500])
            )
        ):
            reasons[reason or "unknown"] += 1
            policies[policy or "unknown"] += 1
            if p:
                probs.append(p)
    return {
        "reasons": dict(sorted(reasons.items())),
        "policies": dict(sorted(policies.items())),
        "inclusion_probability": {"min": min(probs), "max": max(probs)} if probs else None,
    }


def _register(
    ws: Workspace,
    *,
    actor: Actor,
    fmt: str,
    out: Path,
    tmp: Path,
    items: dict[int, Item],
    audio: str | None,
    name: str,
    skipped: Counter[str],
    split: str,
) -> ExportResult:
    consent = Consent(ws.settings.consent_default)
    with ws.transaction() as session:
        ids = sorted(items)
        # Lock the accounts (shared) and then the clips, in the one lock order: an erasure or a
        # consent withdrawal that has not committed yet waits for this export to be registered
        # and then marks it; one that committed meanwhile is seen by the check below.
        accounts: set[int] = set()
        for i in range(0, len(ids), 500):
            accounts.update(session.execute(select(Clip.account_id).where(Clip.id.in_(ids[i : i + 500]))).scalars())
        share_lock_accounts(session, accounts)
        still: set[int] = set()
        erased: set[int] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            session.execute(
                select(Clip.id).where(Clip.id.in_(chunk)).order_by(Clip.id).with_for_update(key_share=True)
            ).all()
            erased.update(
                session.execute(select(Clip.id).where(Clip.id.in_(chunk), Clip.erased_at.is_not(None))).scalars()
            )
            still.update(
                session.execute(_exportable(select(Clip.id), consent, audio).where(Clip.id.in_(chunk))).scalars()
            )
        for clip_id in set(ids) - still:
            it = items.pop(clip_id)
            if it.audio:
                (tmp / it.audio).unlink(missing_ok=True)
            skipped["erased" if clip_id in erased else "withdrawn"] += 1
        ordered = [items[k] for k in sorted(items)]
        if not ordered:
            wake = fmt in WAKE_FORMATS
            why = ", ".join(f"{k} {v}" for k, v in sorted(skipped.items())) or (
                "no wake-word answers yet: the wake-word team answers at /wakeword" if wake else "no reviewed clips yet"
            )
            what = "no answered wake-word clip" if wake else "no reviewed clip"
            raise InvalidInput(f"nothing to export: {what} can go out ({why})", field="format")
        _render_folder(tmp, fmt, ordered)
        previous = session.execute(
            select(Export).where(Export.path == str(out.resolve()), Export.state.not_in(["superseded", "gone"]))
        ).scalar_one_or_none()
        row = Export(
            name=previous.name if previous else name,
            version=previous.version + 1 if previous else 1,
            format=fmt,
            path=str(out.resolve()),
            audio=audio,
            clips=len(ordered),
            content_hash=content_hash(tmp),
            policy={
                "audio": audio,
                "clips": "reviewed, consent allows review, not erased",
                "split": f"{split} (train/dev/test, by household)" if parse_split(split) else "none (all in train)",
            },
            state="current",
            created_by=actor.label,
            created_at=utcnow(),
        )
        session.add(row)
        if previous is not None:
            previous.state = "superseded"
        session.flush()
        session.add_all(ExportClip(export_id=row.id, clip_id=k) for k in sorted(items))
        summary = dict(sorted(skipped.items()))
        _write(
            tmp / MANIFEST,
            json.dumps(_manifest(row, ordered, _sampling_summary(session, sorted(items)), summary), indent=2),
        )
        audit.record(
            session,
            actor=actor,
            action="export.create",
            object_type="export",
            object_id=row.id,
            details={
                "format": fmt,
                "version": row.version,
                "items": len(ordered),
                "audio": audio,
                **{f"skipped_{k}": v for k, v in summary.items()},
            },
        )
        _swap_in(tmp, out)
        splits = Counter(it.split or "train" for it in ordered)
        return ExportResult(
            row.name,
            row.version,
            out,
            fmt,
            len(ordered),
            row.content_hash,
            summary,
            {k: splits[k] for k in SPLITS},
            masked=sum(1 for it in ordered if PLACEHOLDER.search(it.text)),
        )


def _swap_in(tmp: Path, out: Path) -> None:
    """Put the finished folder in place of `out` (the old one goes only once the new is there)."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def mark_exports(session: Session, clip_ids: list[int], *, audio: str | None = None) -> int:
    """Mark exports that hold any of `clip_ids` (current, or already waiting for a prune that may
    be running now) as needing a prune; with `audio`, only exports of that audio (a training-use
    withdrawal concerns original audio alone). Returns how many."""
    n = 0
    only = [Export.audio == audio] if audio else []
    for i in range(0, len(clip_ids), 500):
        holding = select(ExportClip.export_id).where(
            ExportClip.clip_id.in_(clip_ids[i : i + 500]), ExportClip.removed_at.is_(None)
        )
        n += (
            session.execute(
                update(Export)
                .where(Export.id.in_(holding), Export.state.in_(["current", "needs_prune"]), *only)
                .values(state="needs_prune")
                .execution_options(synchronize_session=False)
            ).rowcount
            or 0
        )
    return n


@dataclass(slots=True)
class PruneResult:
    exports: int = 0  # rewritten as a new version
    items_removed: int = 0
    unchanged: int = 0  # marked, but held nothing to remove: same version, marked current again
    missing: list[str] = field(default_factory=list)


def still_exportable(consent_default: Consent | str, audio: Any) -> ColumnElement[bool]:
    """SQL: the clip (joined with its account) may stay in an export whose audio is `audio` (a
    column or a literal): not erased, review allowed, not the safety team's, and in original audio
    only while training use is allowed. NULL (no consent given) must be read as no, as the prune
    and the transparency report both do."""
    return and_(
        Clip.erased_at.is_(None),
        allows_review(consent_default),
        Clip.id.not_in(restricted_clips()),
        or_(func.coalesce(audio, "") != "original", Account.training_use == Consent.allow),
    )


def _removed(session: Session, export_id: int, clip_ids: list[int]) -> None:
    """The clips left the export: their rows stay, marked, for the customers' reports."""
    session.execute(
        update(ExportClip)
        .where(ExportClip.export_id == export_id, ExportClip.clip_id.in_(clip_ids), ExportClip.removed_at.is_(None))
        .values(removed_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def prune_exports(ws: Workspace, *, actor: Actor) -> PruneResult:
    """Render every export marked by erasure, consent withdrawal or a safety outcome again without
    the clips that may no longer be used, bump its version and record the new content hash. An
    export that holds none of them (the clips were already pruned, or the mark was for another
    audio kind) keeps its version and files. Audited."""
    result = PruneResult()
    consent = Consent(ws.settings.consent_default)
    with ws.transaction() as session:
        # Locked: an erasure or withdrawal committing during the prune must not be overwritten by
        # the prune's `current`; its mark waits, and the export is pruned again next time.
        rows = list(
            session.execute(
                select(Export).where(Export.state == "needs_prune").order_by(Export.id).with_for_update()
            ).scalars()
        )
        for row in rows:
            folder = Path(row.path)
            if not (folder / ITEMS).exists():
                result.missing.append(row.path)
                continue
            held = session.execute(
                select(Clip.id, Clip.external_id, still_exportable(consent, literal(row.audio)))
                .join(ExportClip, ExportClip.clip_id == Clip.id)
                .join(Account, Account.id == Clip.account_id)
                .where(ExportClip.export_id == row.id, ExportClip.removed_at.is_(None))
            ).all()
            usable = {cid for cid, _, ok in held if ok}  # NULL (no consent given) is not ok: fail closed
            drop = {item_id(ws.secret, ext): cid for cid, ext, ok in held if not ok}
            items = [Item.from_json(x) for x in (folder / ITEMS).read_text(encoding="utf-8").splitlines() if x]
            keep = [it for it in items if it.id not in drop]
            row.state = "current"
            if drop:
                _removed(session, row.id, list(drop.values()))
            if len(keep) == len(items):
                # Nothing to remove from the files (already gone from them): the rows only. A new
                # version would tell downstream copies to replace identical data.
                audit.record(
                    session,
                    actor=actor,
                    action="export.prune",
                    object_type="export",
                    object_id=row.id,
                    details={"version": row.version, "removed": 0, "items": len(items)},
                )
                result.unchanged += 1
                continue
            for it in items:
                if it.id in drop and it.audio:
                    (folder / it.audio).unlink(missing_ok=True)
            _render_folder(folder, row.format, keep, before=items)
            row.version += 1
            row.clips = len(keep)
            row.pruned_at = utcnow()
            row.content_hash = content_hash(folder)
            manifest = (
                json.loads((folder / MANIFEST).read_text(encoding="utf-8")) if (folder / MANIFEST).exists() else {}
            )
            before = manifest.get("counts", {}).get("skipped", {})
            # Every prune of this folder so far, not only the last.
            skipped = {**before, "pruned": before.get("pruned", 0) + len(items) - len(keep)}
            sampling = _sampling_summary(session, sorted(usable))
            _write(folder / MANIFEST, json.dumps(_manifest(row, keep, sampling, skipped), indent=2))
            audit.record(
                session,
                actor=actor,
                action="export.prune",
                object_type="export",
                object_id=row.id,
                details={"version": row.version, "removed": len(items) - len(keep), "items": len(keep)},
            )
            result.exports += 1
            result.items_removed += len(items) - len(keep)
    return result


def forget_export(session: Session, *, actor: Actor, export: str) -> Export:
    """Record that the folder of `export` (its name or folder) was deleted outside earmark: its row
    becomes `gone`, so no prune waits for it and no erasure marks it again. Refused while the
    folder is still there, since then it still holds its clips. Audited; caller commits."""
    where = str(Path(export).expanduser().resolve())
    rows = list(
        session.execute(
            select(Export)
            .where(or_(Export.name == export, Export.path == where), Export.state.in_(["current", "needs_prune"]))
            .order_by(Export.id)
            .with_for_update()
        ).scalars()
    )
    if not rows:
        raise NotFound(f"no current export named {export!r} or written to {where} (see `earmark export list`)")
    if len(rows) > 1:
        folders = ", ".join(r.path for r in rows)
        raise InvalidInput(f"{export!r} names {len(rows)} exports ({folders}); give the folder instead", field="export")
    row = rows[0]
    if Path(row.path).exists():
        raise InvalidInput(
            f"{row.path} still exists: forget only records a deleted export; delete the folder first, "
            "or run `earmark export prune` to rewrite it",
            field="export",
        )
    before, row.state = row.state, "gone"
    row.forgotten_at = utcnow()  # the clips it still held left with the folder: reports say when
    audit.record(
        session,
        actor=actor,
        action="export.forget",
        object_type="export",
        object_id=row.id,
        details={"version": row.version, "state": before, "items": row.clips},
    )
    return row


def list_exports(session: Session) -> list[Export]:
    return list(session.execute(select(Export).order_by(Export.id.desc())).scalars())
