"""Shared by the benches that fill a workspace with bulk SQL rows (no audio behind them)."""

# The stored-audio columns of a 2 s, 16 kHz mono PCM_16 WAV: what ingest would have recorded.
WAV_2S = {
    "audio_format": "WAV",
    "audio_subtype": "PCM_16",
    "sample_rate": 16000,
    "channels": 1,
    "num_samples": 32000,
    "size_bytes": 64044,
}
