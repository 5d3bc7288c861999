"""The workbench: review, adjudication, help requests, the safety queue, and a reviewer's own
figures. Thin: parse, call one domain function, commit, render or answer JSON."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import time
from functools import partial
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from earmark import escalation, help, review, wakeword
from earmark.catalog import link, load_inventory
from earmark.consent import allows_review
from earmark.errors import EarmarkError, InvalidInput, NotFound, PermissionDenied
from earmark.models import Account, Assignment, Clip, QueueItem, User, utcnow
from earmark.quality import ADJUDICATION, GOLD, is_gold_lease, serve_gold
from earmark.queues import GENERAL, SINGLE_JUDGEMENT, active_assignment, count_leasable, held_in, lease_next
from earmark.stats import reviewer_stats
from earmark.types import ClipStatus, QueueState, Role
from earmark.web.deps import Caller, csrf_checked, get_db, get_ws, load_json, page_caller
from earmark.web.pages import render
from earmark.web.policy import REVIEW_ROLES, allowed
from earmark.workspace import Workspace

router = APIRouter()
REVIEW_QUEUES = (GENERAL, GOLD)  # a gold clip looks like any other to the reviewer


def sign(secret: bytes, *parts: object) -> str:
    return hmac.new(secret, ":".join(map(str, parts)).encode(), hashlib.sha256).hexdigest()


def signed_audio_url(ws: Workspace, path: str, kind: str, object_id: str, user_id: int) -> str:
    """`path` with an expiry and a signature over (kind, object, user, expiry): `_check_signature`."""
    expires = int(time.time()) + ws.settings.audio_url_seconds
    return f"{path}?exp={expires}&sig={sign(ws.secret, kind, object_id, user_id, expires)}"


def audio_url(ws: Workspace, assignment_id: str, user_id: int) -> str:
    return signed_audio_url(ws, f"/review/{assignment_id}/audio", "audio", assignment_id, user_id)


def _check_signature(ws: Workspace, sig: str, exp: int, *parts: object) -> None:
    if not hmac.compare_digest(sign(ws.secret, *parts, exp), sig):
        raise NotFound("no such audio")
    if exp < time.time():
        raise PermissionDenied("this audio link expired; reload the page")


def _wav(data: bytes) -> Response:
    return Response(
        data, media_type="audio/wav", headers={"Cache-Control": "no-store, private", "Content-Disposition": "inline"}
    )


async def _payload(request: Request) -> dict[str, Any]:
    """The body of a state change: JSON from the page's script, or a plain form without it."""
    if request.headers.get("content-type", "").startswith("application/json"):
        data = load_json(await request.body())
        if not isinstance(data, dict):
            raise InvalidInput("the request body must be a JSON object")
        return data
    return {k: v for k, v in (await request.form()).items() if k != "csrf_token"}


_Body = TypeVar("_Body", bound=BaseModel)


def _validated(model: type[_Body], raw: dict[str, Any]) -> _Body:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        raise InvalidInput(
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors),
            field=str(errors[0]["loc"][0]) if errors and errors[0]["loc"] else None,
        ) from exc


def _answer(request: Request, target: str, page: str | None = None) -> Response:
    if request.headers.get("content-type", "").startswith("application/json"):
        return JSONResponse({"next": target, "html": page} if page else {"next": target})
    return RedirectResponse(target, status_code=303)


def _closed(request: Request, exc: EarmarkError) -> Response:
    if request.headers.get("content-type", "").startswith("application/json"):
        return JSONResponse(
            {"error": {"message": exc.message, "field": exc.field}, "next": "/"}, status_code=exc.http_status
        )
    return render(request, "review_closed.html", {"message": exc.message}, status_code=exc.http_status)


# -- leasing -------------------------------------------------------------------------------------


def _max_sensitivity(user: User) -> float | None:
    """A reviewer who met distressing content today gets no near-sensitive clip, gold included."""
    return 0.3 if user.sensitive_blocked_on == utcnow().date().isoformat() else None


