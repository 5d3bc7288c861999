"""Build the evaluation sets in `data/` (fixed seeds; rerun to reproduce byte for byte).

    python gen_data.py [--presidio DIR] [--snips DIR]

1. `presidio_{dev,test}.jsonl`: presidio-research synth_dataset_v2 turned into ASR style (lowercase, no
   punctuation, digits as spoken words, emails spoken), split by template id so that no sentence pattern
   is in both halves (rare types balanced across the halves). Entity types we do not detect go to `ignore`.
2. `spoken_{dev,test}.jsonl`: templated requests with every spoken form of PHONE, EMAIL, CARD, SSN,
   ADDRESS, DATE_OF_BIRTH and PERSON, plus number-heavy requests with no PII (for precision).
   Name lists are split in two: the test half of each list is never used in the dev set.
3. `media_{dev,test}.jsonl`: Snips requests (music, books, films, restaurants, weather) with artists,
   titles and places in `keep` and the people Snips names (playlist owners, restaurant guests) as PERSON;
   plus templated media requests naming famous people (`keep`) mixed with requests about contacts (PERSON).
   Dev uses Snips' train files, test uses Snips' validate files and a separate list of famous names.

The spoken-number writer here is independent of `pii_spoken` on purpose: the sets must not share its bugs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
from collections.abc import Callable, Iterable
from pathlib import Path

HERE = Path(__file__).parent
SHARED = Path(os.environ.get("EARMARK_SHARED_DATA", HERE.parents[2] / "shared" / "data"))

# ---------------------------------------------------------------- numbers as words

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TEENS = [
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def natural(n: int) -> str:
    """342 -> "three hundred forty two" (American, no "and")."""
    if n < 10:
        return ONES[n]
    if n < 20:
        return TEENS[n - 10]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    if n < 1000:
        return ONES[n // 100] + " hundred" + ("" if n % 100 == 0 else " " + natural(n % 100))
    if n < 1_000_000:
        return natural(n // 1000) + " thousand" + ("" if n % 1000 == 0 else " " + natural(n % 1000))
    return " ".join(ONES[int(d)] for d in str(n))


def digit_words(ds: str, rng: random.Random, *, zero: str | None = None, repeats: bool = False) -> str:
    """Digit by digit; zero said "oh" or "zero"; runs said "double"/"triple" when `repeats`."""
    z = zero or rng.choice(["oh", "zero"])
    out: list[str] = []
    i = 0
    while i < len(ds):
        k = 1
        while i + k < len(ds) and ds[i + k] == ds[i] and k < 3:
            k += 1
        word = z if ds[i] == "0" else ONES[int(ds[i])]
        if repeats and k >= 2:
            out.append(("double " if k == 2 else "triple ") + word)
            i += k
        else:
            out.append(word)
            i += 1
    return " ".join(out)


def pair(ds: str, rng: random.Random) -> str:
    """Two digits the way people group them: "15" fifteen, "05" oh five, "00" double oh."""
    if ds[0] == "0":
        return ("oh " + ONES[int(ds[1])]) if ds[1] != "0" else rng.choice(["double oh", "oh oh", "zero zero"])
    return natural(int(ds))


def grouped(ds: str, rng: random.Random) -> str:
    """Groups of 3 or 4 read as pairs or "four fifty": "4532" -> "forty five thirty two"."""
    if len(ds) == 4 and ds[0] != "0":
        if ds[2:] == "00" and rng.random() < 0.5:
            return natural(int(ds[:2])) + " hundred"
        return pair(ds[:2], rng) + " " + pair(ds[2:], rng)
    if len(ds) == 3 and ds[0] != "0":
        if ds[1:] == "00":
            return ONES[int(ds[0])] + " hundred"
        return ONES[int(ds[0])] + " " + pair(ds[1:], rng)
    return digit_words(ds, rng)


def year(n: int, rng: random.Random) -> str:
    if 2000 <= n <= 2009:
        return "two thousand " + rng.choice(["", "and "]) + ONES[n % 10] if n > 2000 else "two thousand"
    if n % 100 == 0:
        return natural(n // 100) + " hundred"
    return natural(n // 100) + " " + pair(f"{n % 100:02d}", rng)


def say_number(ds: str, rng: random.Random) -> str:
    """A digit string as a speaker would say it, in one of the usual ways for its length."""
    if len(ds) >= 5 or ds[0] == "0":
        return digit_words(ds, rng, repeats=rng.random() < 0.15)
    n = int(ds)
    if len(ds) == 4 and 1900 <= n <= 2099:
        return year(n, rng)
    return rng.choice([natural(n), grouped(ds, rng)]) if len(ds) >= 3 else natural(n)


# ---------------------------------------------------------------- text to ASR style, keeping spans

_PIECE = re.compile(
    r"(?P<email>[\w.+-]+@[\w-]+(?:\.[\w-]+)+)|(?P<num>[0-9]+)|(?P<word>[^\W\d_]+(?:['’][^\W\d_]+)*)"
    r"|(?P<plus>\+(?=\s*[0-9(]))|(?P<amp>&)|(?P<at>@)"
)
Span = tuple[int, int, str]


def _camel(s: str) -> list[str]:
    return [p.lower() for p in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+", s)] or [s.lower()]


def say_email(email: str, rng: random.Random) -> str:
    """ "JonathanPLaursen@fleckens.hu" -> "jonathan p laursen at fleckens dot hu"."""
    local, domain = email.split("@", 1)
    joins = {".": "dot", "_": "underscore", "-": "dash", "+": "plus"}
    words: list[str] = []
    for part in re.split(r"([._+-])", local):
        if part in joins:
            words.append(joins[part])
        elif part:
            for w in _camel(part):
                words.append(say_number(w, rng) if w.isdigit() else w)
    return " ".join(words) + " at " + " dot ".join(domain.lower().split("."))


def to_asr(text: str, spans: Iterable[Span], rng: random.Random) -> tuple[str, list[Span]]:
    """`text` as ASR would write it, with each span moved to the same words in the new text."""
    out: list[str] = []
    pos = 0
    pieces: list[tuple[int, int, int, int]] = []  # original start/end, output start/end
    for m in _PIECE.finditer(text):
        kind, raw = m.lastgroup, m.group()
        if kind == "email":
            said = say_email(raw, rng)
        elif kind == "num":
            said = say_number(raw, rng)
        elif kind == "word":
            said = raw.lower().replace("’", "'")
        else:
            said = {"plus": "plus", "amp": "and", "at": "at"}[kind or "at"]
        if not said:
            continue
        start = pos + (1 if out else 0)
        out.append(said)
        pos = start + len(said)
        pieces.append((m.start(), m.end(), start, pos))
    new = " ".join(out)
    moved: list[Span] = []
    for s, e, t in spans:
        hit = [p for p in pieces if p[0] < e and p[1] > s]
        if hit:
            moved.append((hit[0][2], hit[-1][3], t))
    return new, moved


# ---------------------------------------------------------------- 1. presidio-research synth set

PRESIDIO_TYPES = {"PERSON": "PERSON", "STREET_ADDRESS": "ADDRESS", "PHONE_NUMBER": "PHONE",
                  "EMAIL_ADDRESS": "EMAIL", "CREDIT_CARD": "CARD", "US_SSN": "SSN"}  # fmt: skip


def test_templates(data: list[dict[str, object]]) -> set[int]:
    """Half the template ids, chosen so that each rare type has spans in both halves (greedy balance)."""
    per_type: dict[str, dict[int, int]] = {}
    for rec in data:
        for s in rec["spans"]:  # type: ignore[attr-defined]
            counts = per_type.setdefault(s["entity_type"], {})
            counts[rec["template_id"]] = counts.get(rec["template_id"], 0) + 1  # type: ignore[index]
    test: set[int] = set()
    dev: set[int] = set()
    for kind in ("US_SSN", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD"):
        load = {"test": 0, "dev": 0}
        for tid, n in sorted(per_type[kind].items(), key=lambda x: (-x[1], x[0])):
            if tid in test or tid in dev:
                load["test" if tid in test else "dev"] += n
                continue
            side = "test" if load["test"] <= load["dev"] else "dev"
            (test if side == "test" else dev).add(tid)
            load[side] += n
    rest = sorted({int(r["template_id"]) for r in data} - test - dev)  # type: ignore[call-overload]
    random.Random(7).shuffle(rest)
    need = len(rest) // 2 + (len(dev) - len(test)) // 2
    return test | set(rest[:need])


def presidio_sets(root: Path) -> dict[str, list[dict[str, object]]]:
    data = json.loads((root / "data" / "synth_dataset_v2.json").read_text(encoding="utf-8"))
    test_ids = test_templates(data)
    rng = random.Random(11)
    sets: dict[str, list[dict[str, object]]] = {"presidio_dev": [], "presidio_test": []}
    for rec in data:
        spans = [(s["start_position"], s["end_position"], s["entity_type"]) for s in rec["spans"]]
        text, moved = to_asr(rec["full_text"], spans, rng)
        gold = [_span(s, e, PRESIDIO_TYPES[t]) for s, e, t in moved if t in PRESIDIO_TYPES]
        ignore = [_span(s, e, t) for s, e, t in moved if t not in PRESIDIO_TYPES]
        name = "presidio_test" if rec["template_id"] in test_ids else "presidio_dev"
        sets[name].append({"text": text, "spans": gold, "ignore": ignore,
                           "meta": {"template_id": rec["template_id"]}})  # fmt: skip
    return sets


def _span(s: int, e: int, t: str) -> dict[str, object]:
    return {"start": s, "end": e, "type": t}


# ---------------------------------------------------------------- value pools

FIRST = [
    "james",
    "mary",
    "robert",
    "patricia",
    "john",
    "jennifer",
    "michael",
    "linda",
    "david",
    "elizabeth",
    "william",
    "barbara",
    "richard",
    "susan",
    "joseph",
    "jessica",
    "thomas",
    "sarah",
    "christopher",
    "karen",
    "charles",
    "lisa",
    "daniel",
    "nancy",
    "matthew",
    "betty",
    "anthony",
    "sandra",
    "mark",
    "margaret",
    "donald",
    "ashley",
    "steven",
    "kimberly",
    "paul",
    "emily",
    "andrew",
    "donna",
    "joshua",
    "michelle",
    "kenneth",
    "carol",
    "kevin",
    "amanda",
    "brian",
    "melissa",
    "george",
    "deborah",
    "timothy",
    "stephanie",
    "ronald",
    "rebecca",
    "edward",
    "sharon",
    "jason",
    "laura",
    "jeffrey",
    "cynthia",
    "ryan",
    "amy",
    "jacob",
    "kathleen",
    "gary",
    "angela",
    "nicholas",
    "shirley",
    "eric",
    "brenda",
    "jonathan",
    "emma",
    "stephen",
    "anna",
    "larry",
    "pamela",
    "justin",
    "nicole",
    "scott",
    "samantha",
    "brandon",
    "katherine",
    "benjamin",
    "christine",
    "samuel",
    "helen",
    "gregory",
    "debra",
    "alexander",
    "rachel",
    "frank",
    "carolyn",
    "patrick",
    "janet",
    "raymond",
    "maria",
    "jack",
    "catherine",
    "dennis",
    "heather",
    "jerry",
    "diane",
    "tyler",
    "olivia",
    "aaron",
    "julie",
    "jose",
    "joyce",
    "adam",
    "victoria",
    "nathan",
    "ruby",
    "henry",
    "ella",
    "douglas",
    "kelly",
    "zachary",
    "christina",
    "peter",
    "lauren",
    "kyle",
    "joan",
    "noah",
    "evelyn",
    "ethan",
    "judith",
    "jeremy",
    "megan",
    "walter",
    "andrea",
    "christian",
    "cheryl",
    "keith",
    "hannah",
    "roger",
    "jacqueline",
    "terry",
    "martha",
    "austin",
    "gloria",
    "sean",
    "teresa",
    "gerald",
    "ann",
    "carl",
    "sara",
    "harold",
    "madison",
    "dylan",
    "frances",
    "arthur",
    "kathryn",
    "lawrence",
    "janice",
    "jordan",
    "jean",
    "jesse",
    "abigail",
    "bryan",
    "alice",
    "billy",
    "judy",
    "bruce",
    "sophia",
    "gabriel",
    "grace",
    "joe",
    "denise",
    "logan",
    "amber",
    "albert",
    "doris",
    "willie",
    "marilyn",
    "alan",
    "danielle",
    "eugene",
    "beverly",
    "russell",
    "isabella",
    "vincent",
    "theresa",
    "philip",
    "diana",
    "bobby",
    "natalie",
    "johnny",
    "brittany",
    "liam",
    "mia",
    "aiden",
    "charlotte",
    "jayden",
    "harper",
    "mason",
    "amelia",
    "lucas",
    "ava",
    "elijah",
    "chloe",
    "oliver",
    "zoe",
    "caleb",
    "layla",
    "wyatt",
    "riley",
    "carter",
    "nora",
    "luke",
    "lily",
    "owen",
    "aria",
    "hunter",
    "scarlett",
    "connor",
    "penelope",
]
LAST = [
    "smith",
    "johnson",
    "williams",
    "brown",
    "jones",
    "garcia",
    "miller",
    "davis",
    "rodriguez",
    "martinez",
    "hernandez",
    "lopez",
    "gonzalez",
    "wilson",
    "anderson",
    "thomas",
    "taylor",
    "moore",
    "jackson",
    "martin",
    "lee",
    "perez",
    "thompson",
    "white",
    "harris",
    "sanchez",
    "clark",
    "ramirez",
    "lewis",
    "robinson",
    "walker",
    "young",
    "allen",
    "king",
    "wright",
    "scott",
    "torres",
    "nguyen",
    "hill",
    "flores",
    "green",
    "adams",
    "nelson",
    "baker",
    "hall",
    "rivera",
    "campbell",
    "mitchell",
    "carter",
    "roberts",
    "patel",
    "kim",
    "chen",
    "wang",
    "singh",
    "kowalski",
    "murphy",
    "sullivan",
    "obrien",
    "kelly",
    "price",
    "bennett",
    "wood",
    "barnes",
    "ross",
    "henderson",
    "coleman",
    "jenkins",
    "perry",
    "powell",
    "long",
    "patterson",
    "hughes",
    "washington",
    "butler",
    "simmons",
    "foster",
    "gonzales",
    "bryant",
    "alexander",
    "russell",
    "griffin",
    "diaz",
    "hayes",
    "myers",
    "ford",
    "hamilton",
    "graham",
    "sullivan",
    "wallace",
    "woods",
    "cole",
    "west",
    "jordan",
    "owens",
    "reynolds",
    "fisher",
    "ellis",
    "harrison",
    "gibson",
    "mcdonald",
    "cruz",
    "marshall",
    "ortiz",
    "gomez",
    "murray",
    "freeman",
    "wells",
    "webb",
    "simpson",
    "stevens",
    "tucker",
    "porter",
    "hunter",
    "hicks",
    "crawford",
    "henry",
    "boyd",
    "mason",
    "morales",
    "kennedy",
    "warren",
    "dixon",
    "ramos",
    "reyes",
    "burns",
    "gordon",
    "shaw",
    "holmes",
    "rice",
    "robertson",
    "hunt",
    "black",
    "daniels",
    "palmer",
    "mills",
    "nichols",
    "grant",
    "knight",
    "ferguson",
    "rose",
    "stone",
    "hawkins",
    "dunn",
    "perkins",
    "hudson",
    "spencer",
    "gardner",
    "stephens",
    "payne",
    "pierce",
    "berry",
    "matthews",
    "arnold",
    "wagner",
]
STREETS = [
    "oak",
    "main",
    "maple",
    "pine",
    "cedar",
    "elm",
    "washington",
    "park",
    "lake",
    "hill",
    "sunset",
    "willow",
    "highland",
    "lincoln",
    "jefferson",
    "church",
    "river",
    "spring",
    "meadow",
    "forest",
    "ridge",
    "valley",
    "cherry",
    "walnut",
    "chestnut",
    "jackson",
    "madison",
    "franklin",
    "center",
    "mill",
    "lakeview",
    "hillcrest",
    "fairview",
    "greenwood",
    "woodland",
    "birch",
    "sycamore",
    "magnolia",
    "dogwood",
    "aspen",
    "laurel",
]
STREETS2 = ["martin luther king", "willow creek", "old mill", "green valley", "pleasant hill", "deer run",
            "first", "second", "third", "fifth", "tenth", "forty second", "twenty third"]  # fmt: skip
SUFFIXES = ["street", "st", "avenue", "ave", "road", "rd", "drive", "dr", "lane", "ln", "boulevard", "blvd",
            "court", "way", "place", "circle", "terrace", "parkway"]  # fmt: skip
CITIES = ["springfield", "portland", "denver", "boston", "seattle", "chicago", "austin", "miami", "phoenix"]
MONTH_NAMES = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]
DAY_ORD = """first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth
fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth twenty_first twenty_second
twenty_third twenty_fourth twenty_fifth twenty_sixth twenty_seventh twenty_eighth""".replace("_", " ").split()
DOMAINS = ["gmail dot com", "yahoo dot com", "hotmail dot com", "outlook dot com", "icloud dot com",
           "aol dot com", "example dot com", "acme dot co dot uk", "mail dot harvard dot edu",
           "startup dot io", "comcast dot net", "redcross dot org", "web dot de", "company dot net"]  # fmt: skip


def halves(items: list[str], test: bool) -> list[str]:
    """Every other item: the dev set never sees the test half of a list."""
    return items[1::2] if test else items[0::2]


def presidio_names(root: Path, test: bool) -> tuple[list[str], list[str]]:
    """First and last names from presidio-synth PERSON values of one split (Fake Name Generator names)."""
    data = json.loads((root / "data" / "synth_dataset_v2.json").read_text(encoding="utf-8"))
    test_ids = test_templates(data)
    firsts: set[str] = set()
    lasts: set[str] = set()
    for rec in data:
        if (rec["template_id"] in test_ids) != test:
            continue
        for s in rec["spans"]:
            parts = re.findall(r"[^\W\d_]+", s["entity_value"].lower()) if s["entity_type"] == "PERSON" else []
            if len(parts) >= 2 and len(parts[0]) > 1 and len(parts[-1]) > 1:
                firsts.add(parts[0])
                lasts.add(parts[-1])
    return sorted(firsts), sorted(lasts)


# ---------------------------------------------------------------- 2. spoken-form set

Part = str | tuple[str, str]  # plain text, or (text, TYPE) for gold; TYPE "keep:X" marks a keep span


def compose(parts: list[Part], meta: dict[str, object]) -> dict[str, object]:
    text = ""
    spans: list[dict[str, object]] = []
    keep: list[dict[str, object]] = []
    for part in parts:
        words, kind = (part, None) if isinstance(part, str) else part
        if not words:
            continue
        if text and not words.startswith("'"):
            text += " "
        start = len(text)
        text += words
        if kind and kind.startswith("keep:"):
            keep.append(_span(start, len(text), kind[5:]))
        elif kind:
            spans.append(_span(start, len(text), kind))
    return {"text": text, "spans": spans, "keep": keep, "meta": meta}


class Pools:
    """Names and values one split may draw from."""

    def __init__(self, rng: random.Random, test: bool, presidio: Path) -> None:
        self.rng = rng
        pf, pl = presidio_names(presidio, test)
        self.first_us = halves(FIRST, test)
        self.last_us = halves(LAST, test)
        self.first_intl, self.last_intl = pf, pl

    def first(self) -> str:
        return self.rng.choice(self.first_us if self.rng.random() < 0.6 else self.first_intl)

    def last(self) -> str:
        return self.rng.choice(self.last_us if self.rng.random() < 0.6 else self.last_intl)

    def full(self) -> str:
        return f"{self.first()} {self.last()}"


def phone(rng: random.Random) -> tuple[str, str]:
    """(spoken form, variant name) of a random US or UK number."""
    area = f"{rng.randint(2, 9)}{rng.randint(0, 9)}{rng.randint(0, 9)}"
    ex = f"{rng.randint(2, 9)}{rng.randint(0, 9)}{rng.randint(0, 9)}"
    line = f"{rng.randint(0, 9999):04d}"
    v = rng.choice(["words10", "words7", "repeats", "area_pair", "tollfree", "digits", "dashed", "mixed",
                    "plus1", "plus44", "grouped", "area_code"])  # fmt: skip
    if v == "words10":
        return digit_words(area + ex + line, rng), v
    if v == "words7":
        return digit_words(ex + line, rng), v
    if v == "repeats":
        return digit_words(rng.choice(["555", "444", "800", "211", "333"]) + ex + line, rng, repeats=True), v
    if v == "area_pair":  # "four fifteen ..." for 415
        return (f"{ONES[int(area[0])]} {pair(area[1:], rng)} {digit_words(ex + line, rng)}", v)
    if v == "tollfree":
        lead = rng.choice(["one ", ""])
        mid = rng.choice(["eight hundred", "eight eight eight", "eight seven seven", "eight six six"])
        return f"{lead}{mid} {digit_words(ex + line, rng)}", v
    if v == "digits":
        return rng.choice([f"{area} {ex} {line}", f"{ex} {line}", f"{area}{ex}{line}"]), v
    if v == "dashed":
        return rng.choice([f"{area}-{ex}-{line}", f"({area}) {ex}-{line}", f"{ex}-{line}"]), v
    if v == "mixed":
        return f"{area} {digit_words(ex, rng)} {line}", v
    if v == "plus1":
        return f"plus one {digit_words(area + ex + line, rng)}", v
    if v == "plus44":
        return f"plus four four {digit_words('7' + ex + line[:3] + area[:2], rng)}", v
    if v == "grouped":
        return f"{grouped(area, rng)} {grouped(ex, rng)} {grouped(line, rng)}", v
    return f"{digit_words(area, rng)} {digit_words(ex + line, rng)}", v


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(str(rng.randint(0, 9)) for _ in range(length - len(prefix) - 1))
    total = 0
    for k, ch in enumerate(reversed(body)):
        d = int(ch)
        if k % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return body + str((10 - total % 10) % 10)


def card(rng: random.Random) -> tuple[str, str]:
    brand = rng.choice(["visa", "mastercard", "amex", "discover"])
    num = {
        "visa": lambda: luhn_complete("4", 16, rng),
        "mastercard": lambda: luhn_complete(rng.choice(["51", "53", "55", "2221"]), 16, rng),
        "amex": lambda: luhn_complete(rng.choice(["34", "37"]), 15, rng),
        "discover": lambda: luhn_complete("6011", 16, rng),
    }[brand]()
    groups = [num[i : i + 4] for i in range(0, len(num), 4)] if len(num) == 16 else [num[:4], num[4:10], num[10:]]
    v = rng.choice(["words", "grouped_pairs", "digits", "dashed", "mixed", "repeats"])
    if v == "words":
        return digit_words(num, rng), v
    if v == "grouped_pairs":
        return " ".join(grouped(g, rng) if len(g) == 4 else digit_words(g, rng) for g in groups), v
    if v == "digits":
        return " ".join(groups) if rng.random() < 0.7 else num, v
    if v == "dashed":
        return "-".join(groups), v
    if v == "mixed":
        return " ".join(g if k % 2 else digit_words(g, rng) for k, g in enumerate(groups)), v
    return digit_words(num, rng, repeats=True), v


def ssn(rng: random.Random) -> tuple[str, str]:
    a = rng.choice([n for n in range(1, 900) if n != 666])
    s = f"{a:03d}{rng.randint(1, 99):02d}{rng.randint(1, 9999):04d}"
    v = rng.choice(["words", "digits", "dashed", "grouped", "mixed"])
    if v == "words":
        return digit_words(s, rng, repeats=rng.random() < 0.2), v
    if v == "digits":
        return f"{s[:3]} {s[3:5]} {s[5:]}", v
    if v == "dashed":
        return f"{s[:3]}-{s[3:5]}-{s[5:]}", v
    if v == "grouped":
        return f"{grouped(s[:3], rng)} {pair(s[3:5], rng)} {grouped(s[5:], rng)}", v
    return f"{s[:3]} {digit_words(s[3:], rng)}", v


def email(rng: random.Random, pools: Pools) -> tuple[str, str]:
    f, last = pools.first(), pools.last()
    v = rng.choice(["dot", "space", "initial", "underscore", "digits", "joined", "dash", "written", "mixed"])
    local = {
        "dot": f"{f} dot {last}",
        "space": f"{f} {last}",
        "initial": f"{f[0]} {last}",
        "underscore": f"{f} underscore {last}",
        "digits": f"{f} {last} {natural(rng.randint(1, 99))}",
        "joined": f"{f}{last}",
        "dash": f"{f} dash {last}",
        "written": f"{f}.{last}",
        "mixed": f"{f} dot {last} {ONES[rng.randint(1, 9)]}",
    }[v]
    if v == "written":
        return f"{local}@{rng.choice(['gmail.com', 'example.org', 'yahoo.co.uk'])}", v
    return f"{local} at {rng.choice(DOMAINS)}", v


def address(rng: random.Random) -> tuple[str, str]:
    n = rng.choice([rng.randint(1, 99), rng.randint(100, 999), rng.randint(1000, 9999), rng.randint(10000, 99999)])
    v = rng.choice(["natural", "grouped", "digits", "words"])
    num = {"natural": natural(n), "grouped": grouped(str(n), rng) if n >= 100 else natural(n),
           "digits": str(n), "words": digit_words(str(n), rng)}[v]  # fmt: skip
    street = rng.choice(STREETS) if rng.random() < 0.75 else rng.choice(STREETS2)
    direction = rng.choice(["", "", "", "north ", "west ", "south ", "east "])
    text = f"{num} {direction}{street} {rng.choice(SUFFIXES)}"
    if rng.random() < 0.35:
        unit = rng.choice(["apartment", "apt", "suite", "unit"])
        text += f" {unit} {rng.choice([natural(rng.randint(1, 30)), str(rng.randint(1, 400)), ONES[rng.randint(1, 9)] + ' b'])}"
        v += "+unit"
    return text, v


def date(rng: random.Random) -> tuple[str, str]:
    m = rng.randint(1, 12)
    d = rng.randint(1, 28)
    y = rng.randint(1940, 2012)
    v = rng.choice(["month_ord_year", "ord_of_month", "month_ord", "numeric_slash", "numeric_words",
                    "month_num_year", "digits_ord"])  # fmt: skip
    if v == "month_ord_year":
        return f"{MONTH_NAMES[m - 1]} {DAY_ORD[d - 1]} {year(y, rng)}", v
    if v == "ord_of_month":
        return f"the {DAY_ORD[d - 1]} of {MONTH_NAMES[m - 1]} {year(y, rng)}", v
    if v == "month_ord":
        return f"{MONTH_NAMES[m - 1]} {DAY_ORD[d - 1]}", v
    if v == "numeric_slash":
        return f"{m}/{d}/{y}", v
    if v == "numeric_words":
        return (
            f"{pair(f'{m:02d}', rng) if rng.random() < 0.5 else natural(m)} {natural(d)} {year(y, rng)}",
            v,
        )
    if v == "month_num_year":
        return f"{MONTH_NAMES[m - 1]} {natural(d)} {year(y, rng)}", v
    suffix = "th" if 4 <= d <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(d % 10, "th")
    return f"{MONTH_NAMES[m - 1]} {d}{suffix} {y}", v


def spoken_set(test: bool, presidio: Path, per_type: int = 300) -> list[dict[str, object]]:
    rng = random.Random(2024 + test)
    pools = Pools(rng, test, presidio)
    lines: list[dict[str, object]] = []

    def add(kind: str, make: Callable[[], tuple[list[Part], str]]) -> None:
        for _ in range(per_type):
            parts, variant = make()
            lines.append(compose(parts, {"kind": kind, "variant": variant}))

    def phone_line() -> tuple[list[Part], str]:
        p, v = phone(rng)
        t = rng.randrange(8)
        if t == 0:
            return ["save", (p, "PHONE"), "as", (pools.first(), "PERSON")], v
        return [*rng.choice([["call"], ["my number is"], ["dial"], ["text"], ["my cell is"], ["reach me at"],
                             ["the number is"], []]), (p, "PHONE"),
                *rng.choice([[], ["please"], ["and say i'm late"], ["tomorrow"]])], v  # fmt: skip

    def email_line() -> tuple[list[Part], str]:
        e, v = email(rng, pools)
        return [*rng.choice([["my email is"], ["send it to"], ["email"], ["email me at"], ["my email address is"],
                             ["forward this to"], ["add"], ["it's"], []]), (e, "EMAIL"),
                *rng.choice([[], ["thanks"], ["to the invite"], ["please"]])], v  # fmt: skip

    def card_line() -> tuple[list[Part], str]:
        c, v = card(rng)
        return [*rng.choice([["my card number is"], ["pay with card"], ["use my visa"], ["charge"],
                             ["the card is"], ["card number"], []]), (c, "CARD"),
                *rng.choice([[], ["expiring oh nine twenty six"], ["thanks"], ["security code one two three"]])], v  # fmt: skip

    def ssn_line() -> tuple[list[Part], str]:
        s, v = ssn(rng)
        return [*rng.choice([["my social security number is"], ["ssn"], ["my social is"], ["social security"],
                             ["my ss number is"], ["it's"]]), (s, "SSN")], v  # fmt: skip

    def address_line() -> tuple[list[Part], str]:
        a, v = address(rng)
        return [*rng.choice([["i live at"], ["my address is"], ["ship it to"], ["deliver to"], ["navigate to"],
                             ["send the package to"], []]), (a, "ADDRESS"),
                *rng.choice([[], ["in " + rng.choice(CITIES)], ["please"]])], v  # fmt: skip

    def dob_line() -> tuple[list[Part], str]:
        d, v = date(rng)
        t = rng.randrange(9)
        if t == 0:
            return [(pools.first(), "PERSON"), "'s birthday is", (d, "DATE_OF_BIRTH")], v  # "ann's birthday"
        if t == 1:
            y = rng.randint(1940, 2012)
            return ["i was born in", (year(y, rng), "DATE_OF_BIRTH")], "year_only"
        return [
            rng.choice(
                [
                    "my birthday is",
                    "i was born on",
                    "born",
                    "date of birth",
                    "my date of birth is",
                    "my dob is",
                    "my birthday's on",
                    "i was born",
                ]
            ),
            (d, "DATE_OF_BIRTH"),
        ], v

    def person_line() -> tuple[list[Part], str]:
        name = pools.full() if rng.random() < 0.4 else pools.first()
        other = pools.first()
        v = "full" if " " in name else "first"
        templates: list[list[Part]] = [
            ["call", (name, "PERSON")], ["call", (name, "PERSON"), "on her mobile"], ["text", (name, "PERSON")],
            ["text", (name, "PERSON"), "that i'm running late"], ["my name is", (name, "PERSON")],
            ["tell mom and", (name, "PERSON"), "dinner is ready"], ["remind", (name, "PERSON"), "about the meeting"],
            ["send a message to", (name, "PERSON"), "saying i'll be there soon"], ["facetime", (name, "PERSON")],
            ["read my messages from", (name, "PERSON")], ["schedule lunch with", (name, "PERSON"), "tomorrow"],
            ["what's", (name, "PERSON"), "'s phone number"], ["invite", (name, "PERSON"), "and",
            (other, "PERSON"), "to dinner"], ["ask", (name, "PERSON"), "if she wants pizza"],
            ["email", (name, "PERSON"), "about the report"], ["this is", (name, "PERSON")],
            ["hi", (name, "PERSON"), "it's me"], ["remind me to call", (name, "PERSON"), "at five"],
            ["call my friend", (name, "PERSON")], ["play the voicemail from", (name, "PERSON")],
            [(name, "PERSON"), "is coming over tonight"], ["did", (name, "PERSON"), "call me back"],
        ]  # fmt: skip
        return rng.choice(templates), v

    def negative_line() -> tuple[list[Part], str]:
        n = rng.randint(2, 59)
        return [rng.choice([
            f"set a timer for {natural(n)} minutes", f"wake me up at {ONES[rng.randint(5, 9)]} {natural(n)}",
            f"what's {natural(rng.randint(2, 999))} times {natural(rng.randint(2, 99))}",
            f"play track {natural(rng.randint(1, 20))}", f"remind me on {rng.choice(MONTH_NAMES)} {DAY_ORD[n % 28]} to pay rent",
            f"turn the volume to {natural(rng.randint(1, 11))}", f"convert {natural(rng.randint(1, 5000))} dollars to euros",
            f"how far is it to {rng.choice(STREETS)} {rng.choice(SUFFIXES)}", f"add {ONES[rng.randint(2, 9)]} cups of flour",
            f"what's the weather on {rng.choice(MONTH_NAMES)} {DAY_ORD[n % 28]}",
            f"set an alarm for {ONES[rng.randint(1, 9)]} {pair(f'{n:02d}', rng)} am", "what year was the declaration signed",
            f"how many days until {rng.choice(MONTH_NAMES)} {DAY_ORD[n % 28]}", f"the score was {natural(n)} to {natural(n // 2)}",
            f"room {natural(rng.randint(100, 999))} please", f"order {ONES[rng.randint(2, 9)]} pizzas",
            f"what happened in {year(rng.randint(1900, 2020), rng)}", f"channel {natural(rng.randint(2, 999))}",
            "call an uber", "call mom", "text my wife i'm on my way", "tell me a joke", "ask alexa to dim the lights",
            "will it rain tomorrow", "mark this as read", "grant access to the camera", "may i have the bill please",
        ])], "negative"  # fmt: skip

    for kind, make in [("PHONE", phone_line), ("EMAIL", email_line), ("CARD", card_line), ("SSN", ssn_line),
                       ("ADDRESS", address_line), ("DATE_OF_BIRTH", dob_line), ("PERSON", person_line),
                       ("NONE", negative_line)]:  # fmt: skip
        add(kind, make)
    return lines


# ---------------------------------------------------------------- 3. media / entity set

SNIPS_KEEP = {"artist": "ARTIST", "album": "TITLE", "track": "TITLE", "entity_name": "TITLE",
              "object_name": "TITLE", "movie_name": "TITLE", "city": "PLACE", "state": "PLACE",
              "country": "PLACE", "restaurant_name": "TITLE", "playlist": "TITLE"}  # fmt: skip
_PRONOUN_OWNERS = {"my", "our", "his", "her", "their", "your", "my mother's", "my father's"}
_NOT_NAMES = {"me", "i", "my", "and", "myself", "us", "we"}
# Words in Snips' party descriptions that are not names ("me and my best friend", "my mother in law").
_PARTY_WORDS = set(
    [
        "friend",
        "friends",
        "best",
        "great",
        "grandfather",
        "grandmother",
        "grandma",
        "grandpa",
        "mother",
        "father",
        "mom",
        "mum",
        "dad",
        "in",
        "law",
        "baby",
        "babies",
        "child",
        "children",
        "kid",
        "kids",
        "son",
        "sons",
        "daughter",
        "daughters",
        "wife",
        "husband",
        "boyfriend",
        "girlfriend",
        "family",
        "niece",
        "nieces",
        "nephew",
        "nephews",
        "teen",
        "teens",
        "colleague",
        "colleagues",
        "coworker",
        "coworkers",
        "parents",
        "parent",
        "sister",
        "sisters",
        "brother",
        "brothers",
        "cousin",
        "cousins",
        "partner",
        "boss",
        "aunt",
        "uncle",
        "roommate",
        "roommates",
        "classmates",
        "team",
        "group",
        "guests",
        "people",
        "person",
        "others",
        "other",
        "folks",
        "buddy",
        "buddies",
        "neighbor",
        "neighbors",
        "fiance",
        "fiancee",
        "step",
        "grandchildren",
        "grandkids",
        "granddaughter",
        "grandson",
        "toddler",
        "twins",
        "spouse",
        "gf",
        "bf",
        "grandparents",
        "mommy",
        "daddy",
    ]
)


def _party_names(chunk: str, offset: int) -> list[Span]:
    """Names in a party description: "phyllis ward, vicky and me" -> "phyllis ward", "vicky"."""
    spans: list[Span] = []
    run: list[re.Match[str]] = []
    for m in [*re.finditer(r"[^\W\d_]+", chunk), None]:
        word = m.group().lower() if m else ""
        name = m is not None and word not in _NOT_NAMES and word not in _PARTY_WORDS and word not in ("the", "a")
        joined = bool(run) and m is not None and not chunk[run[-1].end() : m.start()].strip()
        if name and (joined or not run):
            run.append(m)  # type: ignore[arg-type]
            continue
        if run:
            spans.append((offset + run[0].start(), offset + run[-1].end(), "PERSON"))
        run = [m] if name and m is not None else []
    return spans


def snips_lines(root: Path, test: bool) -> list[dict[str, object]]:
    rng = random.Random(31 + test)
    intents = ["PlayMusic", "AddToPlaylist", "SearchCreativeWork", "RateBook", "SearchScreeningEvent",
               "BookRestaurant", "GetWeather"]  # fmt: skip
    lines: list[dict[str, object]] = []
    for intent in intents:
        name = f"validate_{intent}.json" if test else f"train_{intent}.json"
        raw = (root / intent / name).read_bytes()
        text_ = raw.decode("utf-8", "surrogatepass").encode("utf-16", "surrogatepass").decode("utf-16")
        for utt in json.loads(text_)[intent]:
            text = ""
            spans: list[Span] = []
            for chunk in utt["data"]:
                start = len(text)
                text += chunk["text"]
                slot = chunk.get("entity")
                if slot in SNIPS_KEEP:
                    spans.append((start, len(text), "keep:" + SNIPS_KEEP[slot]))
                elif slot == "playlist_owner" and chunk["text"].lower().strip() not in _PRONOUN_OWNERS:
                    owner = chunk["text"].rstrip()
                    end = start + len(owner) - (2 if owner.endswith("'s") else 0)
                    spans.append((start, end, "PERSON"))
                elif slot == "party_size_description":
                    spans += _party_names(chunk["text"], start)
            asr, moved = to_asr(text, spans, rng)
            lines.append({
                "text": asr,
                "spans": [_span(s, e, t) for s, e, t in moved if not t.startswith("keep:")],
                "keep": [_span(s, e, t[5:]) for s, e, t in moved if t.startswith("keep:")],
                "meta": {"source": "snips", "intent": intent},
            })  # fmt: skip
    return lines


FAMOUS_DEV = """ed sheeran|adele|bruno mars|billie eilish|lady gaga|frank sinatra|bob dylan|dolly parton|justin bieber
|harry styles|katy perry|whitney houston|stevie wonder|aretha franklin|billy joel|john lennon|phil collins|tina turner
|jennifer lopez|drake|post malone|norah jones|john mayer|carole king|tom petty|luke bryan|blake shelton|tim mcgraw
|willie nelson|sam smith|olivia rodrigo|lizzo|demi lovato|charlie puth|stephen king|agatha christie|charles dickens
|ernest hemingway|toni morrison|john grisham|james patterson|danielle steel|margaret atwood|john steinbeck
|virginia woolf|leo tolstoy|tom hanks|denzel washington|brad pitt|jennifer aniston|scarlett johansson|emma stone
|sandra bullock|matt damon|keanu reeves|nicole kidman|anne hathaway|robert downey junior|harrison ford
|jennifer lawrence|zendaya|barack obama|abraham lincoln|elon musk|oprah winfrey|michael jordan|tom brady
|marie curie|queen elizabeth|steve jobs|warren buffett|nelson mandela""".replace("\n", "").split("|")
FAMOUS_TEST = """taylor swift|john legend|beyonce|ariana grande|elton john|ella fitzgerald|johnny cash
|kelly clarkson|miley cyrus|selena gomez|shawn mendes|celine dion|mariah carey|michael jackson|ray charles
|bruce springsteen|paul mccartney|george michael|rod stewart|janet jackson|ricky martin|shakira|kanye west
|travis scott|lana del rey|alicia keys|james taylor|neil young|chris stapleton|carrie underwood|kenny chesney
|faith hill|garth brooks|lewis capaldi|doja cat|camila cabello|nick jonas|jason derulo|j k rowling|jane austen
|mark twain|george orwell|maya angelou|dan brown|nora roberts|neil gaiman|harper lee|kurt vonnegut
|emily bronte|meryl streep|julia roberts|leonardo dicaprio|will smith|morgan freeman|ryan gosling
|george clooney|natalie portman|tom cruise|hugh jackman|chris evans|samuel l jackson|margot robbie
|timothee chalamet|joe biden|george washington|bill gates|serena williams|lebron james|albert einstein
|princess diana|mark zuckerberg|kamala harris|martin luther king""".replace("\n", "").split("|")
SONGS = ["shake it off", "all of me", "hello", "yesterday", "imagine", "bad guy", "halo", "thriller", "jolene",
         "hey jude", "let it be", "rolling in the deep", "blinding lights", "someone like you", "purple rain"]  # fmt: skip
BOOKS = ["harry potter", "the shining", "it", "the hobbit", "becoming", "pride and prejudice", "the road",
         "dune", "little women", "emma", "jane eyre", "the firm", "matilda", "carrie", "rebecca"]  # fmt: skip
MOVIES = ["forrest gump", "titanic", "the matrix", "forrest gump", "big", "cast away", "gravity", "speed",
          "annie", "finding nemo", "frozen", "joker", "amelie", "mary poppins", "erin brockovich"]  # fmt: skip


def media_templates(test: bool, presidio: Path, n: int = 600) -> list[dict[str, object]]:
    rng = random.Random(57 + test)
    pools = Pools(rng, test, presidio)
    famous = FAMOUS_TEST if test else FAMOUS_DEV
    lines: list[dict[str, object]] = []
    for k in range(n):
        f = rng.choice(famous)
        c = pools.full() if rng.random() < 0.3 else pools.first()
        fk: Part = (f, "keep:PUBLIC")
        ck: Part = (c, "PERSON")
        media_only: list[list[Part]] = [
            ["play", (rng.choice(SONGS), "keep:TITLE"), "by", fk], ["play songs by", fk], ["who is", fk],
            ["read", (rng.choice(BOOKS), "keep:TITLE")], ["show me movies starring", fk], ["how old is", fk],
            ["tell me about", fk], ["put on some", fk], ["listen to", fk], ["play the latest", fk, "album"],
            ["read", (rng.choice(BOOKS), "keep:TITLE"), "by", fk], ["find books by", fk],
            ["play", (rng.choice(MOVIES), "keep:TITLE")], ["when was", fk, "born"], ["is", fk, "married"],
            ["what's", fk, "'s new song"], ["add", fk, "to my workout playlist"],
            ["shuffle", fk], ["what movies has", fk, "been in"], ["who wrote", (rng.choice(BOOKS), "keep:TITLE")],
        ]  # fmt: skip
        mixed: list[list[Part]] = [
            ["play", fk, "and call", ck], ["text", ck, "that i'm listening to", fk], ["call", ck, "after this song"],
            ["play the voicemail from", ck], ["read my messages from", ck], ["send", ck, "the new", fk, "album"],
            ["tell", ck, "to watch", (rng.choice(MOVIES), "keep:TITLE")], ["call", ck, "on her mobile"],
            ["remind", ck, "that", fk, "is on tonight"], ["share this", fk, "song with", ck],
        ]  # fmt: skip
        parts = rng.choice(media_only if k % 3 else mixed)
        kind = "media" if k % 3 else "mixed"
        lines.append(compose(parts, {"source": "template", "kind": kind, "intent": f"template-{kind}"}))
    return lines


# ---------------------------------------------------------------- main


def write(path: Path, lines: list[dict[str, object]]) -> None:
    path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")
    print(f"{path}: {len(lines)} lines")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--presidio", type=Path, default=SHARED / "presidio-synth")
    ap.add_argument("--snips", type=Path, default=SHARED / "snips-nlu-benchmark" / "2017-06-custom-intent-engines")
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args()
    args.out.mkdir(exist_ok=True)
    for name, lines in presidio_sets(args.presidio).items():
        write(args.out / f"{name}.jsonl", lines)
    for test in (False, True):
        split = "test" if test else "dev"
        write(args.out / f"spoken_{split}.jsonl", spoken_set(test, args.presidio))
        write(args.out / f"media_{split}.jsonl",
              snips_lines(args.snips, test) + media_templates(test, args.presidio))  # fmt: skip


if __name__ == "__main__":
    main()
