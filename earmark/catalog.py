"""The entity catalog (artists, songs, places...) and the project's NLU inventory (intents and
slot types), both imported from files; and entity linking: ranked candidates for a slot value,
by spelling and by sound, so "tailor swift" finds Taylor Swift."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import jellyfish
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from rapidfuzz import fuzz
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from earmark import audit
from earmark.errors import InvalidInput
from earmark.models import Entity, InventoryItem
from earmark.textnorm import normalize
from earmark.types import Actor


def phonetic(text: str) -> str:
    """Metaphone code of each word, joined: what a name sounds like, whatever its spelling.

    >>> phonetic("tailor swift") == phonetic("Taylor Swift")
    True
    """
    return " ".join(jellyfish.metaphone(w) for w in normalize(text).split())


class CatalogLine(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    id: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=256)
    type: str = Field(min_length=1, max_length=64)
    aliases: list[str] = Field(default_factory=list, max_length=50)


@dataclass(frozen=True, slots=True)
class ImportReport:
    added: int
    updated: int
    errors: list[tuple[int, str]]


def read_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file (catalog JSONL); a file that is not UTF-8 is refused by name."""
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot be read ({exc.strerror})") from None


def import_catalog(session: Session, *, actor: Actor, lines: Iterable[str]) -> ImportReport:
    """Add or update entities from JSONL lines {"id", "name", "type", "aliases"}. Bad lines are
    reported by number and skipped; good ones are kept. Audited; caller commits."""
    added = updated = 0
    errors: list[tuple[int, str]] = []
    seen: set[str] = set()
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = CatalogLine.model_validate(json.loads(line))
        except json.JSONDecodeError as exc:
            errors.append((lineno, f"not valid JSON: {exc.msg}"))
            continue
        except ValidationError as exc:
            errors.append((lineno, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())))
            continue
        if item.id in seen:
            errors.append((lineno, f"id {item.id!r} appears twice in the file"))
            continue
        seen.add(item.id)
        names = [item.name, *item.aliases]
        keys = sorted({k for n in names for k in (normalize(n), phonetic(n)) if k})
        row = session.get(Entity, item.id)
        if row is None:
            session.add(Entity(id=item.id, name=item.name, type=item.type, aliases=item.aliases, keys=keys))
            added += 1
        else:
            row.name, row.type, row.aliases, row.keys = item.name, item.type, item.aliases, keys
            updated += 1
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="catalog.import",
        details={"added": added, "updated": updated, "errors": len(errors)},
    )
    return ImportReport(added, updated, errors)


@dataclass(frozen=True, slots=True)
class Candidate:
    id: str
    name: str
    type: str
    score: float  # 0..1


def link(session: Session, value: str, *, entity_type: str | None = None, limit: int = 5) -> list[Candidate]:
    """Ranked catalog entries for a slot value: best spelling or sound match over names and aliases."""
    query = normalize(value)
    if not query:
        return []
    sound = phonetic(value)
    q = select(Entity)
    if entity_type:
        q = q.where(Entity.type == entity_type)
    scored: list[Candidate] = []
    for e in session.execute(q).scalars():
        best = 0.0
        for name in [e.name, *e.aliases]:
            n = normalize(name)
            spelled = fuzz.ratio(query, n) / 100
            sounded = fuzz.ratio(sound, phonetic(name)) / 100 if sound else 0.0
            partial = fuzz.token_set_ratio(query, n) / 100 * 0.9
            best = max(best, spelled, 0.9 * sounded, partial)
        if best >= 0.65:
            scored.append(Candidate(e.id, e.name, e.type, round(best, 3)))
    scored.sort(key=lambda c: (-c.score, c.name))
    return scored[:limit]


# -- NLU inventory -------------------------------------------------------------------------------


InventoryName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class SlotSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: InventoryName
    entity_type: InventoryName | None = None  # the catalog type its values link to


class InventoryFile(BaseModel):
    """{"intents": [...], "slots": [{"name", "entity_type"?}]}; names of 1 to 64 characters (what
    a reviewer can submit)."""

    model_config = ConfigDict(extra="forbid")
    intents: list[InventoryName] = Field(min_length=1)
    slots: list[SlotSpec] = Field(default_factory=list)


def import_inventory(session: Session, *, actor: Actor, path: Path) -> tuple[int, int]:
    """Replace the intent and slot inventory with the file's: {"intents": [...], "slots":
    [{"name", "entity_type"?}]}. Audited; caller commits."""
    try:
        data = InventoryFile.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValidationError) as exc:
        raise InvalidInput(f"{path}: not a valid inventory file ({exc})") from exc
    session.execute(delete(InventoryItem))
    for name in dict.fromkeys(data.intents):
        session.add(InventoryItem(kind="intent", name=name))
    slot_names = []
    for slot in data.slots:
        if slot.name in slot_names:
            continue
        slot_names.append(slot.name)
        session.add(InventoryItem(kind="slot", name=slot.name, entity_type=slot.entity_type))
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="inventory.import",
        details={"intents": len(data.intents), "slots": len(slot_names)},
    )
    return len(data.intents), len(slot_names)


@dataclass(frozen=True, slots=True)
class Inventory:
    intents: list[str]
    slots: dict[str, str | None]  # slot type -> catalog entity type

    @property
    def empty(self) -> bool:
        return not self.intents


def load_inventory(session: Session) -> Inventory:
    """Intents and slot types in the file's order (slot keys Alt+1..9 follow it: put common types first)."""
    rows = session.execute(select(InventoryItem).order_by(InventoryItem.kind, InventoryItem.id)).scalars().all()
    return Inventory(
        intents=[r.name for r in rows if r.kind == "intent"],
        slots={r.name: r.entity_type for r in rows if r.kind == "slot"},
    )
