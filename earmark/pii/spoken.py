"""Tokens of a transcript and the numbers spoken in it ("five five five oh one", "four fifteen", "555-0123").

Pure functions over text; offsets always index the original string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Letters (any script, with inner apostrophes: "jane's", "o'neil"), ASCII digit runs, or any single other
# non-space character (punctuation, emoji, other scripts' digits).
_TOKEN = re.compile(r"[0-9]+|[^\W\d_]+(?:['’][^\W\d_]+)*|\S")

UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9,
}  # fmt: skip
ZEROS = {"oh", "o", "nought", "nil"}  # a zero only between other digits: "oh" is also an interjection
TEENS = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}  # fmt: skip
# Words a speech recognizer writes for a digit it heard ("five ate nine", "oh for two"). Read as that
# digit only inside a run of other digits, never alone: "for" and "to" are everywhere else.
SOUND_ALIKE = {"ate": "eight", "for": "four", "fore": "four", "to": "two", "too": "two", "won": "one", "tree": "three"}
REPEATS = {"double": 2, "triple": 3}
SCALES = {"hundred": 100, "thousand": 1000}
_CONNECTORS = {"-", "–", ".", "/", ")", "dash", "hyphen"}
ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
    "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13, "fourteenth": 14,
    "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18, "nineteenth": 19,
    "twentieth": 20, "thirtieth": 30,
}  # fmt: skip
_ORDINAL_SUFFIXES = {"st", "nd", "rd", "th"}
MONTHS = {
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "april": 4, "apr": 4, "may": 5, "june": 6,
    "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8, "september": 9, "sept": 9, "sep": 9, "october": 10,
    "oct": 10, "november": 11, "nov": 11, "december": 12, "dec": 12,
}  # fmt: skip
Found = tuple[int, int, str]  # what a detector reports: start char, end char, PII type

NUMBER_WORDS = frozenset(UNITS) | TEENS.keys() | TENS.keys() | REPEATS.keys() | SCALES.keys()


@dataclass(frozen=True, slots=True)
class Token:
    """One word, digit run or symbol of the text; `norm` is its lowercase form for look-ups.

    >>> tokenize("Call 555-0123")[1]
    Token(start=5, end=8, norm='555')
    """

    start: int
    end: int
    norm: str

    @property
    def is_digits(self) -> bool:
        return self.norm.isascii() and self.norm.isdigit()

    @property
    def is_word(self) -> bool:
        return self.norm[:1].isalpha()


def tokenize(text: str) -> list[Token]:
    """Split `text` into tokens with offsets into `text`; never fails on any string."""
    return [Token(m.start(), m.end(), m.group().lower().replace("’", "'")) for m in _TOKEN.finditer(text)]


@dataclass(frozen=True, slots=True)
class NumberRun:
    """Consecutive tokens that spell one digit string, e.g. "double four one fifteen" -> "44115".

    `start`/`end` index the token list (half-open); `plus` says a "plus"/"+" came just before.
    `groups` is the digit string as spoken, one entry per number said: ("44", "1", "15"). `splits` holds,
    per group, the other way to hear it when there is one: "fifty four" is 54 but, inside a string of
    digits, often 5-0-4 ("thirty seven fifty | four oh five ..."); "eight hundred seven" may be 800-7.
    """

    start: int
    end: int
    digits: str
    groups: tuple[str, ...]
    plus: bool = False
    splits: tuple[str | None, ...] = ()

    def readings(self) -> list[str]:
        """The digit string as parsed first, then with one ambiguous group split, then with all split."""
        out = [self.digits]
        ks = [k for k, alt in enumerate(self.splits) if alt is not None]
        for k in ks:
            out.append("".join(self.splits[k] if j == k else g for j, g in enumerate(self.groups)))  # type: ignore[misc]
        if len(ks) > 1:
            out.append("".join(alt or g for g, alt in zip(self.groups, self.splits, strict=True)))
        return out

    @property
    def spelled(self) -> bool:
        """True when no group came from written digits (a hint that the number was read out)."""
        return len(self.groups) > 1


def _strong(tokens: list[Token], i: int) -> bool:
    t = tokens[i].norm
    if tokens[i].is_digits or t in UNITS or t in TEENS or t in TENS:
        return True
    if t in REPEATS:
        return i + 1 < len(tokens) and (
            tokens[i + 1].norm in UNITS
            or tokens[i + 1].norm in ZEROS
            or (tokens[i + 1].is_digits and len(tokens[i + 1].norm) == 1)
        )
    if t in SCALES:
        return i > 0 and (tokens[i - 1].norm in UNITS or tokens[i - 1].norm in TEENS or tokens[i - 1].norm in TENS)
    return False


def number_runs(tokens: list[Token]) -> list[NumberRun]:
    """Find every maximal run of tokens that reads as digits, spoken or written."""
    runs: list[NumberRun] = []
    n = len(tokens)
    i = 0
    while i < n:
        if not _starts_run(tokens, i):
            i += 1
            continue
        items: list[int] = []
        j = i
        while j < n:
            if (
                _strong(tokens, j)
                or (tokens[j].norm in ZEROS and (items or _starts_run(tokens, j)))
                or _sound_alike_digit(tokens, j, items)
            ):
                items.append(j)
            elif not _joins(tokens, j, items):
                break
            j += 1
        if items:
            parsed = _parse_groups([SOUND_ALIKE.get(tokens[k].norm, tokens[k].norm) for k in items])
            groups = tuple(g for g, _ in parsed)
            splits = tuple(alt for _, alt in parsed)
            plus = i > 0 and tokens[i - 1].norm in ("plus", "+")
            runs.append(NumberRun(items[0], items[-1] + 1, "".join(groups), groups, plus, splits))
        i = max(j, i + 1)
    return runs


def _single_digit(tokens: list[Token], i: int) -> bool:
    t = tokens[i].norm
    return t in UNITS or t in ZEROS or (tokens[i].is_digits and len(t) == 1)


def _sound_alike_digit(tokens: list[Token], j: int, items: list[int]) -> bool:
    """Is tokens[j] ("ate", "for", "to" ...) a digit misheard? Only right after two digits said one
    by one, and before another digit or after at least three: "five five ate nine", "... six ate"
    (not "a new one to oh five")."""
    if tokens[j].norm not in SOUND_ALIKE or not items or items[-1] != j - 1:
        return False
    if not (_single_digit(tokens, j - 1) or tokens[j - 1].norm in SOUND_ALIKE):
        return False
    said = sum(_single_digit(tokens, k) or tokens[k].norm in SOUND_ALIKE for k in items)
    if said >= 2 and j + 1 < len(tokens) and (_single_digit(tokens, j + 1) or tokens[j + 1].norm in SOUND_ALIKE):
        return True
    return said >= 3 and (j + 1 == len(tokens) or not tokens[j + 1].is_word)


def _strong_at(tokens: list[Token], i: int) -> bool:
    return i < len(tokens) and _strong(tokens, i)


def _starts_run(tokens: list[Token], i: int) -> bool:
    t = tokens[i].norm
    if t in ZEROS:  # "oh" is a digit only before other digits: "oh five", "oh oh seven"
        return _strong_at(tokens, i + 1) or (i + 1 < len(tokens) and tokens[i + 1].norm in ZEROS)
    if t == "(":
        return i + 1 < len(tokens) and tokens[i + 1].is_digits
    return _strong(tokens, i)


def _joins(tokens: list[Token], j: int, items: list[int]) -> bool:
    """May tokens[j] sit inside a run without being a digit: "555-0123", "(415)", "hundred and five"."""
    t = tokens[j].norm
    nxt = tokens[j + 1].norm if j + 1 < len(tokens) else ""
    if t == "(" and not items:
        return True
    if not items or not nxt:
        return False
    if t in _CONNECTORS or t == "(":
        return _strong_at(tokens, j + 1) or nxt in ZEROS or nxt == "("
    return t == "and" and tokens[items[-1]].norm in SCALES and _below_100(nxt)


def _below_100(word: str) -> bool:
    return word in UNITS or word in TEENS or word in TENS


def _parse_groups(words: list[str]) -> list[tuple[str, str | None]]:
    """Digit groups and their split readings: ["four", "fifty", "two"] -> [("4", None), ("52", "502")]."""
    out: list[tuple[str, str | None]] = []
    i, n = 0, len(words)
    while i < n:
        w = words[i]
        nxt = words[i + 1] if i + 1 < n else ""
        if w.isdigit():
            out.append((w, None))
            i += 1
        elif w in REPEATS:
            d = str(UNITS[nxt]) if nxt in UNITS else ("0" if nxt in ZEROS else nxt)
            out.append((d * REPEATS[w], None))
            i += 2
        elif w in ZEROS:
            out.append(("0", None))
            i += 1
        elif w in SCALES:  # a bare "hundred" after a run we could not attach it to
            out.append((str(SCALES[w])[1:], None))
            i += 1
        else:
            start = i
            value, i = _read_number(words, i)
            out.append((str(value), _split_reading(words[start:i])))
    return out


def _split_reading(words: list[str]) -> str | None:
    """Each word of a compound number on its own: "fifty four" -> "504", "eight hundred seven" -> "8007"."""
    if len(words) < 2 or "thousand" in words:
        return None
    parts: list[str] = []
    k = 0
    while k < len(words):
        w = words[k]
        if k + 1 < len(words) and words[k + 1] == "hundred":
            parts.append(str(UNITS.get(w, TEENS.get(w, 0))) + "00")
            k += 2
        elif w == "and":
            k += 1
        else:
            parts.append(str(UNITS.get(w, TEENS.get(w, TENS.get(w, 0)))))
            k += 1
    return "".join(parts)


def _read_number(words: list[str], i: int) -> tuple[int, int]:
    """Read one natural number from words[i:]: "one hundred and twelve" -> 112. Returns (value, next i)."""
    n = len(words)
    value = _read_below_100(words, i)
    i = value[1]
    total = value[0]
    while i < n and words[i] in SCALES:
        scale = SCALES[words[i]]
        total *= scale
        i += 1
        if i < n and words[i] == "and":
            i += 1
        if i < n and (words[i] in UNITS or words[i] in TEENS or words[i] in TENS):
            if scale == 1000 and i + 1 < n and words[i + 1] == "hundred":
                part, i = _read_number(words, i)
            else:
                part, i = _read_below_100(words, i)
            total += part
    return total, i


def _read_below_100(words: list[str], i: int) -> tuple[int, int]:
    w = words[i]
    if w in UNITS:
        return UNITS[w], i + 1
    if w in TEENS:
        return TEENS[w], i + 1
    if w in TENS:
        if i + 1 < len(words) and words[i + 1] in UNITS and words[i + 1] != "zero":
            return TENS[w] + UNITS[words[i + 1]], i + 2
        return TENS[w], i + 1
    raise ValueError(f"not a number word: {w!r}")


def read_ordinal(tokens: list[Token], i: int) -> tuple[int, int] | None:
    """Day-of-month at tokens[i]: "third", "twenty first", "3rd", "3", "fifteen". Returns (day, next i)."""
    n = len(tokens)
    if i >= n:
        return None
    t = tokens[i].norm
    if t in ORDINALS:
        return ORDINALS[t], i + 1
    if t in TENS and i + 1 < n and tokens[i + 1].norm in ORDINALS and ORDINALS[tokens[i + 1].norm] < 10:
        return TENS[t] + ORDINALS[tokens[i + 1].norm], i + 2
    if tokens[i].is_digits and len(t) <= 2:
        j = i + 1 if not (i + 1 < n and tokens[i + 1].norm in _ORDINAL_SUFFIXES) else i + 2
        return int(t), j
    if t in UNITS or t in TEENS or t in TENS:
        value, j = _read_below_100([tok.norm for tok in tokens[i : i + 2]], 0)
        return value, i + j
    return None


def luhn_ok(digits: str) -> bool:
    """The payment-card checksum.

    >>> luhn_ok("4111111111111111"), luhn_ok("4111111111111112")
    (True, False)
    """
    total = 0
    for k, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if k % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0
