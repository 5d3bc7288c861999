from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from earmark.errors import Conflict, InvalidAudio, InvalidInput
from earmark.ingest import get_or_create_account
from earmark.manifest import parse_meta, read_manifest
from earmark.models import Account, Clip
from earmark.types import Actor
from earmark.workspace import Workspace
from tests import factories as f


def _count(ws: Workspace, model: type) -> int:
    with ws.sessions() as s:
        return int(s.execute(select(func.count()).select_from(model)).scalar_one())


def test_ingest_stores_integers_and_encrypted_audio(ws: Workspace) -> None:
    audio = f.audio_bytes(2.0, 16000)
    result = ws.ingest(actor=Actor.cli(), meta=f.meta(clip_id="c-1"), audio=audio, via="test")
    assert result.created and result.clip_id == "c-1"
    with ws.sessions() as s:
        clip = s.execute(select(Clip).where(Clip.external_id == "c-1")).scalar_one()
        assert (clip.sample_rate, clip.channels, clip.num_samples) == (16000, 1, 32000)
        assert clip.status == "stored"
        assert clip.recorded_at.tzinfo is not None
    blob = ws.blobs.get(clip.blob_key)
    assert audio[44:2000] not in blob and b"RIFF" not in blob


def test_same_clip_twice_is_a_no_op(ws: Workspace) -> None:
    audio = f.audio_bytes()
    m = f.meta(clip_id="c-dup")
    assert ws.ingest(actor=Actor.cli(), meta=m, audio=audio, via="test").created
    again = ws.ingest(actor=Actor.cli(), meta=m, audio=audio, via="test")
    assert not again.created
    assert _count(ws, Clip) == 1
    assert len(list(ws.blobs.iter_keys())) == 1


def test_a_resend_with_other_metadata_is_a_conflict_not_a_silent_no_op(ws: Workspace) -> None:
    """A correction sent as a retry ("child_profile": true) answered 200 and was dropped."""
    from datetime import timedelta, timezone

    audio = f.audio_bytes()
    m = f.meta(clip_id="c-meta")
    assert ws.ingest(actor=Actor.cli(), meta=m, audio=audio, via="test").created
    same_instant = m.model_copy(update={"recorded_at": m.recorded_at.astimezone(timezone(timedelta(hours=2)))})
    assert not ws.ingest(actor=Actor.cli(), meta=same_instant, audio=audio, via="test").created
    corrected = m.model_copy(update={"child_profile": True, "locale": "de-DE"})
    with pytest.raises(Conflict, match=r"other metadata \(locale, child_profile\)"):
        ws.ingest(actor=Actor.cli(), meta=corrected, audio=audio, via="test")
    with ws.sessions() as s:
        clip = s.execute(select(Clip).where(Clip.external_id == "c-meta")).scalar_one()
        assert (clip.child_profile, clip.locale) == (False, "en-US")  # nothing half-changed


def test_same_clip_id_with_other_bytes_is_a_conflict_and_keeps_the_first(ws: Workspace) -> None:
    m = f.meta(clip_id="c-x")
    ws.ingest(actor=Actor.cli(), meta=m, audio=f.audio_bytes(), via="test")
    with pytest.raises(Conflict, match="already exists"):
        ws.ingest(actor=Actor.cli(), meta=m, audio=f.audio_bytes(), via="test")
    assert _count(ws, Clip) == 1
    assert len(list(ws.blobs.iter_keys())) == 1


def test_bad_audio_leaves_nothing_behind(ws: Workspace) -> None:
    with pytest.raises(InvalidAudio):
        ws.ingest(actor=Actor.cli(), meta=f.meta(account_id="acct-new"), audio=b"garbage" * 50, via="test")
    assert _count(ws, Clip) == 0 and _count(ws, Account) == 0
    assert list(ws.blobs.iter_keys()) == []


