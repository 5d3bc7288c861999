from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from earmark.errors import InvalidInput
from earmark.sampling_policy import (
    CapCounter,
    SamplingPolicy,
    StreamTotals,
    decide,
    draw_stream,
    entity_check,
    keyed_unit,
    load_policy,
    parse_policy,
    priority_score,
)

KEY = b"k" * 32
AT = datetime(2026, 11, 2, 8, tzinfo=UTC)


def rec(i: int, **fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "clip_id": f"c-{i}",
        "account_id": f"a-{i % 50}",
        "recorded_at": AT + timedelta(minutes=i),
        "locale": "en-US",
        "device_asr": {"text": "what is the weather", "confidence": 0.95},
        "device_nlu": {"intent": "GetWeather", "slots": [], "confidence": 0.9},
    }
    base.update(fields)
    return base


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        ({"rate": 0.1, "budget": {"uniform": 0.5, "priority": 0.4}}, "budget: uniform (0.5) + priority (0.4) must sum"),
        ({"rate": 0.1, "strata": {"region": {"eu": 0.2}}}, "strata.region: unknown stratum"),
        ({"rate": 0.1, "strata": {"locale": {"en-GB": 1.5}}}, "locale.en-GB: rate must be a number in (0, 1]"),
        ({"rate": 0.1, "cap": 5}, "cap: unknown key"),
        ({"rate": 0}, "rate: Input should be greater than 0"),
        ({}, "rate: Field required"),
        ({"rate": 0.1, "budget": {"uniform": 0.0, "priority": 1.0}}, "without a uniform share"),
        ({"rate": 0.1, "priority": {"rare_intent": ["X"]}}, "priority.rare_intent: unknown key"),
    ],
)
def test_bad_policies_name_the_key(raw: dict[str, object], names: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_policy(raw, source="p.toml")
    assert names in str(exc.value)
    assert str(exc.value).startswith("p.toml: ")


def test_policy_files_toml_yaml_and_bad_syntax(tmp_path: Path) -> None:
    toml = tmp_path / "p.toml"
    toml.write_text('rate = 0.2\n[strata.locale]\n"en-GB" = 0.5\n[budget]\nuniform = 0.7\npriority = 0.3\n')
    yml = tmp_path / "p.yaml"
    yml.write_text("rate: 0.2\nstrata:\n  locale:\n    en-GB: 0.5\nbudget:\n  uniform: 0.7\n  priority: 0.3\n")
    assert load_policy(toml) == load_policy(yml)
    assert load_policy(toml).digest() == load_policy(yml).digest()
    bad = tmp_path / "bad.toml"
    bad.write_text("rate = \n")
    with pytest.raises(InvalidInput, match="not valid TOML"):
        load_policy(bad)
    with pytest.raises(InvalidInput, match="cannot read the policy file"):
        load_policy(tmp_path / "p.json")
    (tmp_path / "p.json").write_text("{}")
    with pytest.raises(InvalidInput, match=r"\.toml, \.yaml or \.yml"):
        load_policy(tmp_path / "p.json")


def test_stratum_precedence_intent_then_device_then_locale() -> None:
    p = parse_policy(
        {"rate": 0.1, "strata": {"locale": {"en-GB": 0.2}, "device_type": {"car": 0.3}, "intent": {"MakeCall": 0.4}}}
    )
    assert p.base_rate({"locale": "en-GB", "device_type": "car", "intent": "MakeCall"}) == 0.4
    assert p.base_rate({"locale": "en-GB", "device_type": "car"}) == 0.3
    assert p.stratum({"locale": "en-GB"}) == "locale=en-GB"
    assert p.base_rate({"locale": "de-DE"}) == 0.1


def test_keyed_unit_depends_on_the_key_and_is_uniform() -> None:
    assert keyed_unit(b"a", "clip", "x") != keyed_unit(b"b", "clip", "x")
    values = [keyed_unit(KEY, "clip", f"c-{i}") for i in range(20000)]
    assert 0.09 < sum(v < 0.1 for v in values) / len(values) < 0.11


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.001, 1.0),
    uniform=st.floats(0.05, 1.0),
    panel=st.floats(0.01, 1.0),
    asr_conf=st.one_of(st.none(), st.floats(0.0, 1.0)),
    alt=st.one_of(st.none(), st.text(max_size=20)),
)
def test_every_eligible_clip_keeps_its_uniform_floor(
    rate: float, uniform: float, panel: float, asr_conf: float | None, alt: str | None
) -> None:
    p = SamplingPolicy(
        rate=rate,
        panel_rate=panel,
        budget={"uniform": uniform, "priority": 1.0 - uniform},  # type: ignore[arg-type]
    )
    asr = {"text": "call mom", "confidence": asr_conf, "alternatives": [alt] if alt else []}
    d = decide(p, KEY, rec(1, device_asr=asr), consent=True)
    assert panel * rate * uniform - 1e-12 <= d.probability <= panel
    assert 0.0 <= d.score <= 1.0


