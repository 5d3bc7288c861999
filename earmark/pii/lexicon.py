"""Word lists that the PII detector looks names up in; read once from the package's `data/`.

Sources (see `build_lexicons.py`): US Census 1990 first names and surnames (public domain, via the MIT
`names` package) and SCOWL American English size 50 (permissive licence, notice in `earmark/pii/data/NOTICE`).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from functools import cache
from pathlib import Path

_DATA = Path(__file__).with_name("data")

# Frequent given names that are also rare lowercase words ("john", "bobby"): in speech they are names.
_NAME_FIRST = frozenset(
    [
        "john",
        "peter",
        "harry",
        "terry",
        "jimmy",
        "bobby",
        "billy",
        "randy",
        "tony",
        "mike",
        "matt",
        "josh",
        "nick",
        "rick",
        "brad",
        "ken",
        "bob",
        "tom",
        "earl",
        "troy",
        "victor",
        "martin",
        "roger",
        "gene",
        "carol",
        "sally",
        "patsy",
        "dolly",
        "barb",
        "deb",
        "meg",
        "hank",
        "jerry",
        "dick",
        "chuck",
        "sue",
        "pat",
        "lee",
        "jay",
        "don",
        "eddy",
        "rod",
        "rob",
        "ted",
        "jake",
        "charlie",
        "betty",
        "kathy",
        "cathy",
        "tim",
        "dan",
        "sam",
        "al",
        "ben",
        "jim",
        "joe",
        "steve",
        "greg",
        "jeff",
        "larry",
        "gary",
        "jerry",
        "doug",
        "kevin",
        "brian",
        "eric",
    ]
)


@dataclass(frozen=True, slots=True)
class Lexicon:
    """Lowercase word sets: given names, surnames, English words, and the names that are also words."""

    first: frozenset[str]
    last: dict[str, int]  # surname -> census rank (0 = most frequent)
    english: frozenset[str]

    def is_first(self, word: str) -> bool:
        return word in self.first

    def is_last(self, word: str) -> bool:
        return word in self.last

    def is_word(self, word: str) -> bool:
        """A lowercase English word ("grace", "brown"); frequent names ("john") are not words here."""
        return word in self.english and word not in _NAME_FIRST

    def is_plain_first(self, word: str) -> bool:
        """A given name that is not also an English word: "jennifer" yes, "grace" no."""
        return word in self.first and not self.is_word(word)

    def is_plain_last(self, word: str) -> bool:
        return word in self.last and not self.is_word(word)

    def is_common_last(self, word: str, top: int = 1500) -> bool:
        """A surname among the `top` most frequent, even if also a word: "smith", "young", "white"."""
        return self.last.get(word, top) < top


def _read(name: str) -> list[str]:
    return gzip.decompress((_DATA / name).read_bytes()).decode().split()


@cache
def lexicon() -> Lexicon:
    """The lists, loaded on first use (about 40 ms) and shared afterwards."""
    return Lexicon(
        first=frozenset(_read("first_names.txt.gz")),
        last={w: rank for rank, w in enumerate(_read("last_names.txt.gz"))},
        english=frozenset(_read("english_words.txt.gz")),
    )
