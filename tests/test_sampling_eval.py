"""The priority-sampling simulation: loading Snips, the policies, the headline and the chart.

Tests that need the real benchmark use ../shared/data (or EARMARK_SHARED_DATA) and skip without it;
the rest run on a tiny Snips-shaped folder written here.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytest.importorskip("sklearn", reason="scikit-learn is needed for `earmark eval sampling`")

from earmark.errors import InvalidInput
from earmark.sampling_eval import (
    POLICIES,
    Params,
    Point,
    Policy,
    Result,
    Slot,
    load_snips,
    render_svg,
    run,
    simulate,
)
from tests.conftest import SHARED_DATA

SNIPS = SHARED_DATA / "snips-nlu-benchmark" / "2017-06-custom-intent-engines"
CONFUSABLE = ["AddToPlaylist", "PlayMusic", "SearchCreativeWork", "SearchScreeningEvent"]
ROUNDS, BUDGET, PER_INTENT = 6, 40, 2
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def snips() -> Path:
    if not SNIPS.is_dir():
        pytest.skip(f"Snips NLU benchmark not found at {SNIPS} (set EARMARK_SHARED_DATA)")
    return SNIPS


def _simulate_small(snips: Path, policy: Policy, seed: int) -> list[Point]:
    """A few rounds on 400 utterances of traffic per confusable intent."""
    traffic = [u for intent in CONFUSABLE for u in load_snips(snips, "full", intents=[intent])[:400]]
    test = load_snips(snips, "validate", intents=CONFUSABLE)
    return simulate(
        traffic,
        test,
        policy=policy,
        seed=seed,
        rounds=ROUNDS,
        budget=BUDGET,
        priority_share=0.75,
        seed_per_intent=PER_INTENT,
    )


@pytest.fixture(scope="module")
def small(snips: Path) -> dict[str, list[list[Point]]]:
    """Both policies, seeds 0 and 1."""
    return {policy: [_simulate_small(snips, policy, seed) for seed in (0, 1)] for policy in POLICIES}


def _write_intent(root: Path, intent: str, split_file: str, records: list[list[dict[str, str]]]) -> None:
    (root / intent).mkdir(parents=True, exist_ok=True)
    doc = {intent: [{"data": chunks} for chunks in records]}
    (root / intent / split_file).write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")


def _tiny_snips(root: Path) -> Path:
    words = {"Alpha": ["play", "music", "song", "tune"], "Beta": ["weather", "rain", "sunny", "forecast"]}
    for intent, vocab in words.items():
        rows = [
            [{"text": f"{vocab[i % 4]} {vocab[(i + 1) % 4]} "}, {"text": f"x{i}", "entity": "thing"}] for i in range(40)
        ]
        _write_intent(root, intent, f"train_{intent}_full.json", rows)
        _write_intent(root, intent, f"validate_{intent}.json", rows[:10])
    return root


def test_load_snips_joins_chunks_and_places_slots(snips: Path) -> None:
    music = load_snips(snips, "full", intents=["PlayMusic"])
    first = music[0]
    assert first.text == "I need to hear the song Aspro Mavro from Bill Szymczyk on Youtube"
    assert first.intent == "PlayMusic"
    assert [(first.text[s.start : s.end], s.entity) for s in first.slots] == [
        ("song", "music_item"),
        ("Aspro Mavro", "track"),
        ("Bill Szymczyk", "artist"),
        ("Youtube", "service"),
    ]
    assert first.slots[0] == Slot(19, 23, "music_item")


def test_load_snips_reads_every_split_and_the_cesu8_file(snips: Path) -> None:
    full, test = load_snips(snips, "full"), load_snips(snips, "validate")
    assert len(full) == 13_784
    assert len(test) == 700
    assert {u.intent for u in test} == {u.intent for u in full}
    assert len(load_snips(snips, "train", intents=["RateBook", "GetWeather"])) == 600
    # The one emoji stored as a CESU-8 surrogate pair comes out as a single character.
    pizza = [u for u in full if "\U0001f355" in u.text]
    assert [u.text for u in pizza] == ["I want toi hear some Pop Punk Perfection \U0001f355 off of Deezer"]
    assert [pizza[0].text[s.start : s.end] for s in pizza[0].slots] == ["Pop Punk Perfection \U0001f355", "Deezer"]
    assert all(not 0xD800 <= ord(c) <= 0xDFFF for u in full for c in u.text)


def test_bad_folders_are_reported_with_the_field(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="not a folder") as missing:
        load_snips(tmp_path / "nowhere")
    assert missing.value.field == "path"
    with pytest.raises(InvalidInput, match="no intent folder"):
        load_snips(tmp_path)
    root = _tiny_snips(tmp_path / "snips")
    (root / "Beta" / "validate_Beta.json").unlink()
    with pytest.raises(InvalidInput, match=r"validate_Beta\.json"):
        load_snips(root, "validate")
    (root / "Beta" / "train_Beta_full.json").write_text('{"Beta": [{"chunks": []}]}')
    with pytest.raises(InvalidInput, match="not Snips JSON"):
        load_snips(root, "full")
    (root / "Beta" / "train_Beta_full.json").write_bytes(b"\xff\xfe not json")
    with pytest.raises(InvalidInput, match="not Snips JSON"):
        load_snips(root, "full")


def test_loader_joins_cesu8_surrogates_in_any_file(tmp_path: Path) -> None:
    root = _tiny_snips(tmp_path)
    cesu8 = "\ud83c\udf55".encode("utf-8", "surrogatepass")
    (root / "Alpha" / "validate_Alpha.json").write_bytes(b'{"Alpha": [{"data": [{"text": "pizza ' + cesu8 + b'"}]}]}')
    assert load_snips(root, "validate", intents=["Alpha"])[0].text == "pizza \U0001f355"


def test_params_and_traffic_are_validated(tmp_path: Path) -> None:
    one_intent = load_snips(_tiny_snips(tmp_path), "full", intents=["Alpha"])
    with pytest.raises(InvalidInput, match="at least 2 intents"):
        simulate(one_intent, one_intent, policy="uniform", seed=0)
    with pytest.raises(InvalidInput, match="unknown policy"):
        simulate(load_snips(tmp_path, "full"), one_intent, policy="loudest", seed=0)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput) as zero:
        Params(budget=0)
    assert zero.value.field == "budget"
    with pytest.raises(InvalidInput) as share:
        Params(priority_share=1.5)
    assert share.value.field == "priority_share"


def test_heard_counts_follow_the_budget(small: dict[str, list[list[Point]]]) -> None:
    expected = [PER_INTENT * len(CONFUSABLE) + r * BUDGET for r in range(ROUNDS + 1)]
    for runs in small.values():
        for points in runs:
            assert [p.heard for p in points] == expected
            assert points[0].pick_confidence is None


def test_accuracy_rises_with_what_people_heard(small: dict[str, list[list[Point]]]) -> None:
    for runs in small.values():
        for points in runs:
            assert points[-1].accuracy > points[0].accuracy + 0.1
            assert points[-1].accuracy > 0.85


def test_priority_picks_what_the_model_is_least_sure_of(small: dict[str, list[list[Point]]]) -> None:
    def mean_pick_confidence(policy: str) -> float:
        values = [p.pick_confidence for run in small[policy] for p in run[1:]]
        return sum(v for v in values if v is not None) / len(values)

    assert mean_pick_confidence("priority") < mean_pick_confidence("uniform") - 0.1


def test_same_seed_same_curve_other_seed_other_draw(snips: Path, small: dict[str, list[list[Point]]]) -> None:
    assert _simulate_small(snips, "priority", 0) == small["priority"][0]
    assert small["uniform"][0] != small["uniform"][1]


def test_headline_finds_where_priority_matches_uniform() -> None:
    uniform = [Point(100, 0.80, None), Point(200, 0.85, 0.9), Point(300, 0.90, 0.9)]
    priority = [Point(100, 0.92, None), Point(200, 0.88, 0.5), Point(300, 0.95, 0.5)]
    never = [Point(100, 0.5, None), Point(200, 0.6, 0.5), Point(300, 0.7, 0.5)]
    h = Result(Params(seeds=1), {"uniform": [uniform], "priority": [priority]}).headline()
    assert (h.uniform_heard, h.first, h.sustained) == (300, (100,), (300,))
    assert h.ratio == pytest.approx(1 / 3)
    assert h.target_met
    h = Result(Params(seeds=2), {"uniform": [uniform, uniform], "priority": [priority, never]}).headline()
    assert h.first == (100, None)
    assert h.priority_heard is None
    assert not h.target_met


def test_run_reports_both_policies_as_json_and_svg(tmp_path: Path) -> None:
    result = run(_tiny_snips(tmp_path), Params(seeds=2, rounds=3, budget=10, seed_per_intent=2))
    data = json.loads(json.dumps(result.to_dict()))
    assert [len(runs) for runs in data["runs"].values()] == [2, 2]
    assert data["curves"]["uniform"]["heard"] == [4, 14, 24, 34]
    assert set(data["headline"]) >= {"uniform_final", "priority_heard", "ratio", "target_met"}
    root = ET.fromstring(render_svg(result))
    assert root.tag == f"{SVG}svg"
    series = {g.get("id"): g for g in root.iter(f"{SVG}g") if g.get("class") == "series"}
    assert set(series) == {"uniform", "priority"}
    for g in series.values():
        line = g.find(f"{SVG}polyline")
        assert line is not None
        assert len(line.get("points", "").split()) == 4
    labels = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "utterances heard" in labels
    assert "accuracy" in labels
    assert "priority" in labels
