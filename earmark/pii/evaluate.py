"""Score `detect_pii` on JSONL sets: precision, recall and F2 per type, plus how much media gets masked.

Input lines: {"text": ..., "spans": [{"start", "end", "type"}], "keep": [...], "ignore": [...]}.
`spans` is the gold PII; `keep` (optional) marks entities that must NOT be masked (artists, authors,
titles); `ignore` (optional) marks text whose PII status the set does not decide (entity types we dropped).

Matching rule (span level, lenient on boundaries, strict on type):
- a gold span counts as found when some predicted span of the SAME type overlaps it by at least one char;
- a predicted span counts as correct when it overlaps some gold span of the same type; predicted spans
  that overlap no gold span but do overlap an `ignore` span are left out of precision (counted apart);
- "masked" is the share of gold characters (letters and digits) covered by a predicted span of ANY type,
  the figure that matters for privacy: a phone number masked as CARD still does not leak;
- "kept wrongly masked" is the share of `keep` spans that any predicted span overlaps.
F2 weights recall twice as much as precision: F2 = 5PR / (4P + R).

    earmark eval pii evals/pii/spoken_test.jsonl [more.jsonl ...] [--json] [--errors 20]
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from earmark.pii import TYPES, PiiSpan, detect_pii

Gold = tuple[int, int, str]


@dataclass
class Tally:
    """Counts for one type: gold spans found/total, predictions correct/total, gold chars masked/total."""

    gold: int = 0
    found: int = 0
    predicted: int = 0
    correct: int = 0
    on_ignored: int = 0
    chars: int = 0
    chars_masked: int = 0

    def figures(self) -> dict[str, float | int | None]:
        p = self.correct / self.predicted if self.predicted else None
        r = self.found / self.gold if self.gold else None
        f2 = 5 * p * r / (4 * p + r) if p is not None and r is not None and (p or r) else None
        masked = self.chars_masked / self.chars if self.chars else None
        return {"gold": self.gold, "predicted": self.predicted, "precision": p, "recall": r, "f2": f2,
                "masked_chars": masked, "pred_on_ignored": self.on_ignored}  # fmt: skip


@dataclass
class Report:
    """Everything one set yields; `errors` holds (kind, text, detail) samples for reading."""

    lines: int = 0
    seconds: float = 0.0
    by_type: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    keep: Counter[str] = field(default_factory=Counter)
    keep_masked: Counter[str] = field(default_factory=Counter)
    errors: list[tuple[str, str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        total = Tally()
        for t in self.by_type.values():
            for name in vars(total):
                setattr(total, name, getattr(total, name) + getattr(t, name))
        kept = {k: {"spans": self.keep[k], "wrongly_masked": self.keep_masked[k] / self.keep[k]} for k in self.keep}
        if self.keep:
            n = sum(self.keep.values())
            kept["ALL"] = {"spans": n, "wrongly_masked": sum(self.keep_masked.values()) / n}
        return {
            "lines": self.lines,
            "utterances_per_second": self.lines / self.seconds if self.seconds else None,
            "types": {t: self.by_type[t].figures() for t in TYPES if t in self.by_type},
            "all": total.figures(),
            "keep": kept,
        }


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _spans(items: Iterable[dict[str, object]]) -> list[Gold]:
    return [(int(s["start"]), int(s["end"]), str(s["type"])) for s in items]  # type: ignore[call-overload]


def score(records: Iterable[dict[str, object]], *, max_errors: int = 0) -> Report:
    """Run the detector over `records` and tally the figures described in the module docstring."""
    report = Report()
    detect_pii("warm up")  # loads the word lists, so that the timing below is per utterance only
    for rec in records:
        text = str(rec["text"])
        gold = _spans(rec.get("spans", []))  # type: ignore[arg-type]
        keep = _spans(rec.get("keep", []))  # type: ignore[arg-type]
        ignore = _spans(rec.get("ignore", []))  # type: ignore[arg-type]
        t0 = time.perf_counter()
        pred = detect_pii(text)
        report.seconds += time.perf_counter() - t0
        report.lines += 1
        _tally(report, text, gold, keep, ignore, pred, max_errors)
    return report


def _tally(
    report: Report, text: str, gold: list[Gold], keep: list[Gold], ignore: list[Gold],
    pred: list[PiiSpan], max_errors: int,
) -> None:  # fmt: skip
    def note(kind: str, detail: str) -> None:
        if len(report.errors) < max_errors:
            report.errors.append((kind, text, detail))

    for s, e, t in gold:
        tally = report.by_type[t]
        tally.gold += 1
        if any(p.type == t and _overlaps((s, e), (p.start, p.end)) for p in pred):
            tally.found += 1
        else:
            got = [f"{p.type}:{p.value!r}" for p in pred if _overlaps((s, e), (p.start, p.end))]
            note("missed", f"{t} {text[s:e]!r} got {got}")
        chars = [k for k in range(s, e) if text[k].isalnum()]
        tally.chars += len(chars)
        tally.chars_masked += sum(any(p.start <= k < p.end for p in pred) for k in chars)
    for p in pred:
        tally = report.by_type[p.type]
        if any(t == p.type and _overlaps((s, e), (p.start, p.end)) for s, e, t in gold):
            tally.predicted += 1
            tally.correct += 1
        elif any(_overlaps((s, e), (p.start, p.end)) for s, e, _ in ignore):
            tally.on_ignored += 1
        else:
            tally.predicted += 1
            note("spurious", f"{p.type} {p.value!r}")
    for s, e, t in keep:
        report.keep[t] += 1
        hit = [p for p in pred if _overlaps((s, e), (p.start, p.end))]
        if hit:
            report.keep_masked[t] += 1
            note("masked-keep", f"{t} {text[s:e]!r} as {[p.type for p in hit]}")


def _fmt(x: object) -> str:
    return "" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)


def table(result: dict[str, object]) -> str:
    """The figures of one set as a Markdown table."""
    cols = ["gold", "predicted", "precision", "recall", "f2", "masked_chars"]
    rows = ["| type | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    types: dict[str, dict[str, object]] = result["types"]  # type: ignore[assignment]
    for name, fig in [*types.items(), ("ALL", result["all"])]:
        rows.append(f"| {name} | " + " | ".join(_fmt(fig[c]) for c in cols) + " |")  # type: ignore[index]
    keep: dict[str, dict[str, float]] = result["keep"]  # type: ignore[assignment]
    if keep:
        rows += ["", "| must not be masked | spans | wrongly masked |", "|---|---|---|"]
        rows += [f"| {k} | {v['spans']} | {v['wrongly_masked']:.3f} |" for k, v in keep.items()]
    rows.append(f"\n{result['lines']} lines, {_fmt(result['utterances_per_second'])} utterances/s")
    return "\n".join(rows)


def breakdown(records: list[dict[str, object]], key: str) -> dict[str, dict[str, object]]:
    """Recall and masked share per type within each value of `meta[key]`."""
    groups: dict[str, list[dict[str, object]]] = defaultdict(list)
    for rec in records:
        meta = rec.get("meta")
        groups[str(meta.get(key, "-")) if isinstance(meta, dict) else "-"].append(rec)
    out: dict[str, dict[str, object]] = {}
    for name in sorted(groups):
        res = score(groups[name]).as_dict()
        out[name] = {t: {"gold": f["gold"], "recall": f["recall"], "masked_chars": f["masked_chars"]}
                     for t, f in res["types"].items() if f["gold"]}  # type: ignore[attr-defined]  # fmt: skip
        keep: dict[str, dict[str, float]] = res["keep"]  # type: ignore[assignment]
        if "ALL" in keep:
            share = keep["ALL"]["wrongly_masked"]
            out[name]["KEEP"] = {"gold": keep["ALL"]["spans"], "recall": None, "wrongly_masked": share}
    return out


def breakdown_table(groups: dict[str, dict[str, object]], key: str) -> str:
    """Per group: recall of each PII type; for `keep` spans (row KEEP), the share wrongly masked."""
    rows = [f"| {key} | type | gold | recall | masked_chars | wrongly masked |", "|---|---|---|---|---|---|"]
    for name, types in groups.items():
        for t, f in types.items():
            f = dict(f)  # type: ignore[call-overload]
            masked = _fmt(f.get("masked_chars"))
            rows.append(f"| {name} | {t} | {f['gold']} | {_fmt(f['recall'])} | {masked} | "
                        f"{_fmt(f.get('wrongly_masked'))} |")  # fmt: skip
    return "\n".join(rows)


def read_jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
