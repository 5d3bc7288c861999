"""The clip metadata format: one JSON object per line of a manifest or stream, or an upload's metadata.

Pure (no database): `earmark ingest`, the API and `earmark sample-stream` read lines with the same
rules, so a line the stream draws is a line ingest takes.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from earmark.errors import InvalidInput

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
ERASED_PREFIX = "erased:"  # an erased account's id becomes this plus a keyed hash; no live id may start so
LOCALE_PATTERN = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$"


def _not_erased(value: str) -> str:
    if value.startswith(ERASED_PREFIX):
        raise ValueError(f"may not start with {ERASED_PREFIX!r} (the mark of an erased account)")
    return value


def _plausible_time(value: datetime) -> datetime:
    # Year 1 with a positive offset cannot even be converted to UTC; a recording from before
    # 1970 is a device clock error, not a time to store. (Times ahead are kept: clocks and
    # test data run ahead, and sampling periods handle them.)
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range; give the recording time in UTC") from None
    if utc < datetime(1970, 1, 1, tzinfo=UTC):
        raise ValueError("must not be before 1970 (check the device's clock)")
    return value  # as given: the derived clip id uses it


# The field types, shared by ClipMeta and the stream's record so both check a value the same way.
Id = Annotated[str, Field(pattern=ID_PATTERN)]
AccountId = Annotated[str, Field(pattern=ID_PATTERN), AfterValidator(_not_erased)]
RecordedAt = Annotated[AwareDatetime, AfterValidator(_plausible_time)]
Locale = Annotated[str, Field(pattern=LOCALE_PATTERN)]
DeviceType = Annotated[str, Field(pattern=r"^[a-z0-9_-]{1,32}$")]
Confidence = Annotated[float, Field(ge=0.0, le=1.0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class DeviceASR(_Strict):
    text: str = Field(max_length=2000)
    confidence: Confidence | None = None
    alternatives: list[Annotated[str, Field(max_length=2000)]] = Field(default_factory=list, max_length=10)


class Slot(_Strict):
    type: str = Field(min_length=1, max_length=64)
    value: str = Field(max_length=500)


class DeviceNLU(_Strict):
    intent: str = Field(min_length=1, max_length=64)
    slots: list[Slot] = Field(default_factory=list, max_length=50)
    confidence: Confidence | None = None


class UpstreamDraw(_Strict):
    """The `sampling` object `earmark sample-stream` adds to a drawn line."""

    probability: float = Field(gt=0.0, le=1.0)
    reason: Literal["uniform", "priority", "wake_word"]  # wake_word: for the wake-word team only
    policy: str = Field(max_length=64)


class ClipMeta(_Strict):
    """Metadata of one clip, as a manifest line or the `metadata` part of an upload."""

    clip_id: Id | None = None
    account_id: AccountId
    device_id: Id
    recorded_at: RecordedAt
    locale: Locale
    audio: str | None = Field(None, max_length=1000)
    device_asr: DeviceASR | None = None
    device_nlu: DeviceNLU | None = None
    wake_score: Confidence | None = None
    device_type: DeviceType | None = None
    child_profile: bool = False
    sampling: UpstreamDraw | None = None


def describe_validation_error(exc: ValidationError, *, allowed: list[str] | None = None) -> str:
    """One line naming each bad field and what it needs. An unknown field is told the fields it
    may be: those of its object (`allowed` at the top level: default, every field of ClipMeta)."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "line"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "timezone_aware":
            msg = "must include a time zone, e.g. 2026-01-05T09:30:00+00:00"
        elif err["type"] == "extra_forbidden":
            msg = f"unknown field (allowed: {', '.join(_fields_at(err['loc'], allowed))})"
        elif err["type"] == "missing":
            msg = "required field is missing"
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


_NESTED: dict[str, type[BaseModel]] = {
    "device_asr": DeviceASR,
    "device_nlu": DeviceNLU,
    "slots": Slot,
    "sampling": UpstreamDraw,
}


def _fields_at(loc: tuple[int | str, ...], top: list[str] | None) -> list[str]:
    """The fields of the object holding the field at `loc`."""
    names = [p for p in loc[:-1] if isinstance(p, str)]
    if names and names[-1] in _NESTED:
        return list(_NESTED[names[-1]].model_fields)
    return top if top is not None else list(ClipMeta.model_fields)


def parse_meta(raw: Any, *, allowed: list[str] | None = None) -> ClipMeta:
    """Validate a decoded JSON object as ClipMeta, raising InvalidInput that names the fields."""
    if not isinstance(raw, dict):
        raise InvalidInput("expected a JSON object", field="metadata")
    try:
        return ClipMeta.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(describe_validation_error(exc, allowed=allowed)) from exc


def describe_json_error(exc: json.JSONDecodeError) -> str:
    """Where and why `exc.doc` is not JSON, in words: `column 7`, or `line 2, column 7` for text of
    several lines, and whether the text ended first (a line cut short)."""
    where = f"line {exc.lineno}, column {exc.colno}" if exc.lineno > 1 else f"column {exc.colno}"
    # json's messages "Unterminated string starting at" and "Invalid control character at" end in "at".
    msg = exc.msg.removesuffix(" at")
    msg = msg[:1].lower() + msg[1:]
    ended = ", where the text ends (is it cut short?)" if exc.pos >= len(exc.doc.rstrip()) else ""
    return f"not valid JSON: {msg} at {where}{ended}"


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def load_json_text(text: str | bytes, *, first: bool = True) -> Any:
    """Decode JSON text, given as str or as UTF-8 bytes, raising InvalidInput with the reason.

    A byte-order mark is skipped at the start of a file (`first`: this is its first line). Bytes
    are decoded as UTF-8 and nothing else (json.loads would guess UTF-16 or UTF-32 from zero bytes).
    NaN, Infinity and a lone surrogate escape ("\\ud800", which no database can store) are refused.
    """
    if isinstance(text, bytes):
        if first:
            text = text.removeprefix(codecs.BOM_UTF8)
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(
                f"not UTF-8 text ({exc.reason} at byte {exc.start + 1}); save the file as UTF-8"
            ) from None
    elif first:
        text = text.removeprefix("\ufeff")
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise InvalidInput(describe_json_error(exc)) from None
    except ValueError as exc:  # NaN, Infinity
        raise InvalidInput(f"not valid JSON: {exc}") from None
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("the text holds an invalid character (a lone surrogate)") from None
    return data


@dataclass(frozen=True, slots=True)
class ManifestLine:
    lineno: int
    meta: ClipMeta | None
    error: str | None


def read_manifest(path: Path) -> Iterator[ManifestLine]:
    """Yield each non-blank line of a JSONL manifest, parsed or with the reason it is bad.

    Read as bytes and decoded line by line: a line that is not UTF-8 is one bad line. (Decoding the
    file as text fails a whole chunk at once, and the lines before the bad byte were lost with it.)
    """
    with open(path, "rb") as fh:
        for lineno, data in enumerate(fh, 1):
            data = data.rstrip(b"\r\n")
            if not data.strip():
                continue
            try:
                meta = parse_meta(load_json_text(data, first=lineno == 1))
            except InvalidInput as exc:
                yield ManifestLine(lineno, None, str(exc))
                continue
            if meta.audio is None:
                yield ManifestLine(lineno, None, "audio: required field is missing")
                continue
            yield ManifestLine(lineno, meta, None)