def test_inverse_probability_weights_give_unbiased_estimates() -> None:
    """A priority draw over-samples low-confidence clips; weighting by 1/p recovers the true error rate."""
    p = parse_policy(
        {
            "rate": 0.1,
            "budget": {"uniform": 0.3, "priority": 0.7},
            "priority": {"mean_score": 0.3},
            "cap_per_account": 10**6,
        }
    )
    population, drawn = [], []
    for i in range(40000):
        conf = (i % 100) / 100
        wrong = conf < 0.3  # the device is wrong exactly when unsure
        d = decide(p, KEY, rec(i, device_asr={"text": "x", "confidence": conf}), consent=True)
        population.append(wrong)
        if d.drawn:
            drawn.append((wrong, d.weight))
    true_rate = sum(population) / len(population)
    naive = sum(w for w, _ in drawn) / len(drawn)
    weighted = sum(wt for w, wt in drawn if w) / sum(wt for _, wt in drawn)
    assert naive > true_rate + 0.15  # the priority share makes the unweighted figure far too high
    assert abs(weighted - true_rate) < 0.03


def test_exclusions_come_before_everything() -> None:
    p = SamplingPolicy(rate=1.0)
    assert decide(p, KEY, rec(1), consent=False).reason == "excluded:consent"
    assert decide(p, KEY, rec(1, child_profile=True), consent=True).reason == "excluded:child_profile"
    assert decide(p, KEY, rec(1, wake_score=0.1), consent=True).reason == "excluded:accidental_activation"
    assert decide(p, KEY, rec(1, wake_score=0.9), consent=True).drawn


def test_a_share_of_accidental_activations_is_drawn_for_the_wake_word_team_only() -> None:
    p = parse_policy({"rate": 0.01, "panel_rate": 0.5, "wake_word_rate": 0.3})
    decisions = [decide(p, KEY, rec(i, wake_score=0.2), consent=True) for i in range(4000)]
    drawn = [d for d in decisions if d.drawn]
    assert {d.reason for d in drawn} == {"wake_word"}
    assert {d.reason for d in decisions if not d.drawn} == {"not_drawn", "not_in_panel"}
    assert abs(len(drawn) / len(decisions) - 0.5 * 0.3) < 0.03  # the panel, then the rate
    assert {d.probability for d in drawn} == {0.15}
    # The child's profile and consent still come first; clips above the threshold are drawn as ever.
    assert decide(p, KEY, rec(1, wake_score=0.2, child_profile=True), consent=True).reason == "excluded:child_profile"
    assert decide(p, KEY, rec(1, wake_score=0.2), consent=False).reason == "excluded:consent"
    assert not any(decide(p, KEY, rec(i, wake_score=0.9), consent=True).reason == "wake_word" for i in range(500))
    # None by default: excluded as ever.
    assert not any(
        decide(SamplingPolicy(rate=1.0), KEY, rec(i, wake_score=0.2), consent=True).drawn for i in range(500)
    )
    with pytest.raises(InvalidInput, match="wake_word_rate"):
        parse_policy({"rate": 0.1, "wake_word_rate": True})
    # With the exclusion off, low-score clips with speech would go to general review: refused.
    with pytest.raises(InvalidInput, match="with it false they would go to general review"):
        parse_policy({"rate": 0.1, "wake_word_rate": 0.5, "exclude": {"accidental_activations": False}})


