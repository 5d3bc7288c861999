"""Street addresses in tokens of a transcript: "twelve oak street apartment two", "p o box nine",
"rue de rivoli twelve", and whatever follows an address cue ("lives at ...", "my address is ...").
"""

from __future__ import annotations

from earmark.pii.spoken import NUMBER_WORDS, ZEROS, Found, NumberRun, Token

_SUFFIXES = frozenset(
    [
        "street",
        "st",
        "avenue",
        "ave",
        "av",
        "road",
        "rd",
        "boulevard",
        "blvd",
        "lane",
        "ln",
        "drive",
        "dr",
        "court",
        "ct",
        "way",
        "place",
        "pl",
        "terrace",
        "circle",
        "cir",
        "parkway",
        "pkwy",
        "highway",
        "hwy",
        "square",
        "sq",
        "trail",
        "crescent",
        "close",
        "alley",
        "plaza",
        "loop",
        "pike",
        "path",
        "row",
        "grove",
        "mews",
        "expressway",
        "freeway",
        "turnpike",
        "causeway",
    ]
)
_DIRECTIONS = frozenset(
    [
        "north",
        "south",
        "east",
        "west",
        "n",
        "s",
        "e",
        "w",
        "northeast",
        "northwest",
        "southeast",
        "southwest",
        "ne",
        "nw",
        "se",
        "sw",
    ]
)
_UNITS = frozenset(["apartment", "apt", "unit", "suite", "ste", "flat", "floor", "room", "number"])
_NOT_STREET = frozenset(
    [
        "the",
        "a",
        "an",
        "to",
        "at",
        "on",
        "in",
        "of",
        "and",
        "or",
        "is",
        "for",
        "from",
        "by",
        "with",
        "my",
        "your",
        "me",
        "it",
        "this",
        "that",
        "what",
        "when",
        "where",
        "which",
        "minutes",
        "minute",
        "hours",
        "hour",
        "seconds",
        "times",
        "percent",
        "dollars",
        "degrees",
        "am",
        "pm",
        "o'clock",
    ]
)
# A street said before its number, as in most of Europe: "rue de rivoli twelve", "hammarvagen fifteen".
_STREET_WORDS = frozenset(
    [
        "rue",
        "rua",
        "via",
        "calle",
        "avenida",
        "carrer",
        "ulica",
        "ul",
        "strada",
        "viale",
        "piazza",
        "plac",
        "aleja",
    ]
)
_STREET_ENDINGS = (
    "strasse",
    "straße",
    "gasse",
    "weg",
    "vej",
    "vägen",
    "vagen",
    "gatan",
    "gade",
    "laan",
    "straat",
    "katu",
    "kuja",
    "veien",
    "gata",
    "utca",
    "allee",
    "platz",
    "stræde",
    "plein",
)


def find_addresses(tokens: list[Token], runs: list[NumberRun]) -> list[Found]:
    """A house number and a street, a unit or P.O. box, or the words after an address cue."""
    found: list[Found] = []
    for run in runs:
        if len(run.digits) > 12:
            continue
        j = run.start
        before = tokens[j - 1].norm if j else ""
        if before in ("apartment", "apt", "suite", "box"):  # "apartment two", "p o box twelve"
            first = j - 1
            if before == "box" and j >= 2 and tokens[j - 2].norm in ("po", "o", "office"):
                first = j - 3 if j >= 3 and tokens[j - 3].norm in ("p", "post") else j - 2
            found.append((tokens[first].start, tokens[run.end - 1].end, "ADDRESS"))
            continue
        street = street_end(tokens, run.end)
        if street is not None:
            found.append((tokens[run.start].start, tokens[street - 1].end, "ADDRESS"))
            continue
        for back in range(run.start - 1, max(run.start - 5, -1), -1):  # a street name before its number
            word = tokens[back].norm
            if not tokens[back].is_word or word in _NOT_STREET:
                break
            if word in _STREET_WORDS or word.endswith(_STREET_ENDINGS):
                found.append((tokens[back].start, tokens[_unit_end(tokens, run.end) - 1].end, "ADDRESS"))
                break
    return found + _cued_addresses(tokens, runs)


