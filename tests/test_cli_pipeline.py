"""The stage tools on the command line, with their stable JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from earmark.cli import app

runner = CliRunner()
EVALS = Path(__file__).resolve().parents[1] / "evals" / "pii"


def test_pii_detect_jsonl_in_and_out() -> None:
    lines = [
        {"id": "a", "text": "call jennifer on five five five oh one two three"},
        {"id": "b", "text": "play shake it off by taylor swift"},
    ]
    result = runner.invoke(app, ["pii", "detect"], input="\n".join(json.dumps(x) for x in lines) + "\n")
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert out[0]["id"] == "a" and out[0]["masked"] == "call [PERSON] on [PHONE]"
    assert [s["type"] for s in out[0]["spans"]] == ["PERSON", "PHONE"]
    first = out[0]["spans"][0]
    assert lines[0]["text"][first["start"] : first["end"]] == "jennifer"
    assert out[1]["spans"] == [] and out[1]["masked"] == lines[1]["text"]


def test_pii_detect_reports_bad_lines() -> None:
    result = runner.invoke(app, ["pii", "detect"], input='{"id": 1, "text": "text david"}\nnot json\n')
    assert result.exit_code == 1 and "line 2" in result.output
    assert json.loads(result.stdout.splitlines()[0])["masked"] == "text [PERSON]"


def test_eval_pii_prints_figures_per_type() -> None:
    result = runner.invoke(app, ["eval", "pii", str(EVALS / "spoken_test.jsonl"), "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)["spoken_test"]["types"]
    for kind in ("PHONE", "EMAIL", "CARD"):
        assert figures[kind]["recall"] >= 0.98 and figures[kind]["precision"] >= 0.9
    assert figures["PERSON"]["recall"] >= 0.9


def _clip(tmp_path: Path, text: str = "call jennifer on five five five one two three four") -> Path:
    from tests.factories import speech_bytes

    path = tmp_path / "clip.wav"
    path.write_bytes(speech_bytes(text))
    return path


def test_redact_bleeps_the_pii_and_reports_spans(tmp_path: Path) -> None:
    import numpy as np
    import soundfile as sf

    clip, out = _clip(tmp_path), tmp_path / "out.wav"
    result = runner.invoke(
        app,
        [
            "redact",
            str(clip),
            "--transcript",
            "call jennifer on five five five one two three four",
            "-o",
            str(out),
            "--mode",
            "silence",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["masked"] == "call [PERSON] on [PHONE]" and report["spans"]
    y, sr = sf.read(out, dtype="float32")
    assert sr == 16000
    for span in report["spans"]:
        assert span["start_s"] == span["start"] / 16000
        inner = y[span["start"] + 400 : span["end"] - 400]
        assert np.max(np.abs(inner)) < 1e-3  # silence where personal data was


def test_screen_routes_a_call_for_help(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["screen", str(_clip(tmp_path, "call the police")), "--transcript", "call the police now"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["route"] == "safety" and "emergency" in report["labels"] and report["reasons"]
    assert set(report["scores"]) >= {"screaming", "crying", "child_speaker"}


def test_anonymize_writes_a_clip_of_the_same_length(tmp_path: Path) -> None:
    import soundfile as sf

    clip, out = _clip(tmp_path), tmp_path / "anon.wav"
    result = runner.invoke(app, ["anonymize", str(clip), "-o", str(out), "--alpha", "0.8"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["method"] == "mcadams" and report["params"] == {"alpha": 0.8}
    assert sf.info(out).frames == sf.info(clip).frames


def test_anonymize_defaults_to_world_with_drawn_parameters(tmp_path: Path) -> None:
    import soundfile as sf

    clip, out = _clip(tmp_path), tmp_path / "anon.wav"
    result = runner.invoke(
        app, ["--home", str(tmp_path / "none"), "anonymize", str(clip), "-o", str(out), "--seed", "3"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["method"] == "world" and set(report["params"]) == {
        "f0",
        "spread",
        "warp",
        "tilt",
        "shape",
        "shape_db",
    }
    assert sf.info(out).frames == sf.info(clip).frames


@pytest.mark.parametrize("setting", ["world-natural", "world-auto", "trained"])
def test_anonymize_follows_every_anonymizer_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    """Without --method the setting decides, whichever WORLD variant it names."""
    clip, out = _clip(tmp_path), tmp_path / "anon.wav"
    monkeypatch.setenv("EARMARK_ANONYMIZER", setting)
    result = runner.invoke(app, ["--home", str(tmp_path / "none"), "anonymize", str(clip), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["method"] == setting


def test_anonymize_refuses_an_unknown_method(tmp_path: Path) -> None:
    clip, out = _clip(tmp_path), tmp_path / "anon.wav"
    result = runner.invoke(app, ["anonymize", str(clip), "-o", str(out), "--method", "pitchshift"])
    assert result.exit_code != 0 and "method must be one of world" in result.output
    assert not out.exists()


def test_eval_anonymization_names_what_is_wrong_with_the_folder(tmp_path: Path) -> None:
    result = runner.invoke(app, ["eval", "anonymization", str(tmp_path), "--no-asr"])
    assert result.exit_code != 0 and "manifest.csv" in result.output


def test_stage_tools_refuse_non_audio(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio" * 100)
    for args in (["screen", str(bad), "--transcript", "x"], ["anonymize", str(bad), "-o", str(tmp_path / "o.wav")]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1 and "not a readable audio file" in result.output