def test_a_policy_keeps_its_name_across_the_upgrade_that_added_wake_word_rate() -> None:
    shipped = load_policy(Path(__file__).resolve().parents[1] / "earmark" / "data" / "sampling-policy.toml")
    assert shipped.digest() == "b9cf7e49d55feb9d"  # its name in audit rows and manifests before the key existed
    assert shipped.model_copy(update={"wake_word_rate": 0.1}).digest() != shipped.digest()


def test_panel_bounds_what_households_contribute() -> None:
    p = parse_policy({"rate": 1.0, "panel_rate": 0.2, "cap_per_account": 10**6})
    everyone: dict[tuple[object, int], int] = {}
    drawn: dict[tuple[object, int], int] = {}
    for i in range(5000):
        d = decide(p, KEY, rec(i), consent=True)
        key = (rec(i)["account_id"], d.period)
        everyone[key] = everyone.get(key, 0) + 1
        if d.drawn:
            drawn[key] = drawn.get(key, 0) + 1
    assert 0.1 < len(drawn) / len(everyone) < 0.3  # about a fifth of households each period
    assert all(everyone[k] == n for k, n in drawn.items())  # a panel household's clips all (rate 1)


def test_priority_criteria() -> None:
    p = parse_policy({"rate": 0.1, "priority": {"rare_intents": ["MakeCall"]}}).priority
    assert priority_score(rec(1), p) == 0.0
    assert priority_score(rec(1, device_asr={"text": "x", "confidence": 0.35}), p) == pytest.approx(0.5)
    nbest = {"text": "call tulsa", "confidence": 0.95, "alternatives": ["call tulsi"]}
    assert priority_score(rec(1, device_asr=nbest), p) == pytest.approx(0.5)
    assert priority_score(rec(1, device_nlu={"intent": "MakeCall", "slots": []}), p) == 1.0
    known = entity_check({"MusicArtist": {"taylor swift"}}, {"artist": "MusicArtist", "date": None})
    nlu = {
        "intent": "PlayMusic",
        "slots": [{"type": "artist", "value": "Taylor Swift"}, {"type": "date", "value": "x"}],
    }
    assert priority_score(rec(1, device_nlu=nlu), p, known) == 0.0
    nlu["slots"][0]["value"] = "the zorblaxes"  # type: ignore[index]
    assert priority_score(rec(1, device_nlu=nlu), p, known) == 1.0


def test_cap_counter_forgets_old_periods() -> None:
    caps = CapCounter(2)
    assert [caps.admit("a", 0) for _ in range(3)] == [True, True, False]
    for period in range(1, 100):
        for h in range(10):
            caps.admit(f"h{h}", period)
    assert len(caps.counts) <= 20  # this period and the one before, not all 100
    assert caps.capped == 1


def test_a_late_clip_from_a_forgotten_period_is_held_back_never_over_the_cap() -> None:
    """Counts older than the newest period minus one are forgotten; a late clip of such a period
    was admitted as if its household had none there, and went over the cap."""
    caps = CapCounter(2)
    assert [caps.admit("h1", 0) for _ in range(2)] == [True, True]
    assert caps.admit("h1", 2)  # a newer period: period 0's counts are forgotten
    assert [caps.admit("h1", 0) for _ in range(3)] == [False, False, False]  # late: held back
    assert caps.late == 3 and caps.admit("h1", 1)  # the period before the newest is still counted
    resumed = CapCounter.from_state(2, caps.state())
    assert not resumed.admit("h2", 0)  # the newest period survives the state file, counts or not


