"""Text normalization shared by the entity catalog and the sampling policy (pure)."""

from __future__ import annotations

import re
import unicodedata


def normalize(text: str) -> str:
    """Lowercase letters, digits and spaces only.

    >>> normalize("Beyoncé's  Halo!")
    'beyonces halo'
    """
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(re.sub(r"[^a-z0-9 ]+", "", folded.lower()).split())
