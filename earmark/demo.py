"""`earmark demo`: a complete workspace from nothing but the installed package.

Synthesizes voice-assistant requests with espeak-ng (several voices, pitches and speeds, light room
noise), writes them as WAV/FLAC/OGG files with a manifest, ingests them through the same path as
`earmark ingest`, records consent (most allow, some deny, some never said), samples, and creates
demo users.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import SecretStr
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from earmark import auth
from earmark.audio import encode, resample
from earmark.catalog import import_catalog, import_inventory
from earmark.config import SETTINGS_FILE, Settings
from earmark.consent import set_consent
from earmark.errors import ConfigError
from earmark.manifest import read_manifest
from earmark.pipeline import pending_clip_ids
from earmark.sampling import draw_sample
from earmark.sampling_policy import SamplingPolicy, load_policy
from earmark.synth import VARIANTS, synthesize
from earmark.types import Actor, Consent, Role
from earmark.workspace import init_workspace, sampling_key

TARGET_RATE = 16_000

ARTISTS_SONGS = [
    ("taylor swift", "shake it off"),
    ("ed sheeran", "shape of you"),
    ("adele", "rolling in the deep"),
    ("the beatles", "hey jude"),
    ("billie eilish", "bad guy"),
    ("queen", "bohemian rhapsody"),
    ("coldplay", "yellow"),
    ("bruno mars", "uptown funk"),
    ("dua lipa", "levitating"),
    ("fleetwood mac", "dreams"),
    ("beyonce", "halo"),
    ("the weeknd", "blinding lights"),
]
CITIES = ["boston", "seattle", "london", "chicago", "denver", "austin", "dublin", "toronto", "tulsa"]
ITEMS = ["milk", "eggs", "bread", "coffee", "apples", "olive oil", "paper towels", "bananas", "rice"]
NAMES = ["jennifer", "david", "maria", "james", "sarah", "michael", "emma", "daniel", "olivia", "robert"]
MESSAGES = ["i'm running late", "dinner is ready", "call me back", "see you at six", "i'm on my way"]
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
# Rare, distressing requests: the pipeline must route these to the restricted safety queue.
SENSITIVE = [
    "help me somebody please help",
    "call the police he is hitting me",
    "call an ambulance she's not breathing",
]
BACKGROUND = [
    "and then she told me the meeting was moved to thursday",
    "no i said we should leave before the traffic gets bad",
    "did you see what happened on the news last night",
]
# Misrecognitions a weak device ASR makes, applied to a share of hypotheses.
CONFUSIONS = {
    "taylor": "tailor",
    "swift": "swiss",
    "four": "for",
    "two": "to",
    "eight": "ate",
    "weather": "whether",
    "timer": "time",
    "milk": "mark",
    "call": "cool",
    "text": "next",
    "queen": "green",
    "tulsa": "tulsi",
    "sheeran": "sharon",
    "eggs": "legs",
}
DEVICE_TYPES = ["speaker", "phone", "car"]
INTENTS = ["PlayMusic", "GetWeather", "SetTimer", "SetAlarm", "AddToShoppingList", "MakeCall", "SendMessage"]


@dataclass(frozen=True, slots=True)
class Utterance:
    text: str
    intent: str | None
    slots: list[dict[str, str]]
    kind: str = "speech"  # speech | silence | noise | background


@dataclass(frozen=True, slots=True)
class DemoLogin:
    username: str
    role: str
    password: str


def spoken_phone(rng: np.random.Generator) -> tuple[str, str]:
    """A US-style phone number as people say it: digits as words, 'oh' for zero, 'double'."""
    digits = "555" + "".join(str(d) for d in rng.integers(0, 10, size=7))
    words: list[str] = []
    i = 0
    while i < len(digits):
        d = digits[i]
        word = "oh" if d == "0" and rng.random() < 0.6 else DIGITS[int(d)]
        if i + 1 < len(digits) and digits[i + 1] == d and rng.random() < 0.5:
            words += ["double", word]
            i += 2
            continue
        words.append(word)
        i += 1
    return digits, " ".join(words)


def make_utterance(rng: np.random.Generator) -> Utterance:
    r = rng.random()
    if r < 0.05:
        kind = ["silence", "noise", "background"][int(rng.integers(0, 3))]
        text = str(rng.choice(BACKGROUND)) if kind == "background" else ""
        return Utterance(text, None, [], kind)
    if r < 0.09:
        return Utterance(str(rng.choice(SENSITIVE)), "MakeCall", [])
    choice = int(rng.integers(0, 7))
    if choice == 0:
        artist, song = ARTISTS_SONGS[int(rng.integers(0, len(ARTISTS_SONGS)))]
        form = int(rng.integers(0, 3))
        if form == 0:
            return Utterance(
                f"play {song} by {artist}",
                "PlayMusic",
                [{"type": "song", "value": song}, {"type": "artist", "value": artist}],
            )
        if form == 1:
            return Utterance(f"play some {artist}", "PlayMusic", [{"type": "artist", "value": artist}])
        return Utterance(f"put on {song}", "PlayMusic", [{"type": "song", "value": song}])
    if choice == 1:
        city = str(rng.choice(CITIES))
        form = int(rng.integers(0, 3))
        if form == 0:
            return Utterance(f"what's the weather in {city}", "GetWeather", [{"type": "city", "value": city}])
        if form == 1:
            return Utterance(
                f"will it rain tomorrow in {city}",
                "GetWeather",
                [{"type": "city", "value": city}, {"type": "date", "value": "tomorrow"}],
            )
        return Utterance("how cold is it outside", "GetWeather", [])
    if choice == 2:
        n = str(rng.choice(["two", "five", "ten", "fifteen", "twenty", "forty five"]))
        return Utterance(f"set a timer for {n} minutes", "SetTimer", [{"type": "duration", "value": f"{n} minutes"}])
    if choice == 3:
        t = str(rng.choice(["six thirty", "seven am", "eight fifteen", "noon"]))
        return Utterance(f"wake me up at {t}", "SetAlarm", [{"type": "time", "value": t}])
    if choice == 4:
        item = str(rng.choice(ITEMS))
        form = int(rng.integers(0, 2))
        text = f"add {item} to my shopping list" if form == 0 else f"put {item} on the list"
        return Utterance(text, "AddToShoppingList", [{"type": "item", "value": item}])
    if choice == 5:
        name = str(rng.choice(NAMES))
        form = int(rng.integers(0, 3))
        if form == 0:
            return Utterance(f"call {name}", "MakeCall", [{"type": "contact", "value": name}])
        if form == 1:
            return Utterance(f"call {name} on her mobile", "MakeCall", [{"type": "contact", "value": name}])
        _, spoken = spoken_phone(rng)
        return Utterance(f"call {spoken}", "MakeCall", [{"type": "phone_number", "value": spoken}])
    name = str(rng.choice(NAMES))
    msg = str(rng.choice(MESSAGES))
    if rng.random() < 0.3:
        _, spoken = spoken_phone(rng)
        return Utterance(
            f"text {spoken} {msg}",
            "SendMessage",
            [{"type": "phone_number", "value": spoken}, {"type": "message", "value": msg}],
        )
    return Utterance(
        f"text {name} {msg}",
        "SendMessage",
        [{"type": "contact", "value": name}, {"type": "message", "value": msg}],
    )


def device_hypothesis(
    utt: Utterance, rng: np.random.Generator
) -> tuple[dict[str, Any] | None, dict[str, Any] | None, float]:
    """What a weak on-device model would have said: sometimes wrong, as a real one is."""
    if utt.kind in ("silence", "noise"):
        return None, None, float(rng.uniform(0.5, 0.62))
    words = utt.text.split()
    if rng.random() < 0.3:
        words = [CONFUSIONS.get(w, w) if rng.random() < 0.7 else w for w in words]
    text = " ".join(words)
    asr_conf = float(rng.uniform(0.55, 0.98)) if text != utt.text else float(rng.uniform(0.8, 0.99))
    asr = {"text": text, "confidence": round(asr_conf, 3)}
    if utt.intent is None:
        return asr, None, float(rng.uniform(0.55, 0.7))
    intent = utt.intent
    if rng.random() < 0.1:
        intent = str(rng.choice([i for i in INTENTS if i != utt.intent]))
    nlu = {"intent": intent, "slots": utt.slots, "confidence": round(float(rng.uniform(0.5, 0.99)), 3)}
    return asr, nlu, float(rng.uniform(0.7, 0.99))


def render_audio(utt: Utterance, rng: np.random.Generator) -> np.ndarray:
    """Speech (or an accidental activation) at 16 kHz with a little room noise."""
    if utt.kind == "silence":
        x = np.zeros(int(TARGET_RATE * rng.uniform(1.0, 2.5)), dtype=np.float32)
    elif utt.kind == "noise":
        n = int(TARGET_RATE * rng.uniform(1.0, 2.5))
        x = np.cumsum(rng.normal(0, 1, n)).astype(np.float32)
        x = (x - np.convolve(x, np.ones(200) / 200, mode="same")).astype(np.float32)
        x = 0.2 * x / (np.abs(x).max() + 1e-9)
    else:
        voice = "en-us" if rng.random() < 0.7 else "en"
        syn = synthesize(
            utt.text,
            voice=voice,
            variant=str(rng.choice(VARIANTS)),
            rate=int(rng.integers(140, 200)),
            pitch=int(rng.integers(25, 75)),
        )
        x = resample(syn.samples, syn.sample_rate, TARGET_RATE)
        if utt.kind == "background":
            x = 0.15 * x  # distant speech, not addressed to the assistant
        lead = np.zeros(int(TARGET_RATE * rng.uniform(0.15, 0.4)), dtype=np.float32)
        tail = np.zeros(int(TARGET_RATE * rng.uniform(0.2, 0.5)), dtype=np.float32)
        x = np.concatenate([lead, x * float(rng.uniform(0.5, 0.9)), tail])
    # A generator of its own, so metadata drawn after this clip does not depend on its length.
    noise_rng = np.random.default_rng(int(rng.integers(0, 2**63)))
    noise = noise_rng.normal(0, float(rng.uniform(0.001, 0.006)), x.size).astype(np.float32)
    return np.clip(x + noise, -1, 1).astype(np.float32)


def write_demo_clips(folder: Path, *, n_clips: int, seed: int, console: Console | None = None) -> Path:
    """Synthesize `n_clips` clips into `folder` with a manifest.jsonl; returns the manifest path."""
    rng = np.random.default_rng(seed)
    n_accounts = max(4, n_clips // 4)
    accounts = [f"acct-{i:04d}" for i in range(n_accounts)]
    devices = {a: [f"dev-{a[5:]}-{j}" for j in range(1 + int(rng.integers(0, 2)))] for a in accounts}
    base = datetime(2026, 11, 1, tzinfo=UTC)
    # Its own generator, so adding these fields did not change the clips themselves.
    meta_rng = np.random.default_rng(seed + 1)
    lines = []
    columns = (TextColumn("synthesize"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console or Console(stderr=True), transient=True) as progress:
        task = progress.add_task("synthesize", total=n_clips)
        for i in range(n_clips):
            utt = make_utterance(rng)
            account = accounts[int(rng.integers(0, n_accounts))]
            device = devices[account][int(rng.integers(0, len(devices[account])))]
            fmt = str(rng.choice(["WAV", "WAV", "WAV", "WAV", "FLAC", "OGG"]))
            ext = {"WAV": "wav", "FLAC": "flac", "OGG": "ogg"}[fmt]
            audio = render_audio(utt, rng)
            name = f"clip-{i:05d}.{ext}"
            (folder / name).write_bytes(encode(audio, TARGET_RATE, fmt))
            asr, nlu, wake = device_hypothesis(utt, rng)
            recorded = base + timedelta(seconds=int(rng.integers(0, 14 * 86400)))
            line: dict[str, Any] = {
                "clip_id": f"demo-{seed}-{i:05d}",
                "account_id": account,
                "device_id": device,
                "recorded_at": recorded.isoformat(),
                "locale": "en-US" if rng.random() < 0.8 else "en-GB",
                "audio": name,
                "wake_score": round(wake, 3),
                "device_type": str(meta_rng.choice(DEVICE_TYPES, p=[0.6, 0.25, 0.15])),
            }
            if meta_rng.random() < 0.03:
                line["child_profile"] = True
            if asr is not None:
                if asr["confidence"] < 0.8 and meta_rng.random() < 0.5:
                    # An uncertain device also reports a runner-up hypothesis.
                    words = asr["text"].split()
                    words[int(meta_rng.integers(0, len(words)))] = str(meta_rng.choice(["the", "a", "to", "uh"]))
                    asr["alternatives"] = [" ".join(words)]
                line["device_asr"] = asr
            if nlu is not None:
                line["device_nlu"] = nlu
            lines.append(json.dumps(line))
            progress.advance(task)
    manifest = folder / "manifest.jsonl"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest


DEMO_USERS = [
    ("admin", Role.admin),
    ("reviewer1", Role.reviewer),
    ("reviewer2", Role.reviewer),
    ("senior1", Role.senior),
    ("safety1", Role.safety),
    ("wakeword1", Role.wakeword),
    ("auditor1", Role.auditor),
]
DEMO_SETTINGS = """
# The demo sends clips without speech to the wake-word team's queue (log in as wakeword1).
no_speech_route = "wakeword"
"""


DEMO_KEY_SETTING = """
# The demo's draw key, from its seed, so its draws can be made again. A real workspace keeps its key
# out of this file (EARMARK_SAMPLING_KEY) or leaves it unset (derived from secret.key).
sampling_key = "{key}"
"""


def demo_policy(settings: Settings) -> SamplingPolicy:
    """The shipped demo policy, with the workspace's household cap."""
    policy = load_policy(Path(str(resources.files("earmark") / "data" / "sampling-policy.toml")))
    return policy.model_copy(update={"cap_per_account": settings.sample_cap_per_account})