def test_counts_given_whole_refuse_no_older_clip() -> None:
    """The database seeds every sampled clip's count: one future-dated clip made every older
    period 'late', and the draws stopped. Only counts actually dropped make a period late."""
    caps = CapCounter(2, {("future", 700): 1, ("h1", 5): 1})
    assert caps.admit("h1", 5) and not caps.admit("h1", 5)  # the cap, counted from the seed
    assert caps.admit("h2", 3) and caps.late == 0


def test_a_cap_state_of_another_key_or_period_length_is_refused() -> None:
    caps = CapCounter(2, context={"key": "aaaa", "period_days": 30})
    caps.admit("h1", 5)
    state = caps.state()
    assert CapCounter.from_state(2, state, context={"key": "aaaa", "period_days": 30}).counts == {("h1", 5): 1}
    for other in ({"key": "bbbb", "period_days": 30}, {"key": "aaaa", "period_days": 7}):
        with pytest.raises(InvalidInput, match="another sampling key or period length"):
            CapCounter.from_state(2, state, context=other)


@settings(max_examples=60, deadline=None)
@given(
    events=st.lists(st.tuples(st.sampled_from("abcd"), st.integers(0, 4)), max_size=40),
    split=st.integers(0, 40),
)
def test_cap_counter_state_resumes_exactly_where_it_stopped(events: list[tuple[str, int]], split: int) -> None:
    events = sorted(events, key=lambda e: e[1])  # a time-ordered stream
    whole = CapCounter(2)
    expected = [whole.admit(h, p) for h, p in events]
    first = CapCounter(2)
    got = [first.admit(h, p) for h, p in events[:split]]
    saved = json.loads(json.dumps(first.state()))
    second = CapCounter.from_state(2, saved)
    got += [second.admit(h, p) for h, p in events[split:]]
    assert got == expected


@pytest.mark.parametrize(
    "state",
    [None, [], {"version": 2, "periods": {}}, {"version": 1}, {"version": 1, "periods": {"1": {"h": -1}}}],
)
def test_cap_counter_refuses_a_malformed_state(state: object) -> None:
    with pytest.raises(InvalidInput, match="cap state"):
        CapCounter.from_state(2, state)


def test_stream_skips_bad_lines_and_tags_drawn_ones() -> None:
    p = SamplingPolicy(rate=1.0)
    good = json.dumps({**rec(1), "recorded_at": AT.isoformat(), "human_review": "allow", "extra": {"kept": 1}})
    errors: list[tuple[int, str]] = []
    lines = [
        "not json",
        "[1]",
        json.dumps({"clip_id": "x", "account_id": "a", "recorded_at": "2026-11-02T08:00:00"}),
        "",
        good,
        json.dumps({**rec(2), "recorded_at": AT.isoformat()}),  # no consent: default deny
    ]
    totals = StreamTotals()
    out = list(draw_stream(iter(lines), p, KEY, on_error=lambda n, why: errors.append((n, why)), totals=totals))
    assert [n for n, _ in errors] == [1, 2, 3]
    assert "time zone" in errors[2][1]
    assert len(out) == 1
    drawn = json.loads(out[0])
    assert drawn["extra"] == {"kept": 1}  # upstream fields pass through
    assert drawn["sampling"] == {"probability": 1.0, "reason": "uniform", "policy": p.digest()}
    assert (totals.read, totals.drawn, totals.bad) == (5, 1, 3)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"rate": 0.5, "cap_per_account": True}, "cap_per_account: true is not a number"),
        ({"rate": True}, "rate: true is not a number"),
        (
            {"rate": 0.5, "strata": {"locale": {"en-GB": True}}},
            "locale.en-GB: rate must be a number in (0, 1], got true",
        ),
        ({"rate": 0.5, "budget": {"uniform": True, "priority": 0.0}}, "uniform: true is not a number"),
    ],
)
def test_true_is_not_a_number_in_a_policy(raw: dict, message: str) -> None:  # type: ignore[type-arg]
    """TOML's true read as 1: a cap of true became 1, a stratum rate of true 100%."""
    with pytest.raises(InvalidInput, match=re.escape(message)):
        parse_policy(raw)