def _lease_general(request: Request, session: Session, user: User) -> Assignment | None:
    """Lease the reviewer's next clip (or the one held); now and then a gold clip. Commits."""
    ws = get_ws(request)
    queue, gold_item = GENERAL, None
    max_sensitivity = _max_sensitivity(user)
    if active_assignment(session, user=user) is None:
        leases = session.execute(
            select(func.count()).select_from(Assignment).where(Assignment.user_id == user.id)
        ).scalar_one()
        gold = (
            serve_gold(session, user=user, max_sensitivity=max_sensitivity)
            if is_gold_lease(user.id, leases, ws.settings.gold_rate)
            else None
        )
        if gold is not None:
            queue, gold_item = GOLD, gold.id
    lease = partial(
        lease_next,
        session,
        actor=user,
        lease_seconds=ws.settings.lease_seconds,
        max_sensitivity=max_sensitivity,
        resume=REVIEW_QUEUES,
        consent_default=ws.settings.consent_default,
    )
    assignment = lease(queue=queue, only_item=gold_item)  # the gold clip just checked, not the queue head
    if assignment is None and queue == GOLD:
        assignment = lease(queue=GENERAL)
    session.commit()
    return assignment


def _lease_adjudication(request: Request, session: Session, user: User) -> Assignment | None:
    ws = get_ws(request)
    assignment = lease_next(
        session,
        actor=user,
        queue=ADJUDICATION,
        lease_seconds=ws.settings.lease_seconds,
        consent_default=ws.settings.consent_default,
    )
    session.commit()
    return assignment


def _lease_wakeword(request: Request, session: Session, user: User) -> Assignment | None:
    s = get_ws(request).settings
    assignment = wakeword.lease(
        session,
        actor=user,
        lease_seconds=s.lease_seconds,
        consent_default=s.consent_default,
        max_sensitivity=_max_sensitivity(user),
    )
    session.commit()
    return assignment


# The route that leases from each queue: a person goes on in a queue only if their role may.
NEXT_ROUTE = {
    GENERAL: "review.next",
    GOLD: "review.next",
    ADJUDICATION: "adjudicate.next",
    escalation.SAFETY: "safety.next",
    wakeword.WAKEWORD: "wakeword.next",
}


def _next_after_submit(request: Request, session: Session, user: User, queue: str) -> str:
    """Where the reviewer goes next. Review and adjudication lease the next clip at once, so the
    browser goes straight to it (one round trip less between clips). The safety team goes back to
    its queue's page: one deliberate step between distressing clips. One whose role changed since
    the lease goes home, where their role's queue is."""
    if not allowed(NEXT_ROUTE.get(queue, "review.next"), user.role):
        return "/"
    if queue == escalation.SAFETY:
        return "/safety"
    if queue == wakeword.WAKEWORD:
        assignment = _lease_wakeword(request, session, user)
        return f"/review/{assignment.id}" if assignment is not None else "/wakeword"
    if queue == ADJUDICATION:
        assignment = _lease_adjudication(request, session, user)
        return f"/review/{assignment.id}" if assignment is not None else "/adjudicate"
    assignment = _lease_general(request, session, user)
    return f"/review/{assignment.id}" if assignment is not None else "/review"


# A queue's page (GET) only reads: it opens the clip its caller holds in that queue, or shows how
# many clips wait with a button that leases one (POST, with the CSRF token). Leasing, giving back
# and the audit events they write happen only on a POST, never because a link was followed or
# prefetched.


