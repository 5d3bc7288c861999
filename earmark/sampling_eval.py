"""Does priority sampling pay? A simulation on the Snips NLU benchmark (docs/sampling-eval.md).

Traffic is the benchmark's `train_<I>_full.json` files (13,784 utterances, 7 intents), shuffled per
seed. Before the first round a bootstrap set, the first `seed_per_intent` utterances of each intent
in the shuffled traffic, is labelled; it counts as heard. Then, each round:

1. the current classifier (trained on everything heard so far) plays the device model: it gives
   every utterance nobody has heard yet a confidence;
2. the policy picks `budget` of them: `uniform` at random; `priority` spends `priority_share` of
   the budget on the least confident ones (smallest margin between the two likeliest intents) and
   the rest at random, as production keeps a uniform share so that metrics stay unbiased;
3. review reveals their gold intents, the classifier is retrained on everything heard and scored
   on the benchmark's test set (`validate_<I>.json`, 700 utterances).

Classifier: TF-IDF of word 1-2-grams and character 2-5-grams (fitted once on the traffic text,
which needs no label) feeding a linear model trained by SGD on the log loss.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer  # type: ignore[import-untyped]
from sklearn.linear_model import SGDClassifier  # type: ignore[import-untyped]
from sklearn.pipeline import FeatureUnion  # type: ignore[import-untyped]

from earmark.errors import InvalidInput

Policy = Literal["uniform", "priority"]
Split = Literal["full", "train", "validate"]
POLICIES: tuple[Policy, ...] = ("uniform", "priority")


@dataclass(frozen=True, slots=True)
class Slot:
    """A slot span in characters of its utterance, half-open.

    >>> Slot(5, 20, "album")
    Slot(start=5, end=20, entity='album')
    """

    start: int
    end: int
    entity: str


@dataclass(frozen=True, slots=True)
class Utterance:
    text: str
    intent: str
    slots: tuple[Slot, ...] = ()


@dataclass(frozen=True, slots=True)
class Point:
    """State after a round: utterances heard so far, test accuracy, mean max probability of the picks."""

    heard: int
    accuracy: float
    pick_confidence: float | None  # None for the bootstrap set, which no model picked


def _file_name(intent: str, split: Split) -> str:
    return f"train_{intent}_full.json" if split == "full" else f"{split}_{intent}.json"


def _read_utterances(path: Path, intent: str) -> list[Utterance]:
    # Snips stored a few emoji as CESU-8 surrogate pairs; the round trip through UTF-16 joins them
    # and leaves plain UTF-8 unchanged.
    try:
        raw = path.read_bytes().decode("utf-8", "surrogatepass")
        out = []
        for record in json.loads(raw.encode("utf-16", "surrogatepass").decode("utf-16"))[intent]:
            text, slots = "", []
            for chunk in record["data"]:
                if "entity" in chunk:
                    slots.append(Slot(len(text), len(text) + len(chunk["text"]), str(chunk["entity"])))
                text += chunk["text"]
            out.append(Utterance(text, intent, tuple(slots)))
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(
            f'{path} is not Snips JSON ({{"{intent}": [{{"data": [{{"text": ...}}]}}]}}): {exc!r}', field="path"
        ) from exc
    return out


def load_snips(path: Path, split: Split = "full", *, intents: Sequence[str] | None = None) -> list[Utterance]:
    """Utterances of one split of the 2017-06 custom-intent-engines folder, intents in name order."""
    if not path.is_dir():
        raise InvalidInput(f"{path} is not a folder; give the Snips 2017-06-custom-intent-engines folder", field="path")
    found = sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    wanted = list(intents) if intents is not None else found
    if not wanted:
        raise InvalidInput(f"{path} holds no intent folder (such as PlayMusic/)", field="path")
    out: list[Utterance] = []
    for intent in wanted:
        file = path / intent / _file_name(intent, split)
        if not file.is_file():
            raise InvalidInput(f"missing {file}: each intent folder needs {_file_name(intent, split)}", field="path")
        out += _read_utterances(file, intent)
    return out


@dataclass(frozen=True, slots=True)
class _Features:
    x: sparse.csr_matrix
    y: np.ndarray
    x_test: sparse.csr_matrix
    y_test: np.ndarray


def _featurize(traffic: Sequence[Utterance], test: Sequence[Utterance]) -> _Features:
    if len({u.intent for u in traffic}) < 2:
        raise InvalidInput("a classifier needs traffic of at least 2 intents", field="traffic")
    vectorizer = FeatureUnion(
        [
            ("word", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)),
            ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2)),
        ]
    )
    x = vectorizer.fit_transform([u.text for u in traffic]).tocsr()
    x_test = vectorizer.transform([u.text for u in test]).tocsr()
    return _Features(x, np.array([u.intent for u in traffic]), x_test, np.array([u.intent for u in test]))


def _fit(f: _Features, rows: np.ndarray, seed: int) -> SGDClassifier:
    return SGDClassifier(loss="log_loss", alpha=1e-5, random_state=seed).fit(f.x[rows], f.y[rows])


def _accuracy(model: SGDClassifier, f: _Features) -> float:
    return float(np.mean(model.predict(f.x_test) == f.y_test))


@dataclass(frozen=True, slots=True)
class Params:
    """Simulation settings (validated); the defaults are those reported in docs/sampling-eval.md."""

    seeds: int = 5
    rounds: int = 30
    budget: int = 100
    priority_share: float = 0.7
    seed_per_intent: int = 5

    def __post_init__(self) -> None:
        for name in ("seeds", "rounds", "budget", "seed_per_intent"):
            if getattr(self, name) < 1:
                raise InvalidInput(f"must be at least 1, got {getattr(self, name)}", field=name)
        if not 0.0 <= self.priority_share <= 1.0:
            raise InvalidInput(f"must be within [0, 1], got {self.priority_share}", field="priority_share")


def _simulate(f: _Features, *, policy: Policy, seed: int, params: Params) -> list[Point]:
    if policy not in POLICIES:
        raise InvalidInput(f"unknown policy {policy!r}; choose one of {', '.join(POLICIES)}", field="policy")
    rng = np.random.default_rng(seed)
    # Traffic order and bootstrap set depend on the seed only, so the two policies' curves are paired.
    taken: Counter[str] = Counter()
    heard: list[int] = []
    for i in rng.permutation(len(f.y)):
        if taken[f.y[i]] < params.seed_per_intent:
            taken[f.y[i]] += 1
            heard.append(int(i))
    unheard = np.ones(len(f.y), dtype=bool)
    unheard[heard] = False
    model = _fit(f, np.array(heard), seed)
    points = [Point(len(heard), _accuracy(model, f), None)]
    for _ in range(params.rounds):
        pool = np.flatnonzero(unheard)
        if pool.size == 0:
            break
        proba = np.sort(model.predict_proba(f.x[pool]), axis=1)
        k = min(params.budget, pool.size)
        n_priority = round(k * params.priority_share) if policy == "priority" else 0
        least_sure = np.argsort(proba[:, -1] - proba[:, -2], kind="stable")[:n_priority]
        rest = np.setdiff1d(np.arange(pool.size), least_sure)
        picks = np.concatenate([least_sure, rng.choice(rest, size=k - n_priority, replace=False)])
        unheard[pool[picks]] = False
        heard += pool[picks].tolist()
        model = _fit(f, np.array(heard), seed)
        points.append(Point(len(heard), _accuracy(model, f), float(proba[picks, -1].mean())))
    return points


def simulate(
    traffic: Sequence[Utterance],
    test: Sequence[Utterance],
    *,
    policy: Policy,
    seed: int,
    rounds: int = 30,
    budget: int = 100,
    priority_share: float = 0.7,
    seed_per_intent: int = 5,
) -> list[Point]:
    """Accuracy on `test` after the bootstrap set and after each round of reviewing `budget` utterances."""
    params = Params(1, rounds, budget, priority_share, seed_per_intent)
    return _simulate(_featurize(traffic, test), policy=policy, seed=seed, params=params)


@dataclass(frozen=True, slots=True)
class Curve:
    """Accuracy of one policy over seeds at each heard count."""

    heard: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]

    def heard_to_reach(self, level: float) -> int | None:
        """The first heard count where the mean accuracy is at least `level`, or None."""
        return next((h for h, m in zip(self.heard, self.mean, strict=True) if m >= level), None)


def _mean(values: Sequence[int | None]) -> float | None:
    return None if None in values else float(np.mean(np.array(values, dtype=float)))


@dataclass(frozen=True, slots=True)
class Headline:
    """How many heard utterances priority needs to match what uniform reaches with its whole budget.

    Per seed, the target is that seed's final uniform accuracy; `first` is where priority first
    reaches it, `sustained` where it reaches it and never falls below again (None: never).
    """

    uniform_heard: int
    uniform_final: float
    first: tuple[int | None, ...]
    sustained: tuple[int | None, ...]

    @property
    def priority_heard(self) -> float | None:
        """Mean of `first` over seeds; None unless every seed reached the target."""
        return _mean(self.first)

    @property
    def ratio(self) -> float | None:
        return None if self.priority_heard is None else self.priority_heard / self.uniform_heard

    @property
    def sustained_ratio(self) -> float | None:
        mean = _mean(self.sustained)
        return None if mean is None else mean / self.uniform_heard

    @property
    def target_met(self) -> bool:
        """The issue's target: priority matches uniform with at most a third of the heard utterances."""
        return self.ratio is not None and self.ratio <= 1 / 3


