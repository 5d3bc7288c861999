"""The admin's overview page: counts and queue depths, aggregated in SQL."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from earmark.stats import workspace_stats
from earmark.web.deps import Caller, get_db, get_ws, page_caller
from earmark.web.pages import render

router = APIRouter()


@router.get("/admin", name="admin.overview")
def overview(request: Request, caller: Caller = Depends(page_caller), session: Session = Depends(get_db)) -> Response:
    stats = workspace_stats(session, consent_default=get_ws(request).settings.consent_default)
    return render(request, "admin.html", {"stats": stats})
