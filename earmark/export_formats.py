"""Training-data formats the speech ecosystem reads, rendered from one list of export items (pure).

Every export folder keeps its items as `items.jsonl`; the format files are rendered from them, so
`earmark export prune` can drop erased clips and render again. Formats:

- `lhotse`: `recordings_{split}.jsonl` + `supervisions_{split}.jsonl` (Lhotse manifests; relative audio paths, load
  with `RecordingSet.from_file(...).with_path_prefix(folder)`).
- `nemo`: `{split}_manifest.jsonl` (`audio_filepath`, `duration`, `text`), paths relative to the folder.
- `hf`: `{train,validation,test}/metadata.jsonl` with `file_name`, for Hugging Face `datasets`' `audiofolder` loader.
- `rasa`: `{split}/nlu.yml`, Rasa 3 training data; linked entities carry the catalog id as their value.
- `massive`: `massive.jsonl` in the MASSIVE layout (`utt`, `annot_utt` with `[slot : value]`), plus
  `slots` with catalog entity ids.
- `wakeword`: the wake-word team's answers for clips without speech (none the pipeline found speech in,
  none answered `background_speech` or `unclear`): `labels.csv` (`id`, `audio`,
  `duration`, `label`, `false_wake`) next to the audio, the layout keyword-spotting trainers read
  (openWakeWord's negative clips, a torchaudio or Hugging Face audio-classification folder).

Transcripts keep their redaction placeholders. In the NLU formats `[PHONE]` is written `<PHONE>`,
because square brackets are slot markup there.

Each item carries its split (`train`, `dev`, `test`), drawn per household by a keyed hash
(`split_of`), and each format writes it its own way: one Lhotse or NeMo manifest per split,
`train/`, `validation/`, `test/` folders for `audiofolder`, a Rasa `nlu.yml` per split folder,
MASSIVE's `partition`, a `split` column in `labels.csv`. Items written before exports had splits
(`split` None) keep the single-file layout they were exported in, so a prune does not move files a
training job points at.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import posixpath
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import yaml

from earmark.errors import InvalidInput

ASR_FORMATS = ("lhotse", "nemo", "hf")
NLU_FORMATS = ("rasa", "massive")
WAKE_FORMATS = ("wakeword",)
AUDIO_FORMATS = ASR_FORMATS + WAKE_FORMATS  # exports that carry audio
FORMATS = ASR_FORMATS + NLU_FORMATS + WAKE_FORMATS
# Wake-word answers that say something other than the wake word woke the device.
FALSE_WAKES = ("sound_alike", "media", "background_speech", "other_sound")
LANGUAGES = {"en": "English", "de": "German", "fr": "French", "es": "Spanish", "it": "Italian"}
PLACEHOLDER = re.compile(r"\[([A-Z_]+)\]")
SPLITS = ("train", "dev", "test")
DEFAULT_SPLIT = "80/10/10"


def parse_split(spec: str) -> tuple[int, int, int] | None:
    """`--split` as percentages of households for train/dev/test; `none` puts everything in train.

    >>> parse_split("80/10/10"), parse_split("none")
    ((80, 10, 10), None)
    """
    if spec.strip().lower() == "none":
        return None
    parts = spec.split("/")
    if len(parts) != 3 or not all(p.strip().isdigit() for p in parts) or sum(int(p) for p in parts) != 100:
        raise InvalidInput(
            f"{spec!r} is not a split: give train/dev/test percentages that add up to 100 (e.g. 80/10/10), or none",
            field="split",
        )
    train, dev, test = (int(p) for p in parts)
    return train, dev, test


def split_of(secret: bytes, household: str, ratio: tuple[int, int, int] | None) -> str:
    """The split every clip of `household` (an account id) goes to: a keyed hash, so a household
    never crosses splits, keeps its split in every export made with the same ratio, and nothing
    in the export says which clips share a household."""
    if ratio is None:
        return "train"
    digest = hmac.new(secret, f"export-split|{household}".encode(), hashlib.sha256).digest()
    point = int.from_bytes(digest[:8], "big") % 10_000 / 100  # in [0, 100), steps of 0.01
    if point < ratio[0]:
        return "train"
    return "dev" if point < ratio[0] + ratio[1] else "test"


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
    split: str | None = None  # train | dev | test; None: exported before exports had splits
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


def _by_split(items: list[Item]) -> dict[str | None, list[Item]]:
    """Items grouped by split, in split order (None, an export made before splits, first). No
    items at all is an empty train split, so a pruned-empty export still has its files."""
    if not items:
        return {"train": []}
    groups: dict[str | None, list[Item]] = {}
    for split in (None, *SPLITS):
        chosen = [it for it in items if it.split == split]
        if chosen:
            groups[split] = chosen
    return groups


HF_FOLDERS = {"train": "train", "dev": "validation", "test": "test"}  # names `audiofolder` reads as splits


def audio_path(fmt: str, item: Item) -> str:
    """Where `item`'s audio goes in an export of `fmt`, relative to the folder: `audiofolder` finds
    splits by folder, so its audio sits in the split's folder."""
    if fmt == "hf" and item.split is not None:
        return f"{HF_FOLDERS[item.split]}/audio/{item.id}.wav"
    return f"audio/{item.id}.wav"


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
    files: dict[str, str] = {}
    for split, chosen in _by_split(items).items():
        suffix = f"_{split}" if split else ""  # Lhotse's recipes name them recordings_train.jsonl(.gz)
        recordings, supervisions = _lhotse(chosen)
        files[f"recordings{suffix}.jsonl"] = recordings
        files[f"supervisions{suffix}.jsonl"] = supervisions
    return files


def _lhotse(items: list[Item]) -> tuple[str, str]:
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
    return _jsonl(recordings), _jsonl(supervisions)


def render_nemo(items: list[Item]) -> dict[str, str]:
    files = {}
    for split, chosen in _by_split(items).items():
        rows = ({"audio_filepath": it.audio, "duration": it.duration, "text": it.text} for it in chosen)
        files[f"{split}_manifest.jsonl" if split else "nemo_manifest.jsonl"] = _jsonl(rows)
    return files


def render_hf(items: list[Item]) -> dict[str, str]:
    files = {}
    for split, chosen in _by_split(items).items():
        folder = HF_FOLDERS[split] if split else "."
        rows = (
            {
                "file_name": posixpath.relpath(it.audio or "", folder),  # relative to its metadata file
                "id": it.id,
                "transcription": it.text,
                "locale": it.locale,
                "intent": it.intent or "",
            }
            for it in chosen
        )
        files[posixpath.join(folder, "metadata.jsonl") if split else "metadata.jsonl"] = _jsonl(rows)
    return files


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
    # Rasa training data has no split field, and `rasa train` reads every file under its data
    # folder: one folder per split (`rasa train --data train`, `rasa test nlu --nlu test`).
    return {f"{split}/nlu.yml" if split else "nlu.yml": _rasa(chosen) for split, chosen in _by_split(items).items()}


def _rasa(items: list[Item]) -> str:
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
    return yaml.dump({"version": "3.1", "nlu": nlu}, Dumper=_Dumper, sort_keys=False, allow_unicode=True)


def render_massive(items: list[Item]) -> dict[str, str]:
    rows = []
    for it in items:
        if not it.intent:
            continue
        rows.append(
            {
                "id": it.id,
                "locale": it.locale,
                "partition": it.split or "train",
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
    w.writerow(["id", "audio", "duration", "label", "false_wake", "split"])
    for it in items:
        w.writerow([it.id, it.audio, it.duration, it.label, int(it.label in FALSE_WAKES), it.split or "train"])
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
