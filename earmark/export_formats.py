"""Training-data formats the speech ecosystem reads, rendered from one list of export items (pure).

Every export folder keeps its items as `items.jsonl`; the format files are rendered from them, so
`earmark export prune` can drop erased clips and render again. Formats:

- `lhotse`: `recordings.jsonl` + `supervisions.jsonl` (Lhotse manifests; relative audio paths, load
  with `RecordingSet.from_file(...).with_path_prefix(folder)`).
- `nemo`: `nemo_manifest.jsonl` (`audio_filepath`, `duration`, `text`), paths relative to the folder.
- `hf`: `metadata.jsonl` with `file_name`, for Hugging Face `datasets`' `audiofolder` loader.
- `rasa`: `nlu.yml`, Rasa 3 training data; linked entities carry the catalog id as their value.
- `massive`: `massive.jsonl` in the MASSIVE layout (`utt`, `annot_utt` with `[slot : value]`), plus
  `slots` with catalog entity ids.
- `wakeword`: the wake-word team's answers for clips without speech (none the pipeline found speech in,
  none answered `background_speech` or `unclear`): `labels.csv` (`id`, `audio`,
  `duration`, `label`, `false_wake`) next to the audio, the layout keyword-spotting trainers read
  (openWakeWord's negative clips, a torchaudio or Hugging Face audio-classification folder).

Transcripts keep their redaction placeholders. In the NLU formats `[PHONE]` is written `<PHONE>`,
because square brackets are slot markup there.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import yaml

ASR_FORMATS = ("lhotse", "nemo", "hf")
NLU_FORMATS = ("rasa", "massive")
WAKE_FORMATS = ("wakeword",)
AUDIO_FORMATS = ASR_FORMATS + WAKE_FORMATS  # exports that carry audio
FORMATS = ASR_FORMATS + NLU_FORMATS + WAKE_FORMATS
# Wake-word answers that say something other than the wake word woke the device.
FALSE_WAKES = ("sound_alike", "media", "background_speech", "other_sound")
LANGUAGES = {"en": "English", "de": "German", "fr": "French", "es": "Spanish", "it": "Italian"}
PLACEHOLDER = re.compile(r"\[([A-Z_]+)\]")


@dataclass(frozen=True, slots=True)
class Item:
    """One reviewed clip as an export holds it. `id` is a pseudonym, never the customer's clip id.

    >>> Item("utt-1", "play halo", "en-US", intent="PlayMusic").nlu_text
    'play halo'
    """

    id: str
    text: str
    locale: str
    intent: str | None = None
    slots: list[dict[str, Any]] = field(default_factory=list)  # type, start, end, value, entity_id
    audio: str | None = None  # path relative to the export folder
    label: str | None = None  # wakeword: what woke the device (earmark.wakeword.LABELS)
    sample_rate: int | None = None
    num_samples: int | None = None

    @property
    def duration(self) -> float:
        return round((self.num_samples or 0) / (self.sample_rate or 1), 6)

    @property
    def nlu_text(self) -> str:
        return PLACEHOLDER.sub(r"<\1>", self.text)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> Item:
        return cls(**json.loads(line))


def _jsonl(rows: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def _marked(item: Item, mark: Any) -> str:
    """The NLU text with each slot wrapped by `mark(slot, surface)`; slots in text order."""
    text, out, pos = item.text, [], 0
    for slot in sorted(item.slots, key=lambda s: s["start"]):
        out.append(PLACEHOLDER.sub(r"<\1>", text[pos : slot["start"]]))
        out.append(mark(slot, text[slot["start"] : slot["end"]]))
        pos = slot["end"]
    out.append(PLACEHOLDER.sub(r"<\1>", text[pos:]))
    return "".join(out)


def render_lhotse(items: list[Item]) -> dict[str, str]:
    recordings, supervisions = [], []
    for it in items:
        recordings.append(
            {
                "id": it.id,
                "sources": [{"type": "file", "channels": [0], "source": it.audio}],
                "sampling_rate": it.sample_rate,
                "num_samples": it.num_samples,
                "duration": it.duration,
                "channel_ids": [0],
            }
        )
        supervisions.append(
            {
                "id": it.id,
                "recording_id": it.id,
                "start": 0.0,
                "duration": it.duration,
                "channel": 0,
                "text": it.text,
                "language": LANGUAGES.get(it.locale.split("-")[0], it.locale),
                "custom": {"locale": it.locale, "intent": it.intent},
            }
        )
    return {"recordings.jsonl": _jsonl(recordings), "supervisions.jsonl": _jsonl(supervisions)}


def render_nemo(items: list[Item]) -> dict[str, str]:
    rows = ({"audio_filepath": it.audio, "duration": it.duration, "text": it.text} for it in items)
    return {"nemo_manifest.jsonl": _jsonl(rows)}


def render_hf(items: list[Item]) -> dict[str, str]:
    rows = (
        {"file_name": it.audio, "id": it.id, "transcription": it.text, "locale": it.locale, "intent": it.intent or ""}
        for it in items
    )
    return {"metadata.jsonl": _jsonl(rows)}


def _rasa_slot(slot: dict[str, Any], surface: str) -> str:
    if slot.get("entity_id"):
        return f"[{surface}]" + json.dumps({"entity": slot["type"], "value": slot["entity_id"]})
    return f"[{surface}]({slot['type']})"


class _Literal(str):
    """A string YAML writes as a `|` block, as Rasa's own files write examples."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Literal, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", str(v), style="|"))


def render_rasa(items: list[Item]) -> dict[str, str]:
    by_intent: dict[str, list[str]] = {}
    for it in items:
        if it.intent:
            by_intent.setdefault(it.intent, []).append(_marked(it, _rasa_slot))
    nlu = [
        {"intent": intent, "examples": "".join(f"- {ex}\n" for ex in dict.fromkeys(examples))}
        for intent, examples in sorted(by_intent.items())
    ]

    for block in nlu:
        block["examples"] = _Literal(block["examples"])
    text = yaml.dump({"version": "3.1", "nlu": nlu}, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
    return {"nlu.yml": text}


def render_massive(items: list[Item]) -> dict[str, str]:
    rows = []
    for it in items:
        if not it.intent:
            continue
        rows.append(
            {
                "id": it.id,
                "locale": it.locale,
                "partition": "train",
                "scenario": it.intent.split("_")[0].lower(),
                "intent": it.intent,
                "utt": it.nlu_text,
                "annot_utt": _marked(it, lambda s, surface: f"[{s['type']} : {surface}]"),
                "slots": [
                    {"type": s["type"], "value": s["value"], "entity_id": s.get("entity_id")}
                    for s in sorted(it.slots, key=lambda s: s["start"])
                ],
            }
        )
    return {"massive.jsonl": _jsonl(rows)}


def render_wakeword(items: list[Item]) -> dict[str, str]:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["id", "audio", "duration", "label", "false_wake"])
    for it in items:
        w.writerow([it.id, it.audio, it.duration, it.label, int(it.label in FALSE_WAKES)])
    return {"labels.csv": out.getvalue()}


RENDERERS = {
    "lhotse": render_lhotse,
    "nemo": render_nemo,
    "hf": render_hf,
    "rasa": render_rasa,
    "massive": render_massive,
    "wakeword": render_wakeword,
}


def render(fmt: str, items: list[Item]) -> dict[str, str]:
    """File name -> content of format `fmt` for `items`."""
    return RENDERERS[fmt](items)
