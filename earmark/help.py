"""Help requests instead of chat rooms: a reviewer asks a senior about a time range of the clip
they hold; the answer comes back to the asker's inbox and can be applied with one key. The clip
is only ever the protected derivative, heard in the tool, with every listen audited; an answered
request's audio link is dead."""

from __future__ import annotations

import math
import secrets

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from earmark import audit
from earmark.audio import decode_mono, encode_wav
from earmark.crypto import Keyring, decrypt_blob
from earmark.errors import InvalidInput, NotFound
from earmark.keys import data_key
from earmark.models import Clip, HelpRequest, User, utcnow
from earmark.queues import SINGLE_JUDGEMENT, restricted_clips, user_actor
from earmark.review import lock_pass, require_active
from earmark.storage import LocalBlobStore
from earmark.types import ClipStatus, Role

MAX_QUESTION = 500
CONTEXT_SECONDS = 0.5  # heard either side of the asked range


def ask_help(
    session: Session, *, actor: User, assignment_id: str, start: float, end: float, question: str
) -> HelpRequest:
    """Ask the seniors about seconds [start, end) of the clip `actor` holds. Audited; caller commits."""
    # Locked and read afresh: a withdrawal or erasure in flight closes and deletes the clip's
    # requests; one asked unlocked meanwhile outlived it, question and all, open for the seniors.
    assignment, clip, item = lock_pass(session, user=actor, assignment_id=assignment_id)
    require_active(assignment)
    assert clip is not None
    if item is None or item.queue in SINGLE_JUDGEMENT:  # the safety and wake-word teams' clips
        raise NotFound("no such review clip")
    rate = clip.protected_sample_rate or 16_000
    total = clip.protected_num_samples or 0
    if not (math.isfinite(start) and math.isfinite(end)) or not 0 <= start < end or int(start * rate) >= total:
        raise InvalidInput(f"the range must lie inside the clip (0 to {total / rate:.2f} s)", field="range")
    end = min(end, total / rate)  # past the clip's end (as far as 1e308): up to its end
    text = " ".join(question.split())
    if not text:
        raise InvalidInput("write the question", field="question")
    if len(text) > MAX_QUESTION:
        raise InvalidInput(f"the question is longer than {MAX_QUESTION} characters", field="question")
    req = HelpRequest(
        id=secrets.token_urlsafe(12),
        clip_id=clip.id,
        assignment_id=assignment.id,
        asker_id=actor.id,
        start=int(start * rate),
        end=min(total, round(end * rate)),
        question=text,
    )
    session.add(req)
    session.flush()
    audit.record(
        session, actor=user_actor(actor), action="help.ask", object_type="help", object_id=req.id,
        details={"seconds": round(end - start, 2)},
    )  # fmt: skip
    return req


def open_requests(session: Session, *, limit: int = 50) -> list[HelpRequest]:
    return list(
        session.execute(
            select(HelpRequest).where(HelpRequest.state == "open").order_by(HelpRequest.created_at).limit(limit)
        ).scalars()
    )


def get_request(session: Session, *, user: User, help_id: str) -> HelpRequest:
    """A request as its asker or a senior may see it; anyone else gets "not found"."""
    req = session.get(HelpRequest, help_id)
    if req is None or not (req.asker_id == user.id or Role(user.role) in (Role.senior, Role.admin)):
        raise NotFound("no such help request")
    return req