@dataclass(frozen=True)
class Result:
    params: Params
    runs: dict[str, list[list[Point]]]  # policy -> one list of points per seed
    all_traffic: tuple[float, ...] = ()  # per seed, accuracy with every traffic utterance heard

    def curve(self, policy: Policy) -> Curve:
        acc = np.array([[p.accuracy for p in run] for run in self.runs[policy]])
        heard = tuple(p.heard for p in self.runs[policy][0])
        return Curve(heard, *(tuple(map(float, a)) for a in (acc.mean(0), acc.std(0), acc.min(0), acc.max(0))))

    def headline(self) -> Headline:
        first: list[int | None] = []
        sustained: list[int | None] = []
        for uniform, priority in zip(self.runs["uniform"], self.runs["priority"], strict=True):
            target = uniform[-1].accuracy
            first.append(next((p.heard for p in priority if p.accuracy >= target), None))
            after = max((i + 1 for i, p in enumerate(priority) if p.accuracy < target), default=0)
            sustained.append(priority[after].heard if after < len(priority) else None)
        final = float(np.mean([run[-1].accuracy for run in self.runs["uniform"]]))
        return Headline(self.runs["uniform"][0][-1].heard, final, tuple(first), tuple(sustained))

    def to_dict(self) -> dict[str, Any]:
        h = self.headline()
        derived = {k: getattr(h, k) for k in ("priority_heard", "ratio", "sustained_ratio", "target_met")}
        return {
            "params": asdict(self.params),
            "all_traffic_accuracy": list(self.all_traffic),
            "curves": {policy: asdict(self.curve(policy)) for policy in POLICIES},
            "runs": {policy: [[asdict(p) for p in run] for run in runs] for policy, runs in self.runs.items()},
            "headline": asdict(h) | derived,
        }


