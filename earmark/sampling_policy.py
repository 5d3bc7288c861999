"""The sampling policy and the draw it defines, computable without the database.

The same pure functions decide in `earmark sample` (over the clips in the database) and in
`earmark sample-stream` / `draw_record` (over metadata in the assistant's own stream processing,
so that only drawn clips ever reach earmark). A draw depends on nothing but the key, the policy
and the clip's own metadata:

- a household is in the panel for a period when HMAC(key, account|period) < `panel_rate`;
- a clip of a panel household is drawn when HMAC(key, clip id) < its inclusion probability
  `pi = min(1, r * (uniform + priority * score / mean_score))`, where `r` is the clip's stratum
  rate and `score` in [0, 1] says how much a person would help (low device confidence, competing
  hypotheses, a rare intent, an entity the catalog lacks). Every clip keeps at least
  `r * uniform`, so metrics weighted by 1 / (panel_rate * pi) stay unbiased;
- a household contributes at most `cap_per_account` clips per period (first come, first kept).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import jiwer
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from earmark.errors import InvalidInput
from earmark.manifest import ClipMeta, Id, Locale, describe_validation_error, load_json_text
from earmark.textnorm import normalize

WAKE_WORD_REASON = "wake_word"  # drawn among accidental activations, for the wake-word team only
STRATA = ("intent", "device_type", "locale")  # a clip takes the rate of the first stratum that lists it
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Rate = Field(gt=0.0, le=1.0)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, data: Any) -> Any:
        # TOML's true read as 1: `cap_per_account = true` became a cap of 1, a rate of true 100%.
        if isinstance(data, dict):
            for name, spec in cls.model_fields.items():
                if isinstance(data.get(name), bool) and spec.annotation is not bool:
                    raise ValueError(f"{name}: {str(data[name]).lower()} is not a number")
        return data


class Budget(_Strict):
    """How the drawn clips divide between uniform and priority sampling (shares summing to 1)."""

    uniform: float = Field(1.0, ge=0.0, le=1.0)
    priority: float = Field(0.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _sums_to_one(self) -> Budget:
        if abs(self.uniform + self.priority - 1.0) > 1e-9:
            raise ValueError(f"uniform ({self.uniform}) + priority ({self.priority}) must sum to 1")
        if self.uniform <= 0.0:
            raise ValueError("uniform must be above 0: without a uniform share, error metrics are biased")
        return self


class Exclusions(_Strict):
    """Clips never drawn. Accounts without human-review consent are always excluded."""

    child_profiles: bool = True
    accidental_activations: bool = True
    min_wake_score: float = Field(0.5, ge=0.0, le=1.0)  # below: counted as an accidental activation


class Priority(_Strict):
    """When a person helps most. Each criterion gives a score in [0, 1]; a clip's score is the highest."""

    mean_score: float = Field(0.25, gt=0.0, le=1.0)  # the traffic's mean score; the dry run measures it
    asr_confidence_below: float | None = Field(0.7, ge=0.0, le=1.0)
    nlu_confidence_below: float | None = Field(0.7, ge=0.0, le=1.0)
    hypothesis_disagreement: bool = True  # device ASR n-best alternatives differ from the top hypothesis
    rare_intents: list[str] = Field(default_factory=list)
    missing_entities: bool = True  # a device NLU slot value the entity catalog does not know


