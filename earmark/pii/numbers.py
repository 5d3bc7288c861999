"""Phone, card and social security numbers, and dates of birth, in tokens of a transcript.

A number is read from its words (see `pii_spoken`), then typed by its length, the Luhn checksum and the cue
words around it ("card", "social", "call"); times, dates and amounts ("seven thousand ...") are left alone.
"""

from __future__ import annotations

from earmark.pii.address import street_end
from earmark.pii.spoken import MONTHS, Found, NumberRun, Token, luhn_ok, read_ordinal

_CONTEXT = {
    "CARD": {"card", "credit", "debit", "visa", "mastercard", "amex", "discover", "maestro", "jcb", "diners",
             "cvv", "expiry", "expiration", "payment", "pay"},
    "PHONE": {"call", "phone", "telephone", "mobile", "cell", "cellphone", "dial", "text", "landline", "fax",
              "reach", "ring", "whatsapp", "contact", "calling", "extension", "ext", "tel", "answering",
              "answer", "voicemail"},
    "SSN": {"social", "ssn", "ss", "security", "taxpayer", "itin", "tin"},
}  # fmt: skip


def _context(tokens: list[Token], run: NumberRun) -> str | None:
    """The type whose cue word is nearest before the run (8 tokens), else just after it (3 tokens).

    A bare "number" ("my number is ...") counts as a phone cue only when no other cue is near.
    """
    window = [
        *range(run.start - 1, max(run.start - 9, -1), -1),
        *range(run.end, min(run.end + 3, len(tokens))),
    ]
    for j in window:
        for kind, words in _CONTEXT.items():
            if tokens[j].norm in words:
                return kind
    if any(tokens[j].norm in ("number", "numbers", "digits") for j in window):
        return "PHONE"
    return None


def classify_number(digits: str, *, context: str | None, plus: bool = False) -> str | None:
    """The PII type of a spoken or written digit string, given a nearby cue type, or None.

    >>> classify_number("4111111111111111", context=None), classify_number("5550123", context=None)
    ('CARD', 'PHONE')
    """
    d = len(digits)
    if plus and 7 <= d <= 15:
        return "PHONE"
    if context == "SSN" and 8 <= d <= 10:
        return "SSN"
    if context == "CARD" and 12 <= d <= 19:
        return "CARD"
    if context == "PHONE" and 7 <= d <= 15:
        return "PHONE"
    if 13 <= d <= 19 and luhn_ok(digits):
        return "CARD"
    if d == 9:
        return "SSN"
    if 7 <= d <= 15:
        return "PHONE"
    if d >= 16:
        return "CARD" if context == "CARD" or d <= 19 else "PHONE"
    return None


_TOLL_FREE = ("800", "888", "877", "866", "855", "844", "833", "1800", "1888", "1877", "1866", "1855")


def _read_run(run: NumberRun, context: str | None) -> str | None:
    """The type of a run, trying its other readings ("fifty four" as 5-0-4) when the first is unusual."""
    readings = run.readings()
    if context not in ("PHONE", "SSN"):
        for digits in readings:
            if 13 <= len(digits) <= 19 and luhn_ok(digits):
                return "CARD"
    kind = classify_number(run.digits, context=context, plus=run.plus)
    if (
        kind == "SSN"
        and context != "SSN"
        and any(d.startswith(_TOLL_FREE) and len(d) in (10, 11) for d in readings[1:])
    ):
        return "PHONE"  # "eight hundred seven five five ..." is 800-755-...
    if kind in ("CARD", "SSN") or run.plus or (kind == "PHONE" and len(run.digits) in (7, 10, 11)):
        return kind
    if len(run.digits) < 7:  # other readings only repair a long number's length, never make one
        return kind
    for digits in readings[1:]:
        if len(digits) in (7, 10, 11) and context != "SSN":
            return "PHONE"
        if len(digits) == 9 and context == "SSN":
            return "SSN"
    return kind


_TIME_AFTER = {"am", "pm", "a", "p", "o'clock", "hours", "hrs"}
_DATE_BEFORE = {"on", "for", "until", "till", "by", "from", "since", "before", "after", "at"} | MONTHS.keys()


def _time_or_date(tokens: list[Token], run: NumberRun, context: str | None) -> bool:
    """ "at oh nine thirty eight forty two pm", "on eleven five twenty thirty seven": a time or a date."""
    if context == "PHONE":
        return False
    if run.end < len(tokens) and tokens[run.end].norm in _TIME_AFTER:
        return True
    before = tokens[run.start - 1].norm if run.start else ""
    return before in _DATE_BEFORE and len(run.digits) <= 8 and _date_digits(run.digits, four_digit_year=True)