def _queue_page(
    request: Request,
    session: Session,
    user: User,
    *,
    queue: str,
    action: str,
    title: str,
    empty: str,
    tried: bool = False,
) -> Response:
    """The start page of `queue` for `user`: how many clips wait, and the button that leases one.
    `tried`: a lease just found nothing, so say the queue is empty whatever the count says."""
    held = held_in(session, user=user, queues=REVIEW_QUEUES if queue == GENERAL else (queue,))
    if held.resumed is not None:
        return RedirectResponse(f"/review/{held.resumed.id}", status_code=303)
    ready = 0 if tried else count_leasable(
        session, actor=user, queue=queue,
        max_sensitivity=_max_sensitivity(user) if queue in (GENERAL, wakeword.WAKEWORD) else None,
        consent_default=get_ws(request).settings.consent_default,
    )  # fmt: skip
    waiting = others = 0
    if queue == GENERAL:
        waiting = session.execute(
            select(func.count()).select_from(Clip).where(Clip.status == ClipStatus.pending)
        ).scalar_one()
    elif queue in SINGLE_JUDGEMENT and not ready:
        # Clips of this queue that wait for someone else: ones this person judged, flagged or
        # reported before go to another member of the team.
        others = session.execute(
            select(func.count(distinct(QueueItem.clip_id)))
            .join(Clip, Clip.id == QueueItem.clip_id)
            .join(Account, Account.id == Clip.account_id)
            .where(
                QueueItem.queue == queue,
                QueueItem.state == QueueState.queued,
                allows_review(get_ws(request).settings.consent_default),
            )
        ).scalar_one()
    return render(
        request,
        "queue_start.html",
        {
            "title": title,
            "action": action,
            "ready": ready,
            "waiting": waiting,
            "others": others,
            "empty": empty,
            "held_elsewhere": held.elsewhere.id if held.elsewhere is not None else None,
            "page_url": action.removesuffix("/next"),
        },
    )


_REVIEW_PAGE = {"title": "Review", "action": "/review/next", "empty": "The review queue is empty."}
_ADJUDICATE_PAGE = {
    "title": "Adjudication",
    "action": "/adjudicate/next",
    "empty": "No clip waits for adjudication.",
}
_SAFETY_PAGE = {"title": "Safety queue", "action": "/safety/next", "empty": "The safety queue is empty."}
_WAKEWORD_PAGE = {
    "title": "Wake-word queue",
    "action": "/wakeword/next",
    "empty": "No clip waits for the wake-word team.",
}


def _found_none(page: dict[str, str]) -> Response:
    """A start that found no clip goes back to the queue page, saying so: a redirect, so a reload
    of the page does not post the start again."""
    return RedirectResponse(page["action"].removesuffix("/next") + "?empty=1", status_code=303)


def _opened(assignment: Assignment | None, page: dict[str, str]) -> Response:
    """The page of the clip just leased, or the queue's page saying it found none."""
    if assignment is None:
        return _found_none(page)
    return RedirectResponse(f"/review/{assignment.id}", status_code=303)


@router.get("/review", name="review.start")
def review_start(
    request: Request,
    empty: bool = Query(False),
    caller: Caller = Depends(page_caller),
    session: Session = Depends(get_db),
) -> Response:
    """The clip held, or how many wait and a button to start (`empty`: a start just found none)."""
    return _queue_page(request, session, caller.user, queue=GENERAL, tried=empty, **_REVIEW_PAGE)


@router.post("/review/next", name="review.next")
def review_next(
    request: Request, caller: Caller = Depends(csrf_checked), session: Session = Depends(get_db)
) -> Response:
    """Lease the next clip (or resume the one held) and open it."""
    assignment = _lease_general(request, session, caller.user)
    return _opened(assignment, _REVIEW_PAGE)


@router.get("/adjudicate", name="adjudicate.start")
def adjudicate_start(
    request: Request,
    empty: bool = Query(False),
    caller: Caller = Depends(page_caller),
    session: Session = Depends(get_db),
) -> Response:
    """Seniors: how many clips whose passes disagreed wait."""
    return _queue_page(request, session, caller.user, queue=ADJUDICATION, tried=empty, **_ADJUDICATE_PAGE)


@router.post("/adjudicate/next", name="adjudicate.next")
def adjudicate_next(
    request: Request, caller: Caller = Depends(csrf_checked), session: Session = Depends(get_db)
) -> Response:
    """Seniors: the next clip whose passes disagreed (a review clip held is given back)."""
    assignment = _lease_adjudication(request, session, caller.user)
    return _opened(assignment, _ADJUDICATE_PAGE)