def street_end(tokens: list[Token], i: int) -> int | None:
    """End token of "oak street apartment two" starting at i (just after a house number), or None."""
    n = len(tokens)
    j = i
    while j < n and j < i + 5 and tokens[j].is_word and tokens[j].norm not in _NOT_STREET:
        if tokens[j].norm in _SUFFIXES and j > i:
            j += 1
            if j < n and tokens[j].norm in _DIRECTIONS:
                j += 1
            return _unit_end(tokens, j)
        j += 1
    return None


def _unit_end(tokens: list[Token], j: int) -> int:
    """End of an optional "apartment two" / "suite 4b" at tokens[j]."""
    n = len(tokens)
    if j + 1 < n and tokens[j].norm in _UNITS:
        k = j + 1
        while k < n and k < j + 5 and (_numeric(tokens[k]) or (k == j + 1 and len(tokens[k].norm) == 1)):
            k += 1
        if k > j + 1:
            return k
    return j


def _numeric(token: Token) -> bool:
    return token.is_digits or token.norm in NUMBER_WORDS or token.norm in ZEROS


_ADDRESS_CUES = (
    ("address", "is"), ("address",), ("lives", "at"), ("live", "at"), ("living", "at"), ("located", "at"),
    ("moved", "to"), ("sent", "to"), ("send", "it", "to"), ("ship", "it", "to"), ("ship", "to"),
    ("deliver", "to"), ("deliver", "it", "to"), ("delivered", "to"), ("return", "to"), ("corner", "of"),
    ("address", "with"), ("is", "at"),
)  # fmt: skip
_ADDRESS_STOP = frozenset(
    [
        "at",  # "send it to louis reynolds eighty one at example dot com" is an email, not an address
        "dot",
        "please",
        "for",
        "if",
        "so",
        "can",
        "could",
        "would",
        "will",
        "i",
        "we",
        "you",
        "he",
        "she",
        "they",
        "thanks",
        "thank",
        "last",
        "in",
        "case",
        "today",
        "tonight",
        "tomorrow",
        "asap",
        "when",
        "because",
        "but",
        "then",
        "is",
        "was",
        "are",
        "his",
        "her",
        "my",
        "your",
        "their",
        "our",
        "who",
        "which",
        "that",
        "this",
    ]
)


_ADDRESS_CUE_STARTS = frozenset(c[0] for c in _ADDRESS_CUES)


def _cued_addresses(tokens: list[Token], runs: list[NumberRun]) -> list[Found]:
    """ "lives at seven two one coronilla thirty five nijmegen": a street said after an address cue, in any
    country's order, up to the next function word (at most 16 tokens)."""
    numeric = {k for r in runs for k in range(r.start, r.end)}
    norms = [t.norm for t in tokens]
    found: list[Found] = []
    for k in range(len(tokens)):
        if norms[k] not in _ADDRESS_CUE_STARTS:
            continue
        cue = next((c for c in _ADDRESS_CUES if tuple(norms[k : k + len(c)]) == c), None)
        if cue is None:
            continue
        start = k + len(cue)
        while start < len(tokens) and norms[start] in ("the", "corner", "of", "is", "a", "new"):
            start += 1
        near = range(start, min(start + 3, len(tokens)))
        if not any(j in numeric for j in near) and not any(
            norms[j] in _SUFFIXES or norms[j] in _STREET_WORDS for j in range(start, min(start + 5, len(tokens)))
        ):
            continue
        end = start
        corner = "corner" in cue
        while end < len(tokens) and end < start + 16:
            t = norms[end]
            if t in _ADDRESS_STOP or not (tokens[end].is_word or tokens[end].is_digits) or (t == "and" and not corner):
                break
            end += 1
        if end > start and any(j in numeric for j in range(start, end)):
            found.append((tokens[start].start, tokens[end - 1].end, "ADDRESS"))
    return found
