"""The admin's dashboard: queue depths, throughput, agreement, reviewers; aggregated in SQL."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from earmark.metrics import compute_metrics
from earmark.models import utcnow
from earmark.stats import program_stats, reviewer_table, workspace_stats
from earmark.web.deps import Caller, get_db, get_ws, page_caller
from earmark.web.pages import render

router = APIRouter()
PER_PAGE = 50


@router.get("/admin/metrics", name="admin.metrics")
def metrics_page(
    request: Request,
    days: int | None = Query(None, ge=1, le=3650),
    caller: Caller = Depends(page_caller),
    session: Session = Depends(get_db),
) -> Response:
    """Where the device is wrong (weighted by inverse inclusion probability), cost, privacy figures."""
    since = utcnow() - timedelta(days=days) if days else None
    m = compute_metrics(session, actor=caller.actor, since=since, period_days=get_ws(request).settings.sample_cap_days)
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
        },
    )