# -- the review page -------------------------------------------------------------------------------


RESTRICTED = {escalation.SAFETY: Role.safety, wakeword.WAKEWORD: Role.wakeword}


def _only_for_its_team(queue: str, user: User) -> None:
    """A restricted queue's clip opens only for its team's role, a review clip only for the review
    roles (one who held it before a role change does not keep it)."""
    team = {RESTRICTED[queue]} if queue in RESTRICTED else REVIEW_ROLES
    if Role(user.role) not in team:
        raise NotFound("no such assignment")


@router.get("/review/{assignment_id}", name="review.page")
def review_page(
    request: Request, assignment_id: str, caller: Caller = Depends(page_caller), session: Session = Depends(get_db)
) -> Response:
    ws = get_ws(request)
    try:
        view = review.view_assignment(session, user=caller.user, assignment_id=assignment_id)
        peaks = review.assignment_peaks(
            session, user=caller.user, assignment_id=assignment_id, blobs=ws.blobs, keyring=ws.keyring
        )
    except NotFound:
        raise
    except EarmarkError as exc:
        return _closed(request, exc)
    _only_for_its_team(view.queue, caller.user)
    inventory = load_inventory(session)
    config = {
        "assignment": view.assignment_id,
        "duration": view.duration_seconds,
        "seconds_left": view.seconds_left,
        "transcript": view.transcript,
        "intent": view.intent,
        "slots": view.slots,
        "slot_types": list(inventory.slots) or ["artist", "song", "city", "contact", "date", "time", "item"],
        "peaks": peaks,
        "queue": view.queue,
    }
    return render(
        request,
        "review.html",
        {
            "view": view,
            "audio_url": audio_url(ws, view.assignment_id, caller.user.id),
            "max_chars": ws.settings.max_transcript_chars,
            "intents": inventory.intents,
            "config": json.dumps(config),
            "flags": review.FLAGS,
            "skip_reasons": review.SKIP_REASONS,
            "protocol": escalation.protocol_html(ws.settings.safety_protocol)
            if view.queue == escalation.SAFETY
            else "",
            "wake_labels": wakeword.LABELS,
        },
    )


@router.get("/review/{assignment_id}/audio", name="review.audio")
def review_audio(
    request: Request,
    assignment_id: str,
    exp: int = Query(...),
    sig: str = Query(...),
    caller: Caller = Depends(page_caller),
    session: Session = Depends(get_db),
) -> Response:
    """The protected clip, for the assignment's holder only, from a URL that expires."""
    ws = get_ws(request)
    _check_signature(ws, sig, exp, "audio", assignment_id, caller.user.id)
    _only_for_its_team(review.queue_of(session, user=caller.user, assignment_id=assignment_id), caller.user)
    wav = review.assignment_audio(
        session, user=caller.user, assignment_id=assignment_id, blobs=ws.blobs, keyring=ws.keyring
    )
    session.commit()
    return _wav(wav)


class SubmitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    transcript: str = ""
    intent: str = ""
    slots: list[review.SlotIn] = Field(default_factory=list, max_length=30)
    flag: str | None = None
    mode: str | None = None
    ms: int | None = None


@router.post("/review/{assignment_id}/submit", name="review.submit")
def review_submit(
    request: Request,
    assignment_id: str,
    caller: Caller = Depends(csrf_checked),
    session: Session = Depends(get_db),
    raw: dict[str, Any] = Depends(_payload),
) -> Response:
    ws = get_ws(request)
    if isinstance(raw.get("slots"), str):
        raw["slots"] = load_json(raw["slots"] or "[]", field="slots")
    body = _validated(SubmitBody, raw)
    s = ws.settings
    item = review.queue_of(session, user=caller.user, assignment_id=assignment_id)
    try:
        review.submit_annotation(
            session,
            actor=caller.user,
            assignment_id=assignment_id,
            transcript=body.transcript,
            intent=body.intent,
            slots=body.slots,
            flag=body.flag or None,
            mode=body.mode,
            ms=body.ms,
            max_transcript_chars=s.max_transcript_chars,
            disagreement_wer=s.disagreement_wer,
            probation_extra_passes=s.probation_extra_passes,
        )
    except (NotFound, InvalidInput):
        raise
    except EarmarkError as exc:
        session.rollback()
        return _closed(request, exc)
    session.commit()
    target = _next_after_submit(request, session, caller.user, item)
    return _answer(request, target, page=_next_page(request, target, caller, session))