def run(path: Path, params: Params | None = None) -> Result:
    """Both policies on seeds 0..seeds-1 over the Snips folder at `path` (under a minute with the defaults)."""
    params = params or Params()
    traffic, test = load_snips(path, "full"), load_snips(path, "validate")
    f = _featurize(traffic, test)
    runs: dict[str, list[list[Point]]] = {
        p: [_simulate(f, policy=p, seed=s, params=params) for s in range(params.seeds)] for p in POLICIES
    }
    everything = np.arange(len(traffic))
    return Result(params, runs, tuple(_accuracy(_fit(f, everything, s), f) for s in range(params.seeds)))


LEVELS = (0.95, 0.96, 0.97, 0.975, 0.98)


def _fmt(value: float | None, spec: str) -> str:
    return "never" if value is None else format(value, spec)


def format_table(result: Result) -> str:
    """Mean accuracy (± std, [min-max] over seeds) per heard count for both policies, then the headline."""
    u, p = result.curve("uniform"), result.curve("priority")
    lines = [f"{'heard':>6}  {'uniform':<32}{'priority':<32}"]
    for i, heard in enumerate(u.heard):
        cells = [f"{c.mean[i]:.4f} ± {c.std[i]:.4f} [{c.low[i]:.3f}-{c.high[i]:.3f}]" for c in (u, p)]
        lines.append(f"{heard:>6}  {cells[0]:<32}{cells[1]:<32}")
    lines += ["", "heard to reach a mean accuracy:  level  uniform  priority"]
    for level in LEVELS:
        pair = (_fmt(c.heard_to_reach(level), "d") for c in (u, p))
        lines.append(f"{'':33}{level:.3f}  {next(pair):>7}  {next(pair):>8}")
    h = result.headline()
    if result.all_traffic:
        lines += [
            "",
            f"with every traffic utterance heard: {np.mean(result.all_traffic):.4f} (the classifier's ceiling)",
        ]
    lines += [
        "",
        f"uniform: {h.uniform_final:.4f} after {h.uniform_heard} heard (mean over {len(h.first)} seeds)",
        f"priority first reaches each seed's uniform final after {_fmt(h.priority_heard, '.0f')} heard (per seed: "
        f"{', '.join(_fmt(v, 'd') for v in h.first)}); stays at or above it from "
        f"{', '.join(_fmt(v, 'd') for v in h.sustained)}",
        f"heard_priority / heard_uniform = {_fmt(h.ratio, '.3f')} (sustained: {_fmt(h.sustained_ratio, '.3f')});"
        f" target <= 1/3: {'met' if h.target_met else 'not met'}",
    ]
    return "\n".join(lines)


