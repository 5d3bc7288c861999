from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from sqlalchemy import select
from typer.testing import CliRunner

from earmark.cli import app
from earmark.config import load_settings
from earmark.demo import CONFUSIONS, build_demo, demo_policy
from earmark.manifest import read_manifest
from earmark.models import Clip
from earmark.types import Actor
from earmark.workspace import open_workspace


def test_demo_builds_a_working_workspace(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    result = CliRunner().invoke(app, ["--home", str(home), "demo", "--no-serve", "--seed", "3"])
    assert result.exit_code == 0, result.output
    for name in ("admin", "reviewer1", "reviewer2", "wakeword1"):
        assert name in result.output
    stats = json.loads(CliRunner().invoke(app, ["--home", str(home), "stats", "--json"]).stdout)
    assert stats["clips"]["total"] >= 200
    assert stats["accounts"]["by_consent"]["allow"] > 0 and stats["accounts"]["by_consent"]["deny"] > 0
    assert stats["queue"]["by_queue"]["general"]["queued"] > 20
    assert stats["queue"]["by_queue"]["safety"]["queued"] >= 1  # distressing requests are routed away
    # Accidental activations reach only the wake-word team (the demo's settings.toml says so).
    assert stats["queue"]["by_queue"]["wakeword"]["queued"] >= 1
    assert load_settings(home).no_speech_route == "wakeword"
    assert "pending" not in stats["clips"]["by_status"]  # --no-serve processes everything
    ws = open_workspace(load_settings(home))
    try:
        with ws.sessions() as s:
            clips = s.execute(select(Clip)).scalars().all()
    finally:
        ws.close()
    formats = {c.audio_format for c in clips}
    assert {"WAV", "FLAC", "OGG"} <= formats
    assert any(c.device_asr_text is None for c in clips)  # accidental activations
    wrong_words = set(CONFUSIONS.values())
    misheard = [c for c in clips if c.device_asr_text and wrong_words & set(c.device_asr_text.split())]
    assert len(misheard) > 10  # a weak device ASR gets some words wrong
    assert any(c.device_asr_text and c.device_asr_text.startswith("call") for c in clips)
    assert "OK" in CliRunner().invoke(app, ["--home", str(home), "audit", "verify"]).output
    again = CliRunner().invoke(app, ["--home", str(home), "demo", "--no-serve"])
    assert again.exit_code == 1 and "--reset" in again.output


def _clips_in_fresh_process(folder: Path, seed: int) -> Path:
    folder.mkdir()
    code = (
        "from pathlib import Path; from earmark.demo import write_demo_clips; "
        f"write_demo_clips(Path({str(folder)!r}), n_clips=12, seed={seed})"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return folder / "manifest.jsonl"


def test_demo_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    # espeak-ng keeps state between calls, so each build runs in a fresh process, as `earmark demo` does.
    a, b = tmp_path / "a", tmp_path / "b"
    ma = _clips_in_fresh_process(a, 5)
    mb = _clips_in_fresh_process(b, 5)
    assert ma.read_text() == mb.read_text()
    for line in read_manifest(ma):
        assert line.meta is not None and line.meta.audio is not None
        # Compare samples, not bytes: Ogg streams carry a random serial number.
        xa, _ = sf.read(a / line.meta.audio)
        xb, _ = sf.read(b / line.meta.audio)
        assert np.array_equal(xa, xb)
    drawn = []
    for home in (tmp_path / "h1", tmp_path / "h2"):
        build_demo(load_settings(home, blob_fsync=False), seed=5, n_clips=40, reset=False, process_limit=0)
        ws = open_workspace(load_settings(home))
        try:
            with ws.sessions() as s:
                drawn.append(sorted(s.execute(select(Clip.external_id).where(Clip.sampled_at.is_not(None))).scalars()))
        finally:
            ws.close()
    assert drawn[0] == drawn[1] and drawn[0]
    # The workspace keeps the demo's key: a later draw under the same policy agrees with the
    # demo's (a clip not drawn stays not drawn), instead of drawing more with another key.
    ws = open_workspace(load_settings(tmp_path / "h1"))
    try:
        again = ws.draw_sample(actor=Actor.cli(), policy=demo_policy(ws.settings), dry_run=True)
    finally:
        ws.close()
    assert again.drawn == 0, again
