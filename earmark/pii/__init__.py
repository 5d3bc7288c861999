"""Find personal data in transcripts as ASR writes them (lowercase, no punctuation, numbers as words).

`detect_pii` finds phone numbers, emails, card numbers, SSNs, street addresses, dates of birth and names of
people; `mask` replaces them with their type. Spoken forms ("five five five oh one two three", "jane dot
doe at example dot com") and written ones ("555-0123", "jane.doe@example.com") are both handled. Pure:
no I/O beyond reading the packaged word lists once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from earmark.pii.address import find_addresses
from earmark.pii.numbers import find_dates_of_birth, find_numbers
from earmark.pii.person import detect_persons
from earmark.pii.spoken import Found, Token, number_runs, tokenize
from earmark.redaction import TextSpan

TYPES = ("PHONE", "EMAIL", "CARD", "SSN", "ADDRESS", "DATE_OF_BIRTH", "PERSON")
# When two findings overlap, the more specific type wins: "jane dot doe at ..." is an email, not a name.
# A date of birth is only found next to a birth cue and in date shape, so it beats a phone reading of it.
_PRIORITY = {t: k for k, t in enumerate(("EMAIL", "DATE_OF_BIRTH", "CARD", "SSN", "PHONE", "ADDRESS", "PERSON"))}


@dataclass(frozen=True, slots=True)
class PiiSpan:
    """Half-open character range [start, end) of the input that holds personal data of one type.

    >>> PiiSpan(5, 12, "PERSON", "jessica")
    PiiSpan(start=5, end=12, type='PERSON', value='jessica')
    """

    start: int
    end: int
    type: str
    value: str

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise ValueError(f"invalid span [{self.start}, {self.end})")
        if self.type not in TYPES:
            raise ValueError(f"unknown PII type {self.type!r}; expected one of {', '.join(TYPES)}")


def detect_pii(text: str) -> list[PiiSpan]:
    """Every piece of personal data in `text`, sorted by position, never overlapping.

    >>> [(s.type, s.value) for s in detect_pii("text david my number is five five five oh one two three")]
    [('PERSON', 'david'), ('PHONE', 'five five five oh one two three')]
    """
    tokens = tokenize(text)
    runs = number_runs(tokens)
    found = [*_written_emails(text), *_spoken_emails(tokens), *find_numbers(tokens, runs)]
    found += find_dates_of_birth(tokens, runs)
    found += find_addresses(tokens, runs)
    found += [(tokens[a].start, _end(text, tokens[b - 1]), "PERSON") for a, b in detect_persons(tokens)]
    return _resolve(text, found)


# Slot types of a device's language understanding that name personal data. Their values are
# masked wherever they appear in the transcript, also where the rules find nothing: a recognizer's
# "cool maria" for "call maria" still comes with the slot contact = maria.
PII_SLOT_TYPES = {
    "contact": "PERSON", "contact_name": "PERSON", "person": "PERSON", "person_name": "PERSON",
    "recipient": "PERSON", "name": "PERSON", "first_name": "PERSON", "last_name": "PERSON",
    "phone": "PHONE", "phone_number": "PHONE", "email": "EMAIL", "email_address": "EMAIL",
    "address": "ADDRESS", "street_address": "ADDRESS", "card_number": "CARD", "ssn": "SSN",
    "date_of_birth": "DATE_OF_BIRTH", "birthday": "DATE_OF_BIRTH",
}  # fmt: skip


def with_slot_hints(text: str, spans: Sequence[TextSpan], slots: list[Any] | None) -> list[TextSpan]:
    """`spans` (any detector's) plus every occurrence in `text` of a value the device tagged with a
    personal-data slot type (`PII_SLOT_TYPES`); overlaps resolved as `detect_pii` resolves them.

    >>> with_slot_hints("cool maria", [], [{"type": "contact", "value": "Maria"}])
    [TextSpan(start=5, end=10, type='PERSON')]
    """
    found: list[Found] = [(s.start, s.end, s.type) for s in spans]
    for slot in slots or []:
        if not isinstance(slot, dict):
            continue
        kind = PII_SLOT_TYPES.get(str(slot.get("type", "")).lower())
        value = " ".join(str(slot.get("value", "")).split())
        if kind is None or not value:
            continue
        pattern = r"(?<!\w)" + r"\s+".join(re.escape(w) for w in value.split()) + r"(?!\w)"
        found += [(m.start(), m.end(), kind) for m in re.finditer(pattern, text, flags=re.IGNORECASE)]
    if len(found) == len(spans):
        return list(spans)
    return [TextSpan(s.start, s.end, s.type) for s in _resolve(text, found)]


def mask(text: str, spans: list[PiiSpan]) -> str:
    """`text` with each span replaced by its type in brackets; overlapping spans after the first are skipped.

    >>> mask("call jennifer now", [PiiSpan(5, 13, "PERSON", "jennifer")])
    'call [PERSON] now'
    """
    out: list[str] = []
    pos = 0
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if span.end > len(text):
            raise ValueError(f"span [{span.start}, {span.end}) lies past the end of the text ({len(text)})")
        if span.start < pos:
            continue
        out += [text[pos : span.start], f"[{span.type}]"]
        pos = span.end
    out.append(text[pos:])
    return "".join(out)


def _end(text: str, token: Token) -> int:
    """End of a name token without a possessive "'s": "jennifer's" -> "jennifer"."""
    if token.norm.endswith("'s") and token.end - token.start > 2:
        return token.end - 2
    return token.end


def _resolve(text: str, found: list[Found]) -> list[PiiSpan]:
    """Keep the higher-priority finding where two overlap; the rest of the other one is kept on its own."""
    kept: list[Found] = []
    for start, end, kind in sorted(found, key=lambda f: (_PRIORITY[f[2]], f[0] - f[1], f[0])):
        pieces = [(start, end)]
        for s, e, _ in kept:
            pieces = [p for a, b in pieces for p in ((a, min(b, s)), (max(a, e), b)) if p[0] < p[1]]
        for a, b in pieces:
            while a < b and not text[a].isalnum():
                a += 1
            while b > a and not text[b - 1].isalnum():
                b -= 1
            if a < b:
                kept.append((a, b, kind))
    return [PiiSpan(s, e, k, text[s:e]) for s, e, k in sorted(kept)]


# ---------------------------------------------------------------- emails

_WRITTEN_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_DOT = {"dot", ".", "period", "point"}
_LOCAL_JOIN = {"dot", ".", "underscore", "_", "dash", "-", "hyphen", "plus", "+"}
_TLDS = {
    "com", "net", "org", "edu", "gov", "mil", "int", "info", "biz", "io", "ai", "app", "dev", "name", "pro",
    "mobi", "email", "online", "site", "xyz", "tech", "store", "blog", "cloud", "mail", "museum", "travel",
}  # fmt: skip
_PROVIDERS = {"gmail", "googlemail", "yahoo", "hotmail", "outlook", "icloud", "aol", "protonmail", "proton"}
# Words that end a spoken local part when reading leftwards from "at": "my email is | jane dot doe at ..."
_LOCAL_STOP = frozenset(
    [
        "is",
        "was",
        "email",
        "e",
        "mail",
        "address",
        "to",
        "me",
        "my",
        "at",
        "send",
        "it",
        "its",
        "it's",
        "the",
        "a",
        "an",
        "please",
        "and",
        "or",
        "from",
        "for",
        "with",
        "of",
        "on",
        "in",
        "him",
        "her",
        "them",
        "you",
        "your",
        "his",
        "their",
        "our",
        "this",
        "that",
        "write",
        "contact",
        "reach",
        "cc",
        "forward",
        "share",
        "use",
        "try",
        "new",
        "called",
        "named",
        "id",
        "account",
        "reply",
        "as",
        "by",
        "be",
        "are",
        "am",
        "i",
        "i'm",
        "we",
        "us",
        "also",
        "just",
        "here",
        "there",
        "is",
        "it's\".",
    ]
)


def _written_emails(text: str) -> list[Found]:
    return [(m.start(), m.end(), "EMAIL") for m in _WRITTEN_EMAIL.finditer(text)]


def _spoken_emails(tokens: list[Token]) -> list[Found]:
    found: list[Found] = []
    for k, tok in enumerate(tokens):
        if tok.norm not in ("at", "@") or k == 0:
            continue
        end = _domain_end(tokens, k + 1)
        if end is None:
            continue
        start = _local_start(tokens, k)
        if start < k:
            found.append((tokens[start].start, tokens[end - 1].end, "EMAIL"))
    return found


def _domain_end(tokens: list[Token], i: int) -> int | None:
    """Token index after "example dot co dot uk" starting at i, or None when no domain is spoken there."""
    n = len(tokens)
    labels = 0
    j = i
    while j < n and (tokens[j].is_word or tokens[j].is_digits) and tokens[j].norm not in _DOT:
        j += 1
        while j + 1 < n and tokens[j].norm in ("dash", "hyphen", "-") and tokens[j + 1].norm.isalnum():
            j += 2
        labels += 1
        if j + 1 < n and tokens[j].norm in _DOT and tokens[j + 1].is_word:
            j += 1
            continue
        break
    if labels >= 2:
        tld = tokens[j - 1].norm
        if tld in _TLDS or (len(tld) == 2 and tld.isascii() and tld.isalpha()):
            return j
    if labels >= 1 and tokens[i].norm in _PROVIDERS:
        return i + 1
    return None


def _local_start(tokens: list[Token], at: int) -> int:
    """First token of the local part that ends just before tokens[at] ("at")."""
    start = at
    words = 0
    j = at - 1
    while j >= 0 and words < 5:
        t = tokens[j].norm
        if t in _LOCAL_JOIN:
            if j > 0 and tokens[j - 1].norm not in _LOCAL_STOP:
                j -= 1
                continue
            break
        if t in _LOCAL_STOP or not (tokens[j].is_word or tokens[j].is_digits):
            break
        start = j
        words += 1
        j -= 1
    return start


class SpokenPiiDetector:
    """The pipeline's PII detector: `detect_pii` with the values dropped (types and offsets only)."""

    name = "spoken-rules"

    def detect(self, text: str) -> list[TextSpan]:
        return [TextSpan(s.start, s.end, s.type) for s in detect_pii(text)]