def _ticks(low: float, high: float, count: int = 6) -> list[float]:
    raw = (high - low) / count
    step = min((m * 10 ** math.floor(math.log10(raw)) for m in (1, 2, 5, 10)), key=lambda s: abs(s - raw))
    first = math.ceil(low / step - 1e-9) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def render_svg(result: Result, *, width: int = 720, height: int = 440) -> str:
    """The accuracy-vs-heard chart: mean line and min-max band per policy, uniform's final level dashed.

    The y axis starts just below the lowest accuracy seen after a tenth of the budget; the first
    rounds' steep rise is clipped rather than squashing the part where the policies differ.
    """
    left, right, top, bottom = 64, 20, 36, 52
    curves = {policy: result.curve(policy) for policy in POLICIES}
    x_max = max(max(c.heard) for c in curves.values())
    late = [lo for c in curves.values() for h, lo in zip(c.heard, c.low, strict=True) if h >= x_max / 10]
    y_min = math.floor(min(late) * 50 - 1) / 50
    y_max = min(1.0, math.ceil(max(max(c.high) for c in curves.values()) * 50 + 0.5) / 50)

    def sx(v: float) -> float:
        return left + v / x_max * (width - left - right)

    def sy(v: float) -> float:
        return top + (y_max - v) / (y_max - y_min) * (height - top - bottom)

    colors = {"uniform": "#1f77b4", "priority": "#d62728"}
    h = result.headline()
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        ' font-family="sans-serif" font-size="12">',
        f'<clipPath id="plot"><rect x="{left}" y="{top}" width="{width - left - right}"'
        f' height="{height - top - bottom}"/></clipPath>',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">Intent accuracy on the Snips test set'
        f" vs utterances heard (mean, min-max over {len(h.first)} seeds)</text>",
    ]
    for t in _ticks(0, x_max):
        out.append(f'<line x1="{sx(t):.1f}" y1="{top}" x2="{sx(t):.1f}" y2="{height - bottom}" stroke="#eee"/>')
        out.append(f'<text x="{sx(t):.1f}" y="{height - bottom + 16}" text-anchor="middle">{t:.0f}</text>')
    for t in _ticks(y_min, y_max):
        out.append(f'<line x1="{left}" y1="{sy(t):.1f}" x2="{width - right}" y2="{sy(t):.1f}" stroke="#eee"/>')
        out.append(f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" text-anchor="end">{t:.2f}</text>')
    out += [
        f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}"'
        ' fill="none" stroke="#444"/>',
        f'<text x="{(left + width - right) / 2}" y="{height - 12}" text-anchor="middle">utterances heard by people'
        "</text>",
        f'<text transform="translate(16 {(top + height - bottom) / 2}) rotate(-90)" text-anchor="middle">'
        "accuracy</text>",
        f'<text x="{left}" y="{height - 12}" fill="#777" font-size="10">below {y_min:.2f}: cut off</text>',
        f'<line x1="{left}" y1="{sy(h.uniform_final):.1f}" x2="{width - right}" y2="{sy(h.uniform_final):.1f}"'
        ' stroke="#555" stroke-dasharray="5 4" clip-path="url(#plot)"/>',
    ]
    for policy, c in curves.items():
        band = [(sx(x), sy(v)) for x, v in zip(c.heard, c.high, strict=True)]
        band += [(sx(x), sy(v)) for x, v in reversed(list(zip(c.heard, c.low, strict=True)))]
        line = [(sx(x), sy(v)) for x, v in zip(c.heard, c.mean, strict=True)]
        out += [
            f'<g class="series" id="{policy}" clip-path="url(#plot)">',
            f'<polygon points="{_pts(band)}" fill="{colors[policy]}" fill-opacity="0.18" stroke="none"/>',
            f'<polyline points="{_pts(line)}" fill="none" stroke="{colors[policy]}" stroke-width="2"/>',
            "</g>",
        ]
    legend = [
        (colors["uniform"], "", "uniform"),
        (colors["priority"], "", f"priority ({result.params.priority_share:.0%} least confident, rest uniform)"),
        ("#555", ' stroke-dasharray="5 4"', f"uniform final {h.uniform_final:.4f}"),
    ]
    for i, (color, dash, label) in enumerate(legend):
        y = height - bottom - 44 + i * 18
        out.append(
            f'<line x1="{width - 330}" y1="{y}" x2="{width - 306}" y2="{y}" stroke="{color}" stroke-width="2"{dash}/>'
        )
        out.append(f'<text x="{width - 300}" y="{y + 4}">{label}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _pts(points: list[tuple[float, float]]) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