def _counted(tokens: list[Token], run: NumberRun) -> bool:
    """ "seven thousand eight hundred seventy three": said as an amount, not read out as an identifier."""
    return any(tokens[k].norm == "thousand" for k in range(run.start, run.end))


def find_numbers(tokens: list[Token], runs: list[NumberRun]) -> list[Found]:
    """Phone, card and social security numbers among `runs`."""
    found: list[Found] = []
    for run in runs:
        context = _context(tokens, run)
        if _time_or_date(tokens, run, context) or (context is None and _counted(tokens, run)):
            continue
        if len(run.digits) <= 12 and street_end(tokens, run.end) is not None:
            continue  # "seven eight seven three two one six menzies street": house numbers
        kind = _read_run(run, context)
        if (
            kind is None
            and len(run.digits) == 3
            and run.start >= 2
            and (tokens[run.start - 2].norm, tokens[run.start - 1].norm) == ("area", "code")
        ):
            kind = "PHONE"
        if kind is not None:
            first = run.start - 1 if run.plus else run.start
            found.append((tokens[first].start, tokens[run.end - 1].end, kind))
    return found


# ---------------------------------------------------------------- dates of birth

_BIRTH_CUES = {"birthday", "bday", "birthdate", "dob", "born", "birth"}


def find_dates_of_birth(tokens: list[Token], runs: list[NumberRun]) -> list[Found]:
    """Dates near a birth cue: "my birthday is march third", "born on 3/15/1985", "born in 1980"."""
    cues = [k for k, t in enumerate(tokens) if t.norm.removesuffix("'s") in _BIRTH_CUES]
    if not cues:
        return []
    run_at = {r.start: r for r in runs}
    found: list[Found] = []
    i = 0
    while i < len(tokens):
        end = _date_end(tokens, i, run_at)
        near = end is not None and any(i - 8 <= c < i or end <= c < end + 5 for c in cues)
        if end is not None and near:
            found.append((tokens[i].start, tokens[end - 1].end, "DATE_OF_BIRTH"))
            i = end
        else:
            i += 1
    return found


def _date_end(tokens: list[Token], i: int, run_at: dict[int, NumberRun]) -> int | None:
    """End of a date starting at tokens[i] ("march third nineteen eighty five", "3/15/1985"), or None."""
    n = len(tokens)
    t = tokens[i].norm
    if t in MONTHS:
        j = i + 1
        if j < n and tokens[j].norm == "the":
            j += 1
        run = run_at.get(j)
        if run is not None and 4 <= len(run.digits) <= 6:  # "march nineteen eighty five", "march 15 1985"
            return run.end
        day = read_ordinal(tokens, j)
        if day is None or not 1 <= day[0] <= 31:
            return None
        return _year_end(tokens, day[1], run_at)
    if t == "the" or read_ordinal(tokens, i) is not None:
        j = i + 1 if t == "the" else i
        day = read_ordinal(tokens, j)
        if day is None or not 1 <= day[0] <= 31:
            return None
        j = day[1]
        if j < n and tokens[j].norm == "of":
            j += 1
        if j < n and tokens[j].norm in MONTHS:
            return _year_end(tokens, j + 1, run_at)
    run = run_at.get(i)
    if run is not None and any(_date_digits(d) for d in run.readings()):
        return run.end
    return None


def _date_digits(digits: str, *, four_digit_year: bool = False) -> bool:
    """Digits that read as month, day, year ("3151985", "031585") or as a year alone ("1985")."""
    if len(digits) == 4:
        return 1900 <= int(digits) <= 2099
    for m in (1, 2):
        for d in (1, 2):
            rest = digits[m + d :]
            year_ok = (len(rest) == 4 and 1900 <= int(rest) <= 2099) or (len(rest) == 2 and not four_digit_year)
            if year_ok and 1 <= int(digits[:m]) <= 12 and 1 <= int(digits[m : m + d]) <= 31:
                return True
    return False


def _year_end(tokens: list[Token], j: int, run_at: dict[int, NumberRun]) -> int:
    if j < len(tokens) and tokens[j].norm in (",", "of", "in") and j + 1 in run_at:
        j += 1
    run = run_at.get(j)
    if run is not None and len(run.digits) in (2, 4):
        return run.end
    return j
