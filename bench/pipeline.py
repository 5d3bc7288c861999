"""Pipeline speed: each stage in x real time, and whole clips per second per core.

Synthesized voice-assistant requests (the demo's generator), 16 kHz. Figures only; run with
    .venv/bin/python bench/pipeline.py [--clips 40] [--anonymizer world|trained|world-auto|mcadams|...]
Stage times are CPU seconds of this process (the machine may be shared).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from earmark.audio import AudioLimits, decode_mono, probe_audio
from earmark.config import Settings
from earmark.demo import write_demo_clips
from earmark.manifest import read_manifest
from earmark.pipeline import PipelineConfig, build_components, clip_rng, protect


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=40)
    choices = ["world", "trained", "world-gentle", "world-auto", "world-natural", "mcadams"]  # the settings
    ap.add_argument("--anonymizer", default="world", choices=choices)
    ap.add_argument("--no-device-text", action="store_true", help="transcribe every clip with Whisper")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        manifest = write_demo_clips(Path(tmp), n_clips=args.clips, seed=11)
        clips = []
        for line in read_manifest(manifest):
            assert line.meta is not None
            data = (manifest.parent / str(line.meta.audio)).read_bytes()
            text = None if args.no_device_text or not line.meta.device_asr else line.meta.device_asr.text
            clips.append((data, text, line.meta.clip_id or ""))
    parts = build_components(Settings(anonymizer=args.anonymizer))
    config = PipelineConfig()
    stage_ms: dict[str, float] = defaultdict(float)
    audio_s = 0.0
    cpu0 = time.process_time()
    decode_cpu = 0.0
    outcomes: dict[str, int] = defaultdict(int)
    routes: dict[str, int] = defaultdict(int)  # trained: converted, or world for a word or two
    for data, text, cid in clips:
        t = time.process_time()
        probe_audio(data, AudioLimits())
        x, sr = decode_mono(data)
        decode_cpu += time.process_time() - t
        audio_s += x.size / sr
        result = protect(x, sr, device_text=text, parts=parts, config=config, rng=clip_rng(b"bench", cid))
        outcomes[result.outcome] += 1
        for st in result.stages:
            if st.stage == "anonymize" and "route" in st.details:
                routes[str(st.details["route"])] += 1
        for st in result.stages:
            stage_ms[st.stage] += st.ms
    cpu = time.process_time() - cpu0
    print(f"{len(clips)} clips, {audio_s:.1f} s of audio; anonymizer={args.anonymizer}; outcomes {dict(outcomes)}")
    if routes:
        print(f"anonymizer routes {dict(routes)}")
    print(f"{'stage':<12}{'wall ms':>10}{'x real time':>14}")
    print(f"{'probe+decode':<12}{decode_cpu * 1000:>10.0f}{audio_s / max(decode_cpu, 1e-9):>14.0f}")
    for stage, ms in stage_ms.items():
        print(f"{stage:<12}{ms:>10.0f}{audio_s / max(ms / 1000, 1e-9):>14.0f}")
    print(f"whole pipeline: {len(clips) / cpu:.2f} clips/s per core ({audio_s / cpu:.1f}x real time, CPU time)")


if __name__ == "__main__":
    main()