def test_clip_without_id_gets_a_stable_one(ws: Workspace) -> None:
    audio = f.audio_bytes()
    m = f.meta(clip_id=None)
    first = ws.ingest(actor=Actor.cli(), meta=m, audio=audio, via="test")
    second = ws.ingest(actor=Actor.cli(), meta=m, audio=audio, via="test")
    assert first.clip_id == second.clip_id and first.created and not second.created


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"account_id": "a", "device_id": "d", "recorded_at": "2026-11-01T10:00:00", "locale": "en-US"},
            "recorded_at: must include a time zone",
        ),
        (
            {"device_id": "d", "recorded_at": "2026-11-01T10:00:00Z", "locale": "en-US"},
            "account_id: required field is missing",
        ),
        (
            {
                "account_id": "a",
                "device_id": "d",
                "recorded_at": "2026-11-01T10:00:00Z",
                "locale": "en-US",
                "gps": "1,2",
            },
            "gps: unknown field",
        ),
        (
            {"account_id": "a", "device_id": "d", "recorded_at": "2026-11-01T10:00:00Z", "locale": "english"},
            "locale",
        ),
        (
            {
                "account_id": "a",
                "device_id": "d",
                "recorded_at": "2026-11-01T10:00:00Z",
                "locale": "en-US",
                "wake_score": 3,
            },
            "wake_score",
        ),
    ],
)
def test_metadata_errors_name_the_field(raw: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_meta(raw)


def _write_manifest(folder: Path, lines: list[str]) -> Path:
    path = folder / "manifest.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _line(folder: Path, clip_id: str, **extra: object) -> str:
    name = f"{clip_id}.wav"
    (folder / name).write_bytes(f.audio_bytes())
    body: dict[str, object] = {
        "clip_id": clip_id,
        "account_id": "acct-m",
        "device_id": "dev-m",
        "recorded_at": "2026-11-20T10:00:00+01:00",
        "locale": "en-GB",
        "audio": name,
    }
    body.update(extra)
    return json.dumps(body)


def test_manifest_reports_bad_lines_by_number(tmp_path: Path) -> None:
    lines = [
        _line(tmp_path, "m1"),
        "{not json",
        _line(tmp_path, "m3", recorded_at="2026-11-20T10:00:00"),
        _line(tmp_path, "m4"),
        _line(tmp_path, "m5", recorded_at="0001-01-01T00:00:00+01:00"),  # cannot even become UTC
    ]
    parsed = list(read_manifest(_write_manifest(tmp_path, lines)))
    assert [p.lineno for p in parsed] == [1, 2, 3, 4, 5]
    assert parsed[0].meta is not None and parsed[3].meta is not None
    assert parsed[1].error is not None and "not valid JSON" in parsed[1].error
    assert parsed[2].error is not None and "time zone" in parsed[2].error
    assert parsed[4].error is not None and "recorded_at: " in parsed[4].error and "out of range" in parsed[4].error


@pytest.mark.parametrize(("n", "bad"), [(120, 60), (5, 3), (5, 1)])
def test_a_line_that_is_not_utf8_is_one_bad_line_and_every_other_line_is_read(tmp_path: Path, n: int, bad: int) -> None:
    """The manifest was decoded in 8 KB chunks: one bad byte on line 60 of 120 was reported as
    line 50, and lines 50-59 and 61-120 were neither ingested nor reported."""
    lines = [_line(tmp_path, f"u{i}", device_asr={"text": "cafe au lait"}) for i in range(1, n + 1)]
    path = _write_manifest(tmp_path, lines)
    data = path.read_bytes().split(b"\n")
    data[bad - 1] = data[bad - 1].replace(b"cafe", b"caf\xe9", 1)  # é in Latin-1
    path.write_bytes(b"\n".join(data))
    at = data[bad - 1].index(b"\xe9") + 1
    parsed = list(read_manifest(path))
    assert [p.lineno for p in parsed] == list(range(1, n + 1))
    assert [(p.lineno, p.error) for p in parsed if p.meta is None] == [
        (bad, f"not UTF-8 text (invalid continuation byte at byte {at}); save the file as UTF-8")
    ]


def test_a_byte_order_mark_before_the_first_line_is_accepted(tmp_path: Path) -> None:
    """Python's hint "decode using utf-8-sig" rejected line 1 of a manifest saved with a BOM."""
    path = _write_manifest(tmp_path, [_line(tmp_path, "b1"), _line(tmp_path, "b2")])
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert [(p.lineno, p.error) for p in read_manifest(path)] == [(1, None), (2, None)]
    # Only at the start of the file: elsewhere it is not whitespace JSON allows.
    path.write_bytes(path.read_bytes() + b"\xef\xbb\xbf" + _line(tmp_path, "b3").encode() + b"\n")
    assert [p.lineno for p in read_manifest(path) if p.error] == [3]


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (
            '{"clip_id": "x1", "account_id": ',
            "not valid JSON: expecting value at column 33, where the text ends (is it cut short?)",
        ),
        (
            '{"clip_id": "x1", "account_id": "acct',
            "not valid JSON: unterminated string starting at column 33",
        ),
        ('{"clip_id": "x1",, "account_id": "a"}', "not valid JSON: expecting property name enclosed in double "
         "quotes at column 18"),
        ('{"clip_id": "x1"} {}', "not valid JSON: extra data at column 19"),
    ],
)  # fmt: skip
def test_a_json_error_names_the_column_on_the_line(tmp_path: Path, line: str, error: str) -> None:
    """The line's own newline made an error at its end "at column 1" (of the next line); json's
    "Unterminated string starting at" read "starting at at column 2"."""
    path = _write_manifest(tmp_path, [line])
    assert [p.error for p in read_manifest(path)] == [error]


