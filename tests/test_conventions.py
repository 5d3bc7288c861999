"""Conventions that are checked, not just written down (../shared/CONVENTIONS.md)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from earmark.audit import EVENTS
from earmark.config import Settings

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "earmark"
PURE = [
    "audio.py",
    "crypto.py",
    "synth.py",
    "sampling_policy.py",
    "manifest.py",
    "export_formats.py",
    "textnorm.py",
    "sampling_eval.py",
    "anonymize.py",
    "voice_model.py",
]
# Boundaries own transactions; everything else is domain code and never commits.
BOUNDARIES = {"cli.py", "workspace.py", "db.py", "demo.py"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_every_setting_is_documented() -> None:
    doc = (ROOT / "docs" / "config.md").read_text()
    missing = [name for name in Settings.model_fields if f"`{name}`" not in doc]
    assert not missing, f"document these settings in docs/config.md: {missing}"


def test_every_audit_event_is_documented() -> None:
    doc = (ROOT / "docs" / "audit-events.md").read_text()
    missing = [name for name in EVENTS if f"`{name}`" not in doc]
    assert not missing, f"document these audit events in docs/audit-events.md: {missing}"
    used = set()
    for path in PKG.rglob("*.py"):
        used |= set(re.findall(r'action="([a-z_.]+)"', path.read_text()))
    assert used <= EVENTS.keys(), used - EVENTS.keys()


def test_pure_modules_import_no_database_or_web_code() -> None:
    for name in PURE:
        bad = {
            m
            for m in _imports(PKG / name)
            if m.split(".")[0] in {"sqlalchemy", "fastapi", "starlette"}
            or m.startswith("earmark.web")
            or m in {"earmark.models", "earmark.db"}
        }
        assert not bad, f"{name} is pure but imports {bad}"


def test_domain_modules_never_commit() -> None:
    offenders = []
    for path in PKG.glob("*.py"):
        if path.name in BOUNDARIES:
            continue
        if re.search(r"\.commit\(\)", path.read_text()):
            offenders.append(path.name)
    assert not offenders, f"domain modules must leave commit() to the boundary: {offenders}"


def test_no_inline_script_or_style_handlers_in_templates() -> None:
    for path in (PKG / "web" / "templates").glob("*.html"):
        text = path.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), f"{path.name}: inline <script>"
        assert not re.search(r"\son[a-z]+=", text), f"{path.name}: inline event handler"