def build_demo(
    settings: Settings,
    *,
    seed: int,
    n_clips: int,
    reset: bool,
    console: Console | None = None,
    process_limit: int | None = None,
) -> list[DemoLogin]:
    """Build the demo workspace at settings.home; returns the logins it created.

    Sampled clips then go through the safe-to-hear pipeline: all of them, or the first
    `process_limit` (the server's background worker does the rest while reviewers work).
    """
    console = console or Console(stderr=True)
    home = settings.home
    if home.exists() and any(home.iterdir()):
        if not reset:
            raise ConfigError(f"{home} already holds a workspace; pass --reset to rebuild it or choose another --home")
        shutil.rmtree(home)
    rng = np.random.default_rng(seed + 1)
    logins: list[DemoLogin] = []
    admin_password = auth.generate_password()
    demo_route = "EARMARK_NO_SPEECH_ROUTE" not in os.environ  # else the caller chose
    if demo_route:
        settings = settings.model_copy(update={"no_speech_route": "wakeword"})
    # The demo draws with a key from its seed (the same seed draws the same clips), and the
    # workspace keeps that key: a later `earmark sample` under the same policy then agrees with the
    # demo's draw (a clip not drawn stays not drawn) instead of drawing again with another key.
    demo_key = (
        None if settings.sampling_key is not None else hashlib.sha256(f"earmark-demo-{seed}".encode()).hexdigest()
    )
    if demo_key is not None:
        settings = settings.model_copy(update={"sampling_key": SecretStr(demo_key)})
    ws, _ = init_workspace(settings, admin_username="admin", admin_password=admin_password)
    with (home / SETTINGS_FILE).open("a", encoding="utf-8") as fh:
        if demo_route:
            fh.write(DEMO_SETTINGS)
        if demo_key is not None:
            fh.write(DEMO_KEY_SETTING.format(key=demo_key))
    logins.append(DemoLogin("admin", "admin", admin_password))
    try:
        with tempfile.TemporaryDirectory(prefix="earmark-demo-") as tmp:
            manifest = write_demo_clips(Path(tmp), n_clips=n_clips, seed=seed, console=console)
            lines = list(read_manifest(manifest))
            metas = [line.meta for line in lines if line.meta is not None]
            columns = (TextColumn("ingest"), BarColumn(), MofNCompleteColumn())
            with Progress(*columns, console=console, transient=True) as progress:
                task = progress.add_task("ingest", total=len(metas))
                items = ((m, (manifest.parent / str(m.audio)).read_bytes) for m in metas)
                for outcome in ws.ingest_many(items, actor=Actor.cli(), via="demo"):
                    if outcome.error is not None:
                        raise outcome.error
                    progress.advance(task)
            accounts = sorted({line.meta.account_id for line in lines if line.meta is not None})
        with ws.transaction() as session:
            for account in accounts:
                r = rng.random()
                if r < 0.8:
                    set_consent(session, actor=Actor.cli(), account_id=account, human_review=Consent.allow)
                elif r < 0.9:
                    set_consent(session, actor=Actor.cli(), account_id=account, human_review=Consent.deny)
                # else: never answered, so the opt-in default (deny) applies
            draw_sample(
                session,
                actor=Actor.cli(),
                policy=demo_policy(settings),
                key=sampling_key(settings),
                default_consent=Consent(settings.consent_default),
            )
            data = resources.files("earmark") / "data"
            with resources.as_file(data / "inventory.json") as inventory_path:
                import_inventory(session, actor=Actor.cli(), path=inventory_path)
            import_catalog(session, actor=Actor.cli(), lines=(data / "catalog.jsonl").read_text().splitlines())
            for username, role in DEMO_USERS[1:]:
                password = auth.generate_password()
                auth.create_user(session, actor=Actor.cli(), username=username, password=password, role=role)
                logins.append(DemoLogin(username, str(role), password))
        with ws.sessions() as session:
            pending = len(pending_clip_ids(session, limit=100_000))
        todo = pending if process_limit is None else min(pending, process_limit)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("loading models", total=todo)
            if todo:
                ws.components()
            progress.update(task, description="make safe to hear")
            ws.process_pending(limit=todo, on_done=lambda _: progress.advance(task))
        stats = ws.stats()
    finally:
        ws.close()
    console.print(f"demo workspace at {home}: {json.dumps(stats['clips'])}")
    return logins
