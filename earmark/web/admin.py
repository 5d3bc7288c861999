"""The admin's overview page: counts and queue depths, aggregated in SQL."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from earmark.web.deps import Caller, get_ws, page_caller
from earmark.web.pages import render

router = APIRouter()


@router.get("/admin", name="admin.overview")
def overview(request: Request, caller: Caller = Depends(page_caller)) -> Response:
    return render(request, "admin.html", {"stats": get_ws(request).stats()})
