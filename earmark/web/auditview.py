"""The auditor's searchable view of the audit log (read-only)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from earmark import audit
from earmark.errors import InvalidInput
from earmark.models import User
from earmark.web.deps import Caller, csrf_checked, get_db, get_ws, page_caller
from earmark.web.pages import render

router = APIRouter()
PAGE = 100


@router.get("/audit", name="audit.view")
def audit_view(
    request: Request,
    action: str = "",
    actor: str = "",
    object_type: str = "",
    object_id: str = "",
    before: int | None = None,
    verify: bool = False,
    caller: Caller = Depends(page_caller),
    session: Session = Depends(get_db),
) -> Response:
    if before is not None and not 0 < before < 2**63:
        raise InvalidInput("before must be an event number", field="before")
    who, unknown = actor.strip(), ""
    if who and ":" not in who and who not in ("cli", "system", "anonymous"):
        # A person's name: the log holds their user id (a name can change; the id cannot).
        found = session.execute(select(User.id).where(User.username == who)).scalar_one_or_none()
        if found is None:  # names are case-sensitive: say so rather than just "no events"
            unknown = f"No user is named {who!r} (names are case-sensitive; `earmark user list` lists them)."
        who = f"user:{found}" if found is not None else who
    events = audit.search(
        session,
        action=action.strip() or None,
        actor=who or None,
        object_type=object_type if object_type in audit.OBJECT_TYPES else None,
        object_id=object_id.strip() or None,
        before_seq=before,
        limit=PAGE,
    )
    result = audit.verify_chain(session) if verify else None
    older = events[-1].seq if len(events) == PAGE else None
    # Who each user id is, so an investigation reads people, not numbers (auditors and admins only).
    ids = {int(e.actor[5:]) for e in events if e.actor.startswith("user:") and e.actor[5:].isdigit()}
    ids |= {int(e.object_id) for e in events if e.object_type == "user" and (e.object_id or "").isdigit()}
    names = dict(session.execute(select(User.id, User.username).where(User.id.in_(ids))).all()) if ids else {}
    return render(
        request,
        "audit.html",
        {
            "events": events,
            "names": {f"user:{k}": v for k, v in names.items()},
            "unknown_actor": unknown,
            "filters": {"action": action, "actor": actor, "object_type": object_type, "object_id": object_id},
            "object_types": audit.OBJECT_TYPES,
            "older": older,
            "verify": result,
            "actions": sorted(audit.EVENTS),
        },
    )


@router.post("/audit/report", name="audit.report")
def customer_report(
    request: Request,
    account: str = Form(..., min_length=1, max_length=200),
    caller: Caller = Depends(csrf_checked),
    session: Session = Depends(get_db),
) -> Response:
    """The customer's transparency report for an account, as the customer would get it (audited:
    `report.create` under the auditor's id). A POST: the account id stays out of URLs, browser
    history and access logs."""
    from earmark.transparency import build_report, render_html
    from earmark.web.api import REPORT_CSP

    ws = get_ws(request)
    data = build_report(
        session,
        actor=caller.actor,
        account_id=account.strip(),
        secret=ws.secret,
        consent_default=ws.settings.consent_default,
    )
    session.commit()
    return HTMLResponse(render_html(data), headers={"Content-Security-Policy": REPORT_CSP})