def help_audio(session: Session, *, user: User, help_id: str, blobs: LocalBlobStore, keyring: Keyring) -> bytes:
    """The asked range of the protected clip of an open request (`asked_range`), for a senior.
    Audited; a closed request has no audio."""
    get_request(session, user=user, help_id=help_id)
    # Share-locked and read afresh: a withdrawal or erasure closes the request; audio must not
    # go out after it has committed (the listen's audit event waits for the chain head).
    req = session.get(HelpRequest, help_id, with_for_update={"read": True}, populate_existing=True)
    if req is None or Role(user.role) not in (Role.senior, Role.admin) or req.state != "open":
        raise NotFound("no audio for this request")
    clip = session.get(Clip, req.clip_id)
    # Fail closed: only a clip still in review (withdrawal also closes its requests), and never one
    # of the safety or the wake-word team's.
    if clip is None or not clip.protected_blob_key or clip.status not in (ClipStatus.queued, ClipStatus.reviewed):
        raise NotFound("the clip was withdrawn")
    if session.execute(select(Clip.id).where(Clip.id == clip.id, Clip.id.in_(restricted_clips()))).first():
        raise NotFound("the clip was withdrawn")
    dk = data_key(session, keyring, clip.account_id)
    whole = decrypt_blob(dk, blobs.get(clip.protected_blob_key), blob_key=clip.protected_blob_key)
    wav, seconds = asked_range(whole, req.start, req.end)
    audit.record(
        # The clip is the object (as the customer's report counts listens per clip; help requests
        # are deleted with annotations, the log is not); the request is in the details.
        session, actor=user_actor(user), action="help.audio", object_type="clip", object_id=clip.id,
        details={"help": req.id, "bytes": len(wav), "seconds": seconds},
    )  # fmt: skip
    return wav


def asked_range(wav: bytes, start: int, end: int) -> tuple[bytes, float]:
    """Samples [start, end) of the clip with `CONTEXT_SECONDS` either side, faded in and out over
    10 ms, as WAV, and its length in seconds: a senior hears what was asked about, not the clip."""
    x, rate = decode_mono(wav)
    pad = int(CONTEXT_SECONDS * rate)
    a, b = max(0, start - pad), min(x.size, max(end, start + 1) + pad)
    part = np.array(x[a:b], dtype=np.float32)
    ramp = min(int(0.01 * rate), part.size // 2)
    if ramp:
        fade = np.linspace(0.0, 1.0, ramp, dtype=np.float32)
        part[:ramp] *= fade
        part[-ramp:] *= fade[::-1]
    return encode_wav(part, rate), round(part.size / rate, 2)


def answer_help(session: Session, *, actor: User, help_id: str, answer: str) -> HelpRequest:
    """A senior's answer goes to the asker's inbox. Audited; caller commits."""
    if Role(actor.role) not in (Role.senior, Role.admin):
        raise NotFound("no such help request")
    get_request(session, user=actor, help_id=help_id)
    # Locked and read afresh: two seniors answering at once cannot both win.
    req = session.get(HelpRequest, help_id, with_for_update=True, populate_existing=True)
    if req is None:  # an erasure or withdrawal deleted it meanwhile
        raise NotFound("no such help request")
    if req.state != "open":
        raise InvalidInput("this request was already answered", field="help")
    text = " ".join(answer.split())
    if not text or len(text) > MAX_QUESTION:
        raise InvalidInput(f"the answer must be 1 to {MAX_QUESTION} characters", field="answer")
    req.answer = text
    req.answerer_id = actor.id
    req.state = "answered"
    req.answered_at = utcnow()
    audit.record(session, actor=user_actor(actor), action="help.answer", object_type="help", object_id=req.id)
    return req


def inbox(session: Session, *, user: User, assignment_id: str | None = None) -> list[HelpRequest]:
    """The asker's requests (for one assignment, or all open/answered ones), newest first."""
    q = select(HelpRequest).where(HelpRequest.asker_id == user.id, HelpRequest.state.in_(["open", "answered"]))
    if assignment_id:
        q = q.where(HelpRequest.assignment_id == assignment_id)
    return list(session.execute(q.order_by(HelpRequest.created_at.desc()).limit(20)).scalars())


def apply_answer(session: Session, *, actor: User, help_id: str) -> HelpRequest:
    """The asker used the answer. Audited; caller commits."""
    get_request(session, user=actor, help_id=help_id)
    # Locked and read afresh: an erasure or withdrawal that deletes the request waits for this
    # one, or has committed and is seen (not an update that matches no row).
    req = session.get(HelpRequest, help_id, with_for_update=True, populate_existing=True)
    if req is None:
        raise NotFound("no such help request")
    if req.asker_id != actor.id or req.state != "answered":
        raise InvalidInput("there is no answer to apply", field="help")
    req.state = "applied"
    audit.record(session, actor=user_actor(actor), action="help.apply", object_type="help", object_id=req.id)
    return req
