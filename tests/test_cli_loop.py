"""The learning loop from the command line: sample with a policy, sample-stream, then ingest what it drew."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import factories as f
from tests.test_cli import home, run  # noqa: F401  (fixture)

POLICY = """
rate = 0.5
cap_per_account = 3
[budget]
uniform = 0.5
priority = 0.5
[strata.device_type]
car = 1.0
[priority]
mean_score = 0.2
"""


def _lines(folder: Path, n: int) -> list[dict[str, object]]:
    lines = []
    for i in range(n):
        (folder / f"s{i}.wav").write_bytes(f.audio_bytes(0.3))
        lines.append(
            {
                "clip_id": f"st-{i:03d}",
                "account_id": f"acct-{i % 4}",
                "device_id": "d1",
                "recorded_at": f"2026-11-02T08:{i:02d}:00+00:00",
                "locale": "en-US",
                "audio": f"s{i}.wav",
                "device_type": "car" if i % 2 else "speaker",
                "device_asr": {"text": "what's the weather", "confidence": 0.3 if i % 3 == 0 else 0.95},
            }
        )
    return lines


def _allowed_lines(tmp_path: Path, n: int) -> tuple[Path, list[dict[str, object]]]:
    """A folder with `n` clips' metadata lines whose households allow review (the stream's field)."""
    folder = tmp_path / "in"
    folder.mkdir()
    lines = _lines(folder, n)
    for line in lines:
        line["human_review"] = "allow"
    return folder, lines


def _jsonl(lines: list[dict[str, object]]) -> str:
    return "".join(json.dumps(x) + "\n" for x in lines)


def _ingest_consenting(home: Path, tmp_path: Path) -> None:  # noqa: F811
    """24 clips of 4 households that allow review, ingested through the command line."""
    folder = tmp_path / "in"
    folder.mkdir()
    manifest = folder / "m.jsonl"
    manifest.write_text(_jsonl(_lines(folder, 24)))
    assert run(home, "ingest", str(manifest)).exit_code == 0
    for a in range(4):
        assert run(home, "consent", "set", f"acct-{a}", "--human-review", "allow").exit_code == 0


def test_sample_with_a_policy_dry_run_then_real(home: Path, tmp_path: Path) -> None:  # noqa: F811
    _ingest_consenting(home, tmp_path)
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    dry = run(home, "sample", "--policy", str(policy), "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    report = json.loads(dry.stdout)
    assert report["strata"]["device_type=car"]["eligible"] == 12
    assert report["drawn"] <= 12  # cap 3 x 4 households
    real = run(home, "sample", "--policy", str(policy))
    assert real.exit_code == 0
    assert f"sampled {report['drawn']}" in real.output and "device_type=car" in real.output
    stats = json.loads(run(home, "stats", "--json").stdout)
    assert stats["clips"]["by_status"]["pending"] == report["drawn"]


def test_the_workspace_household_cap_bounds_a_policy_files_draw(home: Path, tmp_path: Path) -> None:  # noqa: F811
    """sample_cap_per_account applied to --rate only: a policy file's own cap (3) overrode it (1)."""
    _ingest_consenting(home, tmp_path)
    (home / "policy.toml").write_text(POLICY)  # its own cap: 3 per household
    # A relative sampling_policy is the workspace's file, wherever the command runs.
    (home / "settings.toml").write_text((home / "settings.toml").read_text() + '\nsampling_policy = "policy.toml"\n')
    dry = run(home, "sample", "--dry-run", "--json", env={"EARMARK_SAMPLE_CAP_PER_ACCOUNT": "1"})
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["drawn"] <= 4  # one per household


def test_sample_refuses_a_bad_policy_naming_the_key(home: Path, tmp_path: Path) -> None:  # noqa: F811
    policy = tmp_path / "policy.yaml"
    policy.write_text("rate: 0.5\nbudget: {uniform: 0.5, priority: 0.2}\nstrata: {region: {eu: 0.1}}\n")
    result = run(home, "sample", "--policy", str(policy))
    assert result.exit_code == 1
    assert "budget: uniform (0.5) + priority (0.2) must sum to 1" in result.output
    assert "strata.region: unknown stratum" in result.output
    assert "no sampling policy" in run(home, "sample").output


