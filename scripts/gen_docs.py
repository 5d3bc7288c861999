"""Regenerate the tables in docs/config.md and docs/audit-events.md from the code.

    .venv/bin/python scripts/gen_docs.py

tests/test_conventions.py fails when a setting or an audit event is missing from the docs.
"""

from __future__ import annotations

import re
from pathlib import Path

from earmark.audit import EVENTS
from earmark.config import Settings

DOCS = Path(__file__).resolve().parents[1] / "docs"


def config_table() -> str:
    rows = ["| setting | environment variable | default | meaning |", "|---|---|---|---|"]
    for name, f in Settings.model_fields.items():
        d = f.default
        shown = "`./earmark-data`" if name == "home" else ("unset" if d is None else f"`{d}`")
        rows.append(f"| `{name}` | `EARMARK_{name.upper()}` | {shown} | {f.description} |")
    return "\n".join(rows)


def events_table() -> str:
    rows = ["| action | meaning |", "|---|---|"]
    rows += [f"| `{k}` | {v} |" for k, v in EVENTS.items()]
    return "\n".join(rows)


def replace_table(path: Path, header: str, table: str) -> None:
    text = path.read_text()
    pattern = re.compile(re.escape(header) + r"\n\|---.*?(?=\n\n|\n*\Z)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"{path}: table starting with {header!r} not found")
    path.write_text(pattern.sub(lambda _: table, text, count=1))


if __name__ == "__main__":
    replace_table(DOCS / "config.md", "| setting | environment variable | default | meaning |", config_table())
    replace_table(DOCS / "audit-events.md", "| action | meaning |", events_table())
    print("docs/config.md and docs/audit-events.md updated")