def _next_page(request: Request, target: str, caller: Caller, session: Session) -> str | None:
    """The next clip's page, rendered now, so the workbench swaps it in without a navigation."""
    match = re.fullmatch(r"/review/([A-Za-z0-9_-]{16,64})", target)
    if match is None:
        return None
    try:
        resp = review_page(request, match.group(1), caller, session)
    except EarmarkError:
        return None
    return resp.body.decode() if resp.status_code == 200 else None  # type: ignore[union-attr]


@router.post("/review/{assignment_id}/skip", name="review.skip")
def review_skip(
    request: Request,
    assignment_id: str,
    caller: Caller = Depends(csrf_checked),
    session: Session = Depends(get_db),
    raw: dict[str, Any] = Depends(_payload),
) -> Response:
    item = review.queue_of(session, user=caller.user, assignment_id=assignment_id)
    try:
        review.skip_assignment(
            session, actor=caller.user, assignment_id=assignment_id, reason=str(raw.get("reason", ""))
        )
    except (NotFound, InvalidInput):
        raise
    except EarmarkError as exc:
        return _closed(request, exc)
    session.commit()
    return _answer(request, _next_after_submit(request, session, caller.user, item))


def _span(raw: dict[str, Any]) -> tuple[float, float]:
    try:
        start, end = float(raw["start"]), float(raw["end"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput("give start and end in seconds", field="range") from exc
    if not (math.isfinite(start) and math.isfinite(end)):
        raise InvalidInput("give start and end in seconds", field="range")
    return start, end


@router.post("/review/{assignment_id}/pii", name="review.pii")
def review_pii_missed(
    request: Request,
    assignment_id: str,
    caller: Caller = Depends(csrf_checked),
    session: Session = Depends(get_db),
    raw: dict[str, Any] = Depends(_payload),
) -> Response:
    """Personal data was still audible: withdraw, re-protect, re-queue."""
    start, end = _span(raw)
    item = review.queue_of(session, user=caller.user, assignment_id=assignment_id)
    review.report_missed_pii(session, actor=caller.user, assignment_id=assignment_id, start=start, end=end)
    session.commit()
    return _answer(request, _next_after_submit(request, session, caller.user, item))


@router.post("/review/{assignment_id}/sensitive", name="review.sensitive")
def review_sensitive(
    request: Request, assignment_id: str, caller: Caller = Depends(csrf_checked), session: Session = Depends(get_db)
) -> Response:
    """Distressing content: off the reviewer's screen now, into the safety queue; offer a break."""
    review.flag_sensitive(session, actor=caller.user, assignment_id=assignment_id)
    session.commit()
    return _answer(request, "/break")


@router.get("/break", name="review.break")
def take_a_break(request: Request, caller: Caller = Depends(page_caller)) -> Response:
    return render(request, "break.html", {})


@router.get("/review/{assignment_id}/link", name="review.link")
def review_link(
    assignment_id: str,
    value: str = "",
    type: str = "",
    caller: Caller = Depends(page_caller),
    session: Session = Depends(get_db),
) -> JSONResponse:
    """Ranked catalog candidates for a slot value of the clip the caller holds."""
    review.get_assignment(session, user=caller.user, assignment_id=assignment_id)
    inventory = load_inventory(session)
    entity_type = inventory.slots.get(type) if type else None
    if inventory.slots and entity_type is None:
        return JSONResponse([])  # a slot type with no entity type (item, date) links to nothing
    candidates = link(session, value[:200], entity_type=entity_type)
    return JSONResponse([{"id": c.id, "name": c.name, "type": c.type, "score": c.score} for c in candidates])


# -- help requests ---------------------------------------------------------------------------------


@router.post("/review/{assignment_id}/help", name="review.help")
def review_help(
    request: Request,
    assignment_id: str,
    caller: Caller = Depends(csrf_checked),
    session: Session = Depends(get_db),
    raw: dict[str, Any] = Depends(_payload),
) -> JSONResponse:
    start, end = _span(raw)
    req = help.ask_help(
        session,
        actor=caller.user,
        assignment_id=assignment_id,
        start=start,
        end=end,
        question=str(raw.get("question", "")),
    )
    session.commit()
    return JSONResponse({"id": req.id, "state": req.state})


@router.get("/review/{assignment_id}/inbox", name="review.inbox")
def review_inbox(
    assignment_id: str, caller: Caller = Depends(page_caller), session: Session = Depends(get_db)
) -> JSONResponse:
    review.get_assignment(session, user=caller.user, assignment_id=assignment_id)
    items = help.inbox(session, user=caller.user, assignment_id=assignment_id)
    return JSONResponse([{"id": r.id, "question": r.question, "state": r.state, "answer": r.answer} for r in items])


@router.post("/help/{help_id}/apply", name="help.apply")
def help_apply(
    help_id: str, caller: Caller = Depends(csrf_checked), session: Session = Depends(get_db)
) -> JSONResponse:
    req = help.apply_answer(session, actor=caller.user, help_id=help_id)
    session.commit()
    return JSONResponse({"id": req.id, "state": req.state, "answer": req.answer})


@router.get("/help", name="help.queue")
def help_queue(request: Request, caller: Caller = Depends(page_caller), session: Session = Depends(get_db)) -> Response:
    return render(request, "help_queue.html", {"requests": help.open_requests(session)})


@router.get("/help/{help_id}", name="help.page")
def help_page(
    request: Request, help_id: str, caller: Caller = Depends(page_caller), session: Session = Depends(get_db)
) -> Response:
    ws = get_ws(request)
    req = help.get_request(session, user=caller.user, help_id=help_id)
    url = signed_audio_url(ws, f"/help/{req.id}/audio", "help", req.id, caller.user.id)
    rate = 16_000
    return render(
        request,
        "help_page.html",
        {
            "req": req,
            "audio_url": url if req.state == "open" else None,
            "start": req.start / rate,
            "end": req.end / rate,
        },
    )


@router.get("/help/{help_id}/audio", name="help.audio")
def help_audio(
    request: Request,
    help_id: str,
    exp: int = Query(...),
    sig: str = Query(...),
    caller: Caller = Depends(page_caller),
    session: Session = Depends(get_db),
) -> Response:
    ws = get_ws(request)
    _check_signature(ws, sig, exp, "help", help_id, caller.user.id)
    wav = help.help_audio(session, user=caller.user, help_id=help_id, blobs=ws.blobs, keyring=ws.keyring)
    session.commit()
    return _wav(wav)


@router.post("/help/{help_id}/answer", name="help.answer")
def help_answer(
    request: Request,
    help_id: str,
    caller: Caller = Depends(csrf_checked),
    session: Session = Depends(get_db),
    raw: dict[str, Any] = Depends(_payload),
) -> Response:
    help.answer_help(session, actor=caller.user, help_id=help_id, answer=str(raw.get("answer", "")))
    session.commit()
    return _answer(request, "/help")


# -- safety ----------------------------------------------------------------------------------------


def _safety_paused(request: Request, heard: int) -> Response:
    window = get_ws(request).settings.safety_window_minutes
    return render(request, "break.html", {"paused": True, "heard": heard, "window": window})


@router.get("/safety", name="safety.start")
def safety_start(
    request: Request,
    empty: bool = Query(False),
    caller: Caller = Depends(page_caller),
    session: Session = Depends(get_db),
) -> Response:
    """The safety team's queue: the clip held, the exposure pause, or how many wait."""
    s = get_ws(request).settings
    if held_in(session, user=caller.user, queues=(escalation.SAFETY,)).resumed is None:
        heard = escalation.heard_recently(session, user=caller.user, minutes=s.safety_window_minutes)
        if heard >= s.safety_max_clips:
            return _safety_paused(request, heard)
    return _queue_page(request, session, caller.user, queue=escalation.SAFETY, tried=empty, **_SAFETY_PAGE)


@router.post("/safety/next", name="safety.next")
def safety_next(
    request: Request, caller: Caller = Depends(csrf_checked), session: Session = Depends(get_db)
) -> Response:
    """The next safety clip, unless the exposure limit says it is time for a break (audited)."""
    s = get_ws(request).settings
    lease = escalation.lease_safety(
        session,
        actor=caller.user,
        max_clips=s.safety_max_clips,
        window_minutes=s.safety_window_minutes,
        lease_seconds=s.lease_seconds,
    )
    session.commit()
    if lease.paused:
        return _safety_paused(request, lease.heard_in_window)
    return _opened(lease.assignment, _SAFETY_PAGE)


@router.post("/safety/{assignment_id}/outcome", name="safety.outcome")
def safety_outcome(
    request: Request,
    assignment_id: str,
    caller: Caller = Depends(csrf_checked),
    session: Session = Depends(get_db),
    raw: dict[str, Any] = Depends(_payload),
) -> Response:
    escalation.record_outcome(
        session,
        actor=caller.user,
        assignment_id=assignment_id,
        outcome=str(raw.get("outcome", "")),
        note=str(raw.get("note", "")),
        no_speech_route=get_ws(request).settings.no_speech_route,
    )
    s = get_ws(request).settings
    escalation.pause_if_due(
        session, actor=caller.user, max_clips=s.safety_max_clips, window_minutes=s.safety_window_minutes
    )
    session.commit()
    return _answer(request, "/safety")


# -- the wake-word queue ---------------------------------------------------------------------------


class WakeAnswerBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = ""
    ms: int | None = Field(None, ge=0, lt=86_400_000)  # the page's own timing, under a day


@router.get("/wakeword", name="wakeword.start")
def wakeword_start(
    request: Request,
    empty: bool = Query(False),
    caller: Caller = Depends(page_caller),
    session: Session = Depends(get_db),
) -> Response:
    """The wake-word team's queue: the clip held, or how many wait."""
    return _queue_page(request, session, caller.user, queue=wakeword.WAKEWORD, tried=empty, **_WAKEWORD_PAGE)


@router.post("/wakeword/next", name="wakeword.next")
def wakeword_next(
    request: Request, caller: Caller = Depends(csrf_checked), session: Session = Depends(get_db)
) -> Response:
    """The next clip without speech (audited by the lease)."""
    assignment = _lease_wakeword(request, session, caller.user)
    return _opened(assignment, _WAKEWORD_PAGE)


@router.post("/wakeword/{assignment_id}/answer", name="wakeword.answer")
def wakeword_answer(
    request: Request,
    assignment_id: str,
    caller: Caller = Depends(csrf_checked),
    session: Session = Depends(get_db),
    raw: dict[str, Any] = Depends(_payload),
) -> Response:
    """What woke the device; then the next clip at once."""
    if raw.get("ms") == "":  # the plain form's field, when no script timed the page
        raw.pop("ms")
    body = _validated(WakeAnswerBody, raw)
    try:
        wakeword.record_answer(session, actor=caller.user, assignment_id=assignment_id, label=body.label, ms=body.ms)
    except (NotFound, InvalidInput):
        raise
    except EarmarkError as exc:
        session.rollback()
        return _closed(request, exc)
    session.commit()
    target = _next_after_submit(request, session, caller.user, wakeword.WAKEWORD)
    return _answer(request, target, page=_next_page(request, target, caller, session))


# -- a reviewer's own figures ----------------------------------------------------------------------


@router.get("/me", name="dashboard.me")
def my_dashboard(
    request: Request, caller: Caller = Depends(page_caller), session: Session = Depends(get_db)
) -> Response:
    return render(request, "me.html", {"figures": reviewer_stats(session, user_id=caller.user.id)})