class SamplingPolicy(_Strict):
    """A sampling policy, as read from a TOML or YAML file (see docs/sampling.md).

    >>> SamplingPolicy(rate=0.5).base_rate({"locale": "en-US"})
    0.5
    """

    rate: float = Rate
    period_days: int = Field(30, gt=0, le=366)
    cap_per_account: int = Field(5, ge=0)
    panel_rate: float = Field(1.0, gt=0.0, le=1.0)
    budget: Budget = Budget()
    strata: dict[Literal["intent", "device_type", "locale"], dict[str, float]] = Field(default_factory=dict)
    exclude: Exclusions = Exclusions()
    priority: Priority = Priority()
    # Share of the accidental activations (excluded above) drawn for the wake-word team instead: they
    # reach only that team (`no_speech_route = "wakeword"`), never general review. 0: none.
    wake_word_rate: float = Field(0.0, ge=0.0, le=1.0)

    @field_validator("strata", mode="before")
    @classmethod
    def _stratum_rates_are_numbers(cls, v: Any) -> Any:
        if isinstance(v, dict):
            for dim, rates in v.items():
                for name, r in rates.items() if isinstance(rates, dict) else ():
                    if isinstance(r, bool):
                        raise ValueError(f"{dim}.{name}: rate must be a number in (0, 1], got {str(r).lower()}")
        return v

    @field_validator("strata")
    @classmethod
    def _stratum_rates(cls, v: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for dim, rates in v.items():
            for name, r in rates.items():
                if not isinstance(r, int | float) or not 0.0 < r <= 1.0:
                    raise ValueError(f"{dim}.{name}: rate must be a number in (0, 1], got {r!r}")
        return v

    @classmethod
    def uniform(cls, rate: float, *, cap: int, period_days: int) -> SamplingPolicy:
        return cls(rate=rate, cap_per_account=cap, period_days=period_days)

    def _match(self, rec: Mapping[str, Any]) -> tuple[str, Any] | None:
        """The first stratum (in STRATA order) that lists the clip's value, as (dimension, value)."""
        for dim in STRATA:
            value = rec.get(dim)
            if value is not None and value in self.strata.get(dim, {}):  # type: ignore[call-overload]
                return dim, value
        return None

    def base_rate(self, rec: Mapping[str, Any]) -> float:
        found = self._match(rec)
        return float(self.strata[found[0]][found[1]]) if found else self.rate  # type: ignore[index]

    def stratum(self, rec: Mapping[str, Any]) -> str:
        found = self._match(rec)
        return f"{found[0]}={found[1]}" if found else "default"

    def digest(self) -> str:
        """Short content hash naming this policy in audit rows and export manifests. A key added
        since, at its default, is left out: a policy keeps its name across upgrades."""
        exclude = {"wake_word_rate"} if self.wake_word_rate == 0.0 else set()
        return hashlib.sha256(self.model_dump_json(exclude=exclude).encode()).hexdigest()[:16]

    @model_validator(mode="after")
    def _wake_word_share_needs_the_exclusion(self) -> SamplingPolicy:
        if self.wake_word_rate > 0 and not self.exclude.accidental_activations:
            raise ValueError(
                "wake_word_rate draws among the accidental activations that exclude.accidental_activations "
                "keeps out of review; with it false they would go to general review: set it true"
            )
        return self


def load_policy(path: Path) -> SamplingPolicy:
    """Read and validate a policy file (.toml, .yaml or .yml); errors name the key and the fix."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read the policy file ({exc.strerror})") from exc
    try:
        if path.suffix == ".toml":
            raw = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            raw = yaml.safe_load(text)
        else:
            raise InvalidInput(f"{path}: a policy is a .toml, .yaml or .yml file")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise InvalidInput(f"{path}: not valid {path.suffix[1:].upper()}: {exc}") from exc
    return parse_policy(raw, source=str(path))


def parse_policy(raw: Any, *, source: str = "policy") -> SamplingPolicy:
    if not isinstance(raw, dict):
        raise InvalidInput(f"{source}: expected a table of settings at the top level")
    try:
        return SamplingPolicy.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "policy"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            elif err["type"] == "literal_error" and err["loc"][:1] == ("strata",):
                key = f"strata.{err['loc'][1]}"
                msg = f"unknown stratum (known: {', '.join(STRATA)})"
            problems.append(msg if not err["loc"] and ": " in msg else f"{key}: {msg}")
        raise InvalidInput(f"{source}: " + "; ".join(problems)) from exc


def keyed_unit(key: bytes, *parts: str) -> float:
    """A uniform number in [0, 1) from HMAC-SHA256(key, parts).

    >>> 0.0 <= keyed_unit(b"k", "clip", "c-1") < 1.0
    True
    """
    digest = hmac.new(key, "\x1f".join(parts).encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def period_of(recorded_at: datetime, period_days: int) -> int:
    """Index of the cap period holding `recorded_at` (periods of `period_days` from 1970-01-01 UTC)."""
    return (recorded_at - EPOCH).days // period_days


def _words(text: str) -> str:
    return " ".join(text.lower().split())


# known_entity(slot_type, value): True if the catalog knows it, False if it should and does not,
# None if the slot type is not linked to the catalog (dates, durations...).
EntityCheck = Callable[[str, str], bool | None]


def priority_score(rec: Mapping[str, Any], p: Priority, known_entity: EntityCheck | None = None) -> float:
    """How much a person would help with this clip, in [0, 1] (0: nothing suggests a problem)."""
    scores = [0.0]
    asr = rec.get("device_asr") or {}
    nlu = rec.get("device_nlu") or {}
    conf = asr.get("confidence")
    if p.asr_confidence_below is not None and conf is not None and conf < p.asr_confidence_below:
        scores.append(1.0 - conf / p.asr_confidence_below if p.asr_confidence_below else 1.0)
    conf = nlu.get("confidence")
    if p.nlu_confidence_below is not None and conf is not None and conf < p.nlu_confidence_below:
        scores.append(1.0 - conf / p.nlu_confidence_below if p.nlu_confidence_below else 1.0)
    if p.hypothesis_disagreement and asr.get("text") and asr.get("alternatives"):
        top = _words(asr["text"])
        alt = _words(asr["alternatives"][0])
        if top and alt:
            scores.append(min(1.0, float(jiwer.wer(top, alt))))
    if p.rare_intents and nlu.get("intent") in p.rare_intents:
        scores.append(1.0)
    if p.missing_entities and known_entity is not None:
        slots = nlu.get("slots") or []
        if any(s.get("value") and known_entity(s.get("type", ""), s["value"]) is False for s in slots):
            scores.append(1.0)
    return max(scores)


@dataclass(frozen=True, slots=True)
class Decision:
    """What the policy decided for one clip. `probability` includes panel membership.

    >>> Decision(True, "uniform", 0.02, "default", 1).weight
    50.0
    """

    drawn: bool
    reason: str  # uniform | priority | wake_word | excluded:<why> | not_in_panel | not_drawn
    probability: float
    stratum: str
    period: int
    score: float = 0.0
    for_wake_word: bool = False  # an accidental activation, decided for the wake-word team

    @property
    def weight(self) -> float:
        return 1.0 / self.probability if self.probability > 0 else 0.0


def decide(
    policy: SamplingPolicy,
    key: bytes,
    rec: Mapping[str, Any],
    *,
    consent: bool,
    known_entity: EntityCheck | None = None,
) -> Decision:
    """Decide one clip from its metadata alone (the per-household cap is applied by the caller).

    `rec` holds clip_id, account_id, recorded_at (aware datetime), locale and optionally
    device_type, child_profile, wake_score, device_asr {text, confidence, alternatives} and
    device_nlu {intent, slots, confidence}.
    """
    period = period_of(rec["recorded_at"], policy.period_days)
    stratum = policy.stratum(rec)
    if not consent:
        return Decision(False, "excluded:consent", 0.0, stratum, period)
    ex = policy.exclude
    if ex.child_profiles and rec.get("child_profile"):
        return Decision(False, "excluded:child_profile", 0.0, stratum, period)
    wake = rec.get("wake_score")
    if ex.accidental_activations and wake is not None and wake < ex.min_wake_score:
        # Not for review; a share of them, for the wake-word team (panel and cap as for any clip).
        rate = policy.wake_word_rate
        if rate <= 0:
            return Decision(False, "excluded:accidental_activation", 0.0, stratum, period)
        probability = policy.panel_rate * rate
        if keyed_unit(key, "panel", rec["account_id"], str(period)) >= policy.panel_rate:
            return Decision(False, "not_in_panel", probability, stratum, period, for_wake_word=True)
        if keyed_unit(key, "clip", rec["clip_id"]) >= rate:
            return Decision(False, "not_drawn", probability, stratum, period, for_wake_word=True)
        return Decision(True, WAKE_WORD_REASON, probability, stratum, period, for_wake_word=True)
    r = policy.base_rate(rec)
    b = policy.budget
    score = priority_score(rec, policy.priority, known_entity) if b.priority > 0 else 0.0
    pi = min(1.0, r * (b.uniform + b.priority * score / policy.priority.mean_score))
    probability = policy.panel_rate * pi
    if keyed_unit(key, "panel", rec["account_id"], str(period)) >= policy.panel_rate:
        return Decision(False, "not_in_panel", probability, stratum, period, score)
    u = keyed_unit(key, "clip", rec["clip_id"])
    if u >= pi:
        return Decision(False, "not_drawn", probability, stratum, period, score)
    reason = "uniform" if u < r * b.uniform else "priority"
    return Decision(True, reason, probability, stratum, period, score)


def household_tag(key: bytes, account_id: str) -> str:
    """A keyed pseudonym of a household, for cap state kept outside the database (no account ids).

    >>> household_tag(b"k", "acct-1") == household_tag(b"k", "acct-1") != household_tag(b"k", "acct-2")
    True
    """
    return hmac.new(key, b"cap\x1f" + account_id.encode(), hashlib.sha256).hexdigest()[:24]


class CapCounter:
    """Clips kept per (household, period): first come, first kept, up to the cap.

    Holds only households that had a draw, and forgets periods older than the newest seen minus
    one, so a time-ordered stream runs in memory bounded by one period's drawn households. A clip
    of a forgotten period (a late arrival) is held back, never drawn: its household's count is
    gone, so drawing it could pass the cap. `state()` / `from_state()` carry the counts from one
    run of a split stream to the next, with the `context` (sampling key fingerprint, period
    length) they were counted under: a state from another context is refused, not reset.
    """

    STATE_VERSION = 1

    def __init__(
        self,
        cap: int,
        initial: Mapping[tuple[str, int], int] | None = None,
        *,
        context: Mapping[str, Any] | None = None,
        forgotten_before: int | None = None,
    ) -> None:
        self.cap = cap
        self.counts: dict[tuple[str, int], int] = dict(initial or {})
        self.newest = max((p for _, p in self.counts), default=None)
        # Periods below this had counts that were dropped: a clip of one cannot be counted. Counts
        # given whole (the database's) drop nothing, so a future-dated clip refuses no one.
        self.forgotten_before = forgotten_before
        self.context = dict(context or {})
        self.capped = 0
        self.late = 0

    def admit(self, account: str, period: int) -> bool:
        if self.forgotten_before is not None and period < self.forgotten_before:
            self.late += 1
            self.capped += 1
            return False
        if self.newest is None or period > self.newest:
            self.newest = period
            dropped = [p for _, p in self.counts if p < period - 1]
            if dropped:
                self.forgotten_before = max(self.forgotten_before or max(dropped) + 1, max(dropped) + 1)
                self.counts = {k: v for k, v in self.counts.items() if k[1] >= period - 1}
        n = self.counts.get((account, period), 0)
        if n >= self.cap:
            self.capped += 1
            return False
        self.counts[(account, period)] = n + 1
        return True

    def state(self) -> dict[str, Any]:
        """JSON-ready counts: {"version", "periods": {period: {household: n}}}."""
        periods: dict[str, dict[str, int]] = {}
        for (account, period), n in sorted(self.counts.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            periods.setdefault(str(period), {})[account] = n
        return {
            "version": self.STATE_VERSION,
            "context": self.context,
            "forgotten_before": self.forgotten_before,
            "periods": periods,
        }

    @classmethod
    def from_state(cls, cap: int, state: Any, *, context: Mapping[str, Any] | None = None) -> CapCounter:
        """The counter `state()` saved; anything malformed is refused, never half-read."""
        if not isinstance(state, dict) or state.get("version") != cls.STATE_VERSION:
            raise InvalidInput(f"cap state: expected an object with version {cls.STATE_VERSION}", field="state")
        saved = state.get("context")
        if context is not None and saved is not None and saved != dict(context):
            raise InvalidInput(
                "cap state: written under another sampling key or period length, so its counts do not "
                "apply; use the state of this key and policy, or start a new state file",
                field="state",
            )
        forgotten = state.get("forgotten_before")
        if forgotten is not None and (isinstance(forgotten, bool) or not isinstance(forgotten, int)):
            raise InvalidInput("cap state: `forgotten_before` must be a period number", field="state")
        periods = state.get("periods")
        if not isinstance(periods, dict):
            raise InvalidInput("cap state: `periods` must be an object", field="state")
        counts: dict[tuple[str, int], int] = {}
        for period, households in periods.items():
            if not (isinstance(period, str) and period.lstrip("-").isdigit() and isinstance(households, dict)):
                raise InvalidInput(f"cap state: bad period {period!r}", field="state")
            for tag, n in households.items():
                if not isinstance(tag, str) or isinstance(n, bool) or not isinstance(n, int) or n < 0:
                    raise InvalidInput(f"cap state: bad count for a household in period {period}", field="state")
                counts[(tag, int(period))] = n
        return cls(cap, counts, context=context, forgotten_before=forgotten)


def capped(policy: SamplingPolicy, cap_per_account: int) -> SamplingPolicy:
    """`policy` with the workspace's household cap as a ceiling (a policy file's own cap applies
    when it is lower)."""
    return policy.model_copy(update={"cap_per_account": min(policy.cap_per_account, cap_per_account)})


class StreamRecord(ClipMeta):
    """One metadata line of the upstream stream, checked by ClipMeta's own rules: a value ingest
    would refuse (a wake score of 3, a locale "NOT A LOCALE") made a line that was drawn, used up
    a household's cap slot, and was then rejected by `earmark ingest`. The stream needs fewer
    fields (device_id and locale may be missing), carries consent (`human_review`) and passes
    unknown top-level fields through untouched."""

    model_config = ConfigDict(extra="allow")
    clip_id: Id  # required here: the draw is keyed by it
    device_id: Id | None = None  # type: ignore[assignment]
    locale: Locale | None = None  # type: ignore[assignment]
    human_review: Literal["allow", "deny"] | None = None

    def as_record(self) -> dict[str, Any]:
        rec = self.model_dump()
        if isinstance(rec.get("device_nlu"), dict):
            rec["intent"] = rec["device_nlu"].get("intent")
        return rec


@dataclass(slots=True)
class StreamTotals:
    read: int = 0
    drawn: int = 0
    capped: int = 0
    bad: int = 0
    duplicates: int = 0  # a clip id drawn earlier in the run, not drawn again
    excluded: dict[str, int] = field(default_factory=dict)  # by reason: consent, child_profile...


def draw_stream(
    lines: Any,
    policy: SamplingPolicy,
    key: bytes,
    *,
    default_consent: str = "deny",
    known_entity: EntityCheck | None = None,
    on_error: Callable[[int, str], None] | None = None,
    totals: StreamTotals | None = None,
    caps: CapCounter | None = None,
) -> Any:
    """Yield the drawn lines of a JSONL metadata stream (lines as str or bytes), each with a
    `sampling` object added.

    Reads one line at a time; a bad line is reported through `on_error` and skipped, never drawn.
    So is a clip id drawn before in this run (a repeated line would take a second cap slot).
    `caps` (keyed by `household_tag`) carries the cap counts of earlier runs of a split stream.
    """
    totals = totals if totals is not None else StreamTotals()
    caps = caps if caps is not None else CapCounter(policy.cap_per_account)
    tag = policy.digest()
    # Drawn clip ids by period, forgotten with the cap counts (a clip of a forgotten period is
    # held back anyway): memory stays bounded by the draws of two periods, not by the input.
    drawn: dict[int, set[str]] = {}
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        totals.read += 1
        try:
            raw = load_json_text(line, first=lineno == 1)
            if not isinstance(raw, dict):
                raise InvalidInput("expected a JSON object")
            record = StreamRecord.model_validate(raw)
        except InvalidInput as exc:
            totals.bad += 1
            if on_error is not None:
                on_error(lineno, exc.message)
            continue
        except ValidationError as exc:
            totals.bad += 1
            if on_error is not None:
                on_error(lineno, describe_validation_error(exc))
            continue
        if any(record.clip_id in ids for ids in drawn.values()):
            totals.duplicates += 1
            if on_error is not None:
                on_error(lineno, f"clip_id {record.clip_id} was drawn on an earlier line; not drawn again")
            continue
        consent = (record.human_review or default_consent) == "allow"
        d = decide(policy, key, record.as_record(), consent=consent, known_entity=known_entity)
        if d.reason.startswith("excluded:"):
            why = d.reason.removeprefix("excluded:")
            totals.excluded[why] = totals.excluded.get(why, 0) + 1
        if not d.drawn:
            continue
        if not caps.admit(household_tag(key, record.account_id), d.period):
            totals.capped += 1
            continue
        totals.drawn += 1
        drawn.setdefault(d.period, set()).add(record.clip_id)
        if caps.newest is not None:
            drawn = {p: ids for p, ids in drawn.items() if p >= caps.newest - 1}
        # Consent is the stream's field, not the clip's: a drawn line is the clip's metadata for
        # `earmark ingest`, which takes no consent (record it with `earmark consent` or the API).
        raw.pop("human_review", None)
        raw["sampling"] = {"probability": d.probability, "reason": d.reason, "policy": tag}
        yield json.dumps(raw, ensure_ascii=False, separators=(",", ":"))


def entity_check(names_by_type: Mapping[str, set[str]], slot_types: Mapping[str, str | None]) -> EntityCheck:
    """A missing-entity check from normalized catalog names per entity type and the slot types
    linked to one. With no slot types known, every slot is checked against every name."""
    every = set().union(*names_by_type.values()) if names_by_type else set()

    def check(slot_type: str, value: str) -> bool | None:
        if slot_types:
            etype = slot_types.get(slot_type)
            if etype is None:
                return None
            return normalize(value) in names_by_type.get(etype, set())
        return normalize(value) in every

    return check