def test_ingest_killed_half_way_then_rerun_leaves_a_consistent_store(ws: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "clips"
    folder.mkdir()
    manifest = _write_manifest(folder, [_line(folder, f"k{i}") for i in range(70)])
    settings = ws.settings
    env_db = settings.db_url
    # A child process ingests the manifest and is killed (os._exit) right after writing the 67th
    # blob: the first batch (64 clips) is committed, the second is not.
    code = f"""
import os, sys
from pathlib import Path
from earmark.config import load_settings
from earmark.storage import LocalBlobStore
real_put = LocalBlobStore.put
n = 0
def dying_put(self, key, data):
    global n
    real_put(self, key, data)
    n += 1
    if n == 67:
        os._exit(9)
LocalBlobStore.put = dying_put
from earmark.cli import app
sys.argv = ["earmark", "--home", {str(settings.home)!r}, "ingest", {str(manifest)!r}]
os.environ["EARMARK_DATABASE_URL"] = {env_db!r}
os.environ["EARMARK_BLOB_FSYNC"] = "false"
app()
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 9, proc.stderr
    assert _count(ws, Clip) == 64
    assert len(list(ws.blobs.iter_keys())) == 67  # three orphans
    from typer.testing import CliRunner

    from earmark.cli import app

    result = CliRunner().invoke(
        app, ["--home", str(settings.home), "ingest", str(manifest)], env={"EARMARK_DATABASE_URL": env_db}
    )
    assert result.exit_code == 0, result.output
    assert "ingested 6 new clip(s), 64 already present" in result.output
    assert _count(ws, Clip) == 70
    with ws.sessions() as s:
        keys = set(s.execute(select(Clip.blob_key)).scalars())
    assert set(ws.blobs.iter_keys()) == keys  # no orphans, no row without its blob


@f.postgres_only
def test_two_first_clips_of_a_new_account_at_once_both_land(ws: Workspace) -> None:
    """The second insert of the new account breaks the unique id; the ingest runs again and lands."""
    other = f.Racer(lambda: f.ingest(ws, 1, account_id="acct-new"))
    with f.racing(ws, other) as s:
        get_or_create_account(s, "acct-new")
    assert other.error is None, other.error
    with ws.sessions() as s:
        assert s.execute(select(func.count()).select_from(Account)).scalar() == 1
        assert s.execute(select(func.count()).select_from(Clip)).scalar() == 1


@f.postgres_only
def test_a_batch_ingest_and_an_erasure_of_one_of_its_accounts_do_not_deadlock(ws: Workspace) -> None:
    """The batch held the audit chain's head from its first clip on; a later clip of the batch
    waited for the account the erasure held, and the erasure waited for the head."""
    f.ingest(ws, 1, account_id="victim")
    eraser = f.Racer(lambda: ws.erase(actor=Actor.cli(), account_id="victim"))

    def second_clip() -> bytes:  # read while the batch's transaction is open, after its first clip
        eraser.start()
        f.wait_for_lock_wait(ws, [eraser])
        return f.audio_bytes()

    items = [(f.meta(account_id="someone-else"), f.audio_bytes), (f.meta(account_id="victim"), second_clip)]
    outcomes = list(ws.ingest_many(items, actor=Actor.cli(), via="test"))
    eraser.join()
    assert eraser.error is None, eraser.error
    assert [o.error for o in outcomes] == [None, None]
    with ws.sessions() as s:  # the erasure waited for the batch, so its clip was erased too
        statuses = s.execute(select(Clip.status).join(Account).where(Account.erased_at.is_not(None))).scalars().all()
    assert statuses == ["erased", "erased"]