def test_sample_stream_then_ingest_keeps_the_upstream_draw(home: Path, tmp_path: Path) -> None:  # noqa: F811
    folder, lines = _allowed_lines(tmp_path, 20)
    stream = folder / "stream.jsonl"
    # Bad lines are skipped with their number: broken JSON, bytes that are not UTF-8, a lone
    # surrogate escape that could not be written out.
    latin1 = json.dumps({**lines[0], "clip_id": "latin-1", "device_asr": {"text": "Björk"}}, ensure_ascii=False)
    stream.write_bytes(
        (_jsonl(lines) + "{broken\n").encode() + latin1.encode("latin-1") + b"\n"
        + json.dumps({**lines[0], "clip_id": "surrogate", "device_asr": {"text": "\ud800"}}).encode() + b"\n"
    )  # fmt: skip
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    drawn_file = folder / "drawn.jsonl"
    result = run(home, "sample-stream", "--policy", str(policy), "-i", str(stream), "-o", str(drawn_file))
    assert result.exit_code == 0, result.output
    assert all(f"line {n}: skipped" in result.output for n in (21, 22, 23)), result.output
    drawn = [json.loads(x) for x in drawn_file.read_text().splitlines()]
    assert 0 < len(drawn) <= 12
    assert f"read 23, drew {len(drawn)}" in result.output
    # Only drawn clips reach earmark; `human_review` is the stream's field, not a clip's: the drawn
    # lines go to ingest as they are.
    assert not any("human_review" in x for x in drawn)
    manifest = folder / "ingest.jsonl"
    manifest.write_text("".join(json.dumps(x) + "\n" for x in drawn))
    assert run(home, "ingest", str(manifest)).exit_code == 0
    for a in range(4):
        run(home, "consent", "set", f"acct-{a}", "--human-review", "allow", "--create")
    out = json.loads(run(home, "sample", "--rate", "0.001", "--json").stdout)
    assert out["drawn"] == len(drawn)  # the stream's decision stands, whatever this run's rate


def test_sample_stream_skips_lines_whose_hypotheses_have_the_wrong_types(home: Path, tmp_path: Path) -> None:  # noqa: F811
    """A confidence of "high", an alternative that is a number or an intent that is a list crashed
    the draw after it had written lines."""
    base = {"account_id": "a", "recorded_at": "2026-11-02T08:00:00+00:00", "human_review": "allow"}
    lines = [
        {**base, "clip_id": "b1", "device_asr": {"confidence": "high"}},
        {**base, "clip_id": "b2", "device_asr": {"text": "hi", "alternatives": [5]}},
        {**base, "clip_id": "b3", "device_nlu": {"intent": ["MakeCall"]}},
        {**base, "clip_id": "g1", "device_asr": {"text": "hi", "confidence": 0.3}},
    ]
    policy = tmp_path / "policy.toml"
    policy.write_text("rate = 1.0\ncap_per_account = 5\n")
    result = run(home, "sample-stream", "--policy", str(policy), input=_jsonl(lines))
    assert result.exit_code == 0, result.output
    assert [json.loads(x)["clip_id"] for x in result.stdout.splitlines()] == ["g1"]
    assert all(f"line {n}: skipped" in result.output for n in (1, 2, 3))


