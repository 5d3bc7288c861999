"""The admin's dashboard: queue depths, throughput, agreement, reviewers; aggregated in SQL."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from earmark import escalation, gold
from earmark.errors import InvalidInput, NotFound
from earmark.metrics import compute_metrics
from earmark.models import utcnow
from earmark.quality import gold_accuracy
from earmark.stats import program_stats, reviewer_table, workspace_stats
from earmark.web.deps import Caller, csrf_checked, get_db, get_ws, page_caller
from earmark.web.pages import render

router = APIRouter()
PER_PAGE = 50
MAX_PICK = 1000
MAX_ID = 2**62  # ids past this are no row's (and past what SQLite's integers hold)
# A gold clip that most of its answers got wrong may carry a wrong answer: say so from this many.
CHECK_AFTER_ANSWERS = 3


@router.get("/admin/metrics", name="admin.metrics")
def metrics_page(
    request: Request,
    days: int | None = Query(None, ge=1, le=3650),
    caller: Caller = Depends(page_caller),
    session: Session = Depends(get_db),
) -> Response:
    """Where the device is wrong (weighted by inverse inclusion probability), cost, privacy figures."""
    since = utcnow() - timedelta(days=days) if days else None
    settings = get_ws(request).settings
    m = compute_metrics(
        session,
        actor=caller.actor,
        since=since,
        period_days=settings.sample_cap_days,
        consent_default=settings.consent_default,
    )
    session.commit()  # the metrics.view audit row
    return render(request, "metrics.html", {"m": m.as_dict(), "days": days})


@router.get("/admin", name="admin.overview")
def overview(
    request: Request,
    page: int = Query(1, ge=1, le=100_000),
    caller: Caller = Depends(page_caller),
    session: Session = Depends(get_db),
) -> Response:
    stats = workspace_stats(session, consent_default=get_ws(request).settings.consent_default)
    program = program_stats(session)
    reviewers, total = reviewer_table(session, page=page, per_page=PER_PAGE)
    queues = sorted(set(stats["queue"]["by_queue"]) | set(program["clips_per_hour"]))  # type: ignore[index]
    return render(
        request,
        "admin.html",
        {
            "stats": stats,
            "program": program,
            "queues": queues,
            "reviewers": reviewers,
            "page": page,
            "pages": max(1, -(-total // PER_PAGE)),
            "escalations": escalation.open_escalation_count(session),
        },
    )


# -- the gold set ----------------------------------------------------------------------------------


def _gold_page(
    request: Request, session: Session, *, page: int = 1, notice: str = "", error: str = "", status: int = 200
) -> Response:
    """The gold set, counts only: no clip's answer or audio is shown here."""
    rows = gold.list_gold(session)
    pages = max(1, -(-len(rows) // PER_PAGE))
    page = min(page, pages)
    answers, accuracy = gold_accuracy(session)
    return render(
        request,
        "admin_gold.html",
        {
            "rows": rows[(page - 1) * PER_PAGE : page * PER_PAGE],
            "total": len(rows),
            "servable": sum(r.servable for r in rows),
            "answers": answers,
            "accuracy": accuracy,
            "candidates": gold.candidates(session, get_ws(request).settings.consent_default),
            "check_after": CHECK_AFTER_ANSWERS,
            "review_passes": get_ws(request).settings.review_passes,
            "max_pick": MAX_PICK,
            "page": page,
            "pages": pages,
            "notice": notice,
            "error": error,
        },
        status_code=status,
    )


def _whole_number(raw: str, field: str, low: int, high: int) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise InvalidInput(f"{field}: give a whole number", field=field) from None
    if not low <= value <= high:
        raise InvalidInput(f"{field}: give a number from {low} to {high}", field=field)
    return value


@router.get("/admin/gold", name="admin.gold")
def gold_set(
    request: Request,
    page: int = Query(1, ge=1, le=100_000),
    added: int | None = Query(None, ge=0, le=MAX_ID),
    asked: int | None = Query(None, ge=0, le=MAX_ID),
    removed: int | None = Query(None, ge=0, le=MAX_ID),
    caller: Caller = Depends(page_caller),
    session: Session = Depends(get_db),
) -> Response:
    """The gold set with how reviewers did on each clip; pick, add and remove clips."""
    notice = ""
    if added is not None:
        notice = f"{added} clip(s) added to the gold set"
        if asked is not None and added < asked:
            notice += f" ({asked} asked; no more clips are eligible)"
        notice += "."
    elif removed is not None:
        notice = f"Clip {removed} left the gold set."
    return _gold_page(request, session, page=page, notice=notice)


@router.post("/admin/gold/pick", name="admin.gold_pick")
def gold_pick(
    request: Request,
    n: str = Form(""),
    per_account: str = Form("1"),
    caller: Caller = Depends(csrf_checked),
    session: Session = Depends(get_db),
) -> Response:
    """Add up to n reviewed clips at random, at most `per_account` per household (audited)."""
    try:
        count = _whole_number(n, "how many", 1, MAX_PICK)
        limit = _whole_number(per_account, "per household", 1, 100)
    except InvalidInput as exc:
        return _gold_page(request, session, error=exc.message, status=exc.http_status)
    picks = gold.pick_gold(
        session,
        actor=caller.actor,
        n=count,
        per_account=limit,
        consent_default=get_ws(request).settings.consent_default,
        seed=None,
    )
    session.commit()
    return RedirectResponse(f"/admin/gold?added={len(picks)}&asked={count}", status_code=303)


@router.post("/admin/gold/add", name="admin.gold_add")
def gold_add(
    request: Request,
    clip: str = Form(""),
    caller: Caller = Depends(csrf_checked),
    session: Session = Depends(get_db),
) -> Response:
    """Add one reviewed clip with its final answer, or say on the page why it cannot be gold."""
    try:
        clip_id = _whole_number(clip, "clip", 1, MAX_ID)
        consent_default = get_ws(request).settings.consent_default
        gold.add_gold(session, actor=caller.actor, clip_id=clip_id, consent_default=consent_default)
    except (InvalidInput, NotFound) as exc:
        session.rollback()
        return _gold_page(request, session, error=exc.message, status=exc.http_status)
    session.commit()
    return RedirectResponse("/admin/gold?added=1", status_code=303)


@router.post("/admin/gold/{clip_id}/remove", name="admin.gold_remove")
def gold_remove(
    request: Request,
    clip_id: int = Path(ge=1, le=MAX_ID),
    caller: Caller = Depends(csrf_checked),
    session: Session = Depends(get_db),
) -> Response:
    """Take a clip out of the gold set; its waiting gold items are withdrawn (audited)."""
    try:
        gold.remove_gold(session, actor=caller.actor, clip_id=clip_id)
    except NotFound as exc:
        session.rollback()
        return _gold_page(request, session, error=exc.message, status=exc.http_status)
    session.commit()
    return RedirectResponse(f"/admin/gold?removed={clip_id}", status_code=303)


# -- escalations: the program owner's follow-up of the safety team's escalations -------------------


def _escalations_page(
    request: Request,
    session: Session,
    *,
    notice: str = "",
    error: str = "",
    revealed: tuple[int, str] | None = None,
    status: int = 200,
) -> Response:
    return render(
        request,
        "admin_escalations.html",
        {
            "open": escalation.escalations(session),
            "closed": escalation.escalations(session, open_only=False, limit=50),
            "resolutions": escalation.RESOLUTIONS,
            "revealed": revealed,
            "notice": notice,
            "error": error,
        },
        status_code=status,
    )


@router.get("/admin/escalations", name="admin.escalations")
def escalations_page(
    request: Request,
    closed: int | None = Query(None, ge=1, le=MAX_ID),
    caller: Caller = Depends(page_caller),
    session: Session = Depends(get_db),
) -> Response:
    """What the safety team escalated (someone may be in danger) and what was done about it."""
    return _escalations_page(request, session, notice=f"Escalation {closed} closed." if closed else "")


@router.post("/admin/escalations/{outcome_id}/lookup", name="admin.escalation_lookup")
def escalation_lookup(
    request: Request,
    outcome_id: int = Path(ge=1, le=MAX_ID),
    caller: Caller = Depends(csrf_checked),
    session: Session = Depends(get_db),
) -> Response:
    """Show the account of an open escalation's clip, on this response only (never in a URL).
    Audited before it is shown."""
    try:
        account = escalation.look_up_account(session, actor=caller.actor, outcome_id=outcome_id)
    except (InvalidInput, NotFound) as exc:
        session.rollback()
        return _escalations_page(request, session, error=exc.message, status=exc.http_status)
    session.commit()
    page = _escalations_page(request, session, revealed=(outcome_id, account))
    page.headers["Cache-Control"] = "no-store"
    return page


@router.post("/admin/escalations/{outcome_id}/resolve", name="admin.escalation_resolve")
def escalation_resolve(
    request: Request,
    outcome_id: int = Path(ge=1, le=MAX_ID),
    resolution: str = Form(""),
    caller: Caller = Depends(csrf_checked),
    session: Session = Depends(get_db),
) -> Response:
    """Close an escalation with what was done (audited)."""
    try:
        escalation.resolve_escalation(
            session, actor=caller.actor, user_id=caller.user.id, outcome_id=outcome_id, resolution=resolution
        )
    except (InvalidInput, NotFound) as exc:
        session.rollback()
        return _escalations_page(request, session, error=exc.message, status=exc.http_status)
    session.commit()
    return RedirectResponse(f"/admin/escalations?closed={outcome_id}", status_code=303)
