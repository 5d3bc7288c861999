"""The stage tools on the command line, with their stable JSON."""

from __future__ import annotations

import json
from pathlib import Path

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
