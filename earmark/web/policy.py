"""Who may call which route: one table, checked for every route by tests/web/test_policy.py.

Keys are route names (`name=` on each route). `PUBLIC` routes need no login. A route missing from
this table is refused to everyone (fail closed).
"""

from __future__ import annotations

from earmark.types import Role

PUBLIC: frozenset[str] = frozenset({"login.form", "login.submit", "health", "static"})

R = Role
# Who hears customers' (protected) audio. Not admins: they run the program, and they are the ones
# who could find out whose a clip is (docs/privacy.md, "Who sees what"). An admin who must review
# does it under a reviewer's or senior's account, and every role change is audited.
REVIEW_ROLES = frozenset({R.reviewer, R.senior})
SENIORS = frozenset({R.senior})

POLICY: dict[str, frozenset[Role]] = {
    "home": frozenset(Role) - {R.service},
    "logout": frozenset(Role) - {R.service},
    "review.start": REVIEW_ROLES,
    "review.next": REVIEW_ROLES,
    "review.page": REVIEW_ROLES | {R.safety, R.wakeword},
    "review.audio": REVIEW_ROLES | {R.safety, R.wakeword},
    "review.submit": REVIEW_ROLES,
    "review.skip": REVIEW_ROLES,
    "review.pii": REVIEW_ROLES | {R.wakeword},
    "review.sensitive": REVIEW_ROLES | {R.wakeword},
    "review.break": REVIEW_ROLES | {R.safety, R.wakeword},
    "review.link": REVIEW_ROLES,
    "review.help": REVIEW_ROLES,
    "review.inbox": REVIEW_ROLES,
    "help.apply": REVIEW_ROLES,
    "help.queue": SENIORS,
    "help.page": REVIEW_ROLES,
    "help.audio": SENIORS,
    "help.answer": SENIORS,
    "adjudicate.start": SENIORS,
    "adjudicate.next": SENIORS,
    "safety.start": frozenset({R.safety}),
    "safety.next": frozenset({R.safety}),
    "safety.outcome": frozenset({R.safety}),
    "wakeword.start": frozenset({R.wakeword}),
    "wakeword.next": frozenset({R.wakeword}),
    "wakeword.answer": frozenset({R.wakeword}),
    "dashboard.me": frozenset({R.reviewer, R.senior, R.safety, R.wakeword, R.admin}),
    "admin.overview": frozenset({R.admin}),
    "admin.metrics": frozenset({R.admin}),
    "admin.gold": frozenset({R.admin}),
    "admin.gold_pick": frozenset({R.admin}),
    "admin.gold_add": frozenset({R.admin}),
    "admin.gold_remove": frozenset({R.admin}),
    "admin.escalations": frozenset({R.admin}),
    "admin.escalation_lookup": frozenset({R.admin}),
    "admin.escalation_resolve": frozenset({R.admin}),
    "api.clips.create": frozenset({R.service, R.admin}),
    "api.consent.set": frozenset({R.service, R.admin}),
    "api.stats": frozenset({R.service, R.admin, R.auditor}),
    "api.report": frozenset({R.service, R.admin, R.auditor}),
    "api.erase": frozenset({R.service, R.admin}),
    "audit.view": frozenset({R.auditor, R.admin}),
    "audit.report": frozenset({R.auditor, R.admin}),
}


def allowed(route_name: str, role: Role | str) -> bool:
    roles = POLICY.get(route_name)
    return roles is not None and Role(role) in roles