def test_sample_stream_checks_lines_as_ingest_does_draws_a_clip_once_and_counts_exclusions(
    home: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Values ingest refuses were drawn and took a household's cap slot, a repeated clip id was drawn
    twice, and the summary left out the lines the policy excluded."""
    base = {"account_id": "a", "recorded_at": "2026-11-02T08:00:00+00:00", "human_review": "allow"}
    lines = [
        {**base, "clip_id": "bad1", "wake_score": 3},
        {**base, "clip_id": "bad2", "wake_score": -4},
        {**base, "clip_id": "bad3", "locale": "NOT A LOCALE"},
        {**base, "clip_id": "bad4", "device_type": "Car With Spaces"},
        {**base, "clip_id": "g1", "locale": "en-GB", "wake_score": 0.9},
        {**base, "clip_id": "g1", "locale": "en-GB", "wake_score": 0.9},
        {**base, "clip_id": "no-consent", "human_review": "deny"},
        {**base, "clip_id": "child", "child_profile": True},
        {**base, "clip_id": "woke", "wake_score": 0.1},
        {**base, "clip_id": "g2"},
    ]
    policy = tmp_path / "policy.toml"
    policy.write_text("rate = 1.0\ncap_per_account = 2\n")
    result = run(home, "sample-stream", "--policy", str(policy), input=_jsonl(lines))
    assert result.exit_code == 0, result.output
    assert [json.loads(x)["clip_id"] for x in result.stdout.splitlines() if x.startswith("{")] == ["g1", "g2"]
    assert "line 1: skipped: wake_score: Input should be less than or equal to 1" in result.output
    assert all(f"line {n}: skipped" in result.output for n in (2, 3, 4, 6)), result.output
    assert "line 6: skipped: clip_id g1 was drawn on an earlier line" in result.output
    assert (
        "read 10, drew 2, 0 held back by the per-account cap, "
        "excluded: accidental_activation 1, child_profile 1, consent 1; "
        "4 bad lines skipped, 1 repeated clip ids skipped"
    ) in result.output


def test_sample_stream_reads_stdin_and_writes_stdout(home: Path, tmp_path: Path) -> None:  # noqa: F811
    _folder, lines = _allowed_lines(tmp_path, 6)
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    result = run(home, "sample-stream", "--policy", str(policy), input=_jsonl(lines) + "not json\n")
    assert result.exit_code == 0, result.output
    drawn = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    assert drawn and all("sampling" in x for x in drawn) and "line 7: skipped" in result.output


def test_eval_sampling_prints_both_policies_and_writes_the_chart(tmp_path: Path) -> None:
    from tests.conftest import SHARED_DATA

    data = SHARED_DATA / "snips-nlu-benchmark" / "2017-06-custom-intent-engines"
    if not data.is_dir():
        pytest.skip(f"Snips benchmark not found at {data} (set EARMARK_SHARED_DATA)")
    svg = tmp_path / "chart.svg"
    args = ["eval", "sampling", str(data), "--seeds", "1", "--rounds", "3", "--budget", "40", "--svg", str(svg)]
    result = run(tmp_path / "unused", *args)
    assert result.exit_code == 0, result.output
    assert (
        "uniform" in result.output and "priority" in result.output and "heard_priority / heard_uniform" in result.output
    )
    assert svg.read_text().startswith("<svg")
    bad = run(tmp_path / "unused", "eval", "sampling", str(tmp_path), "--seeds", "1")
    assert bad.exit_code == 1 and "error:" in bad.output


def test_sample_stream_in_batches_keeps_the_cap_across_runs_with_a_state_file(
    home: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    folder, lines = _allowed_lines(tmp_path, 20)
    policy = tmp_path / "policy.toml"
    policy.write_text("rate = 1.0\ncap_per_account = 2\n")
    whole, first, second = folder / "whole.jsonl", folder / "a.jsonl", folder / "b.jsonl"
    whole.write_text(_jsonl(lines))
    first.write_text(_jsonl(lines[:6]))
    second.write_text(_jsonl(lines[6:]))
    one = run(home, "sample-stream", "--policy", str(policy), "-i", str(whole), "-o", str(folder / "one.jsonl"))
    assert one.exit_code == 0 and "drew 8, 12 held back by the per-account cap" in one.output
    state = tmp_path / "caps.json"
    for part in (first, second):
        result = run(
            home,
            "sample-stream",
            "--policy",
            str(policy),
            "-i",
            str(part),
            "-o",
            str(part) + ".out",
            "--state",
            str(state),
        )
        assert result.exit_code == 0, result.output
    batched = [
        json.loads(x)["clip_id"] for p in (first, second) for x in Path(str(p) + ".out").read_text().splitlines()
    ]
    assert batched == [json.loads(x)["clip_id"] for x in (folder / "one.jsonl").read_text().splitlines()]
    # Without the state the second batch would draw up to the cap again.
    again = run(home, "sample-stream", "--policy", str(policy), "-i", str(second), "-o", str(folder / "x.jsonl"))
    assert "drew 8" in again.output
    saved = state.read_text()
    assert "acct-" not in saved  # households are keyed pseudonyms in the state file
    assert sum(n for p in json.loads(saved)["periods"].values() for n in p.values()) == 8
    # A damaged state file is refused with the reason, and left as it was.
    state.write_text('{"version": 1, "periods": {"x": {}}}')
    bad = run(home, "sample-stream", "--policy", str(policy), "-i", str(second), "--state", str(state))
    assert bad.exit_code == 1 and "cap state: bad period 'x'" in bad.output
    assert state.read_text() == '{"version": 1, "periods": {"x": {}}}'


def test_accidental_activations_drawn_upstream_for_the_wake_word_team_stay_the_teams(
    home: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    folder, lines = _allowed_lines(tmp_path, 8)
    for line in lines:
        line["wake_score"] = 0.2  # under min_wake_score: accidental activations
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY.replace("cap_per_account = 3", "cap_per_account = 3\nwake_word_rate = 1.0"))
    result = run(home, "sample-stream", "--policy", str(policy), input=_jsonl(lines))
    assert result.exit_code == 0, result.output
    drawn = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    assert len(drawn) == 8 and {x["sampling"]["reason"] for x in drawn} == {"wake_word"}
    manifest = folder / "ingest.jsonl"
    manifest.write_text(_jsonl(drawn))
    assert run(home, "ingest", str(manifest)).exit_code == 0, "ingest takes the wake_word reason"
    for a in range(4):
        run(home, "consent", "set", f"acct-{a}", "--human-review", "allow")
    # A database draw whose policy draws nothing for the team leaves them out: its policy decides.
    plain = json.loads(run(home, "sample", "--rate", "1.0", "--json").stdout)
    assert (plain["drawn"], plain["excluded"]) == (0, {"accidental_activation": 8})
    out = json.loads(run(home, "sample", "--policy", str(policy), "--json").stdout)
    assert (out["eligible"], out["wake_word"], out["drawn"]) == (0, 8, 8)  # none a review candidate
