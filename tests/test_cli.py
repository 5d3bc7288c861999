from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from earmark import db
from earmark.cli import app
from tests import factories as f

runner = CliRunner()


def run(home: Path, *args: str, input: str | None = None, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["--home", str(home), *args], input=input, env=env)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "ws"
    result = run(h, "init", "--password-stdin", input="admin-password-1\n")
    assert result.exit_code == 0, result.output
    return h


def _manifest(folder: Path, n: int, account: str = "acct-c", bad_line_at: int | None = None) -> Path:
    lines = []
    for i in range(n):
        if bad_line_at is not None and i == bad_line_at:
            lines.append('{"clip_id": "broken", "account_id": "acct-c"}')
            continue
        (folder / f"c{i}.wav").write_bytes(f.audio_bytes())
        lines.append(
            json.dumps(
                {
                    "clip_id": f"cli-{account}-{i}",
                    "account_id": account,
                    "device_id": "d1",
                    "recorded_at": "2026-11-02T08:00:00-05:00",
                    "locale": "en-US",
                    "audio": f"c{i}.wav",
                    "device_asr": {"text": "what's the weather", "confidence": 0.7},
                }
            )
        )
    path = folder / "manifest.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_init_creates_a_private_workspace(home: Path) -> None:
    assert (home / "settings.toml").exists() and (home / "earmark.db").exists()
    assert os.stat(home / "workspace.key").st_mode & 0o077 == 0
    assert (home / "blobs").is_dir()


def test_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    h = tmp_path / "ws"
    assert run(h, "init", "--password-stdin", input="admin-password-1\n").exit_code == 0
    (h / "earmark.db").unlink()  # e.g. restored from a backup of the files but not the database
    result = run(h, "stats")
    assert result.exit_code == 1
    assert "no earmark schema" in result.output and "earmark db upgrade" in result.output
    assert run(h, "db", "upgrade").exit_code == 0
    assert run(h, "stats").exit_code == 0


def test_refuses_a_database_at_another_revision(home: Path) -> None:
    engine = db.make_engine(f"sqlite:///{home / 'earmark.db'}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    engine.dispose()
    result = run(home, "stats")
    assert result.exit_code == 1 and "revision 0000" in result.output and "earmark db upgrade" in result.output


def test_missing_workspace_says_what_to_run(tmp_path: Path) -> None:
    result = run(tmp_path / "nowhere", "stats")
    assert result.exit_code == 1 and "earmark --home" in result.output and "init" in result.output


def test_ingest_sample_stats_flow(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    manifest = _manifest(folder, 6, bad_line_at=3)
    result = run(home, "ingest", str(manifest))
    assert result.exit_code == 1
    assert "ingested 5 new clip(s)" in result.output
    assert "line 4" in result.output and "device_id: required field is missing" in result.output
    again = run(home, "ingest", str(manifest))
    assert "ingested 0 new clip(s), 5 already present" in again.output
    assert run(home, "consent", "set", "acct-c", "--human-review", "allow").exit_code == 0
    dry = run(home, "sample", "--rate", "1", "--dry-run")
    assert "would sample 5" in dry.output
    assert "sampled 5" in run(home, "sample", "--rate", "1").output
    stats = json.loads(run(home, "stats", "--json").stdout)
    assert stats["accounts"]["by_consent"] == {"allow": 1, "deny": 0}
    assert stats["clips"]["by_status"] == {"pending": 5}
    assert stats["queue"]["queued"] == 0 and stats["reviewed"] == 0
    denied = run(home, "consent", "set", "acct-c", "--human-review", "deny")
    assert "5 clip(s) withdrawn" in denied.output
    assert json.loads(run(home, "stats", "--json").stdout)["queue"]["queued"] == 0
    assert "OK" in run(home, "audit", "verify").output


def test_ingest_rejects_only_the_line_with_a_bad_byte_and_counts_every_line(home: Path, tmp_path: Path) -> None:
    """A byte that is not UTF-8 stopped the read of the manifest (the lines after it, and those
    before it in the same 8 KB, were dropped in silence), and the progress bar counted only the
    lines that parsed (4/4 of 6)."""
    folder = tmp_path / "in"
    folder.mkdir()
    manifest = _manifest(folder, 6, bad_line_at=3)
    lines = manifest.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b"weather", b"w\xe9ather")
    manifest.write_bytes(b"\n".join(lines))
    result = run(home, "ingest", str(manifest))
    assert result.exit_code == 1
    assert "ingested 4 new clip(s), 0 already present, 2 rejected" in result.output
    assert "line 2: not UTF-8 text" in result.output and "line 4: device_id" in result.output
    assert "6/6 lines" in result.output


def test_token_is_printed_once(home: Path) -> None:
    result = run(home, "token", "create", "--role", "service")
    assert result.exit_code == 0
    secret = result.stdout.strip().splitlines()[-1]
    assert secret.startswith("emk_")
    assert secret.encode() not in (home / "earmark.db").read_bytes()
    refused = run(home, "token", "create", "--role", "reviewer")  # people log in; --help lists only these
    assert refused.exit_code != 0 and "service" in refused.output and "auditor" in refused.output


def test_keys_rotate_with_key_file(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    run(home, "ingest", str(_manifest(folder, 2)))
    before = (home / "workspace.key").read_text()
    result = run(home, "keys", "rotate")
    assert result.exit_code == 0 and "1 account key(s) re-wrapped" in result.output
    assert (home / "workspace.key").read_text() != before
    assert run(home, "stats").exit_code == 0


def test_keys_rotate_with_env_key(tmp_path: Path) -> None:
    h = tmp_path / "envws"
    key = base64.b64encode(os.urandom(32)).decode()
    env = {"EARMARK_WORKSPACE_KEY": key}
    assert run(h, "init", "--password-stdin", input="admin-password-1\n", env=env).exit_code == 0
    assert not (h / "workspace.key").exists()
    folder = tmp_path / "in"
    folder.mkdir()
    run(h, "ingest", str(_manifest(folder, 1)), env=env)
    result = run(h, "keys", "rotate", env=env)
    new_key = result.stdout.strip().splitlines()[-1]
    assert base64.b64decode(new_key) and new_key != key
    assert run(h, "stats", env={"EARMARK_WORKSPACE_KEY": new_key}).exit_code == 0


def test_bad_settings_file_is_reported(home: Path) -> None:
    (home / "settings.toml").write_text("max_clip_seconds = -3\n")
    result = run(home, "stats")
    assert result.exit_code == 1 and "max_clip_seconds" in result.output


@pytest.mark.parametrize(
    ("key", "value"),
    [
        # Accepted before, then: every retention run refused (audio kept past its time), or an
        # overflow in a login, a lease, a retention run or the worker thread.
        ("retention_audit_days", "30"),
        ("session_hours", "99999999999"),
        ("lease_seconds", "99999999999999"),
        ("retention_original_days", "99999999999"),
        ("worker_interval_seconds", "inf"),
        ("sample_cap_days", "400"),
        ("safety_protocol", "/etc/earmark/safety-protocl.md"),  # a typo was shown as the protocol
        ("whisper_model", "/nonexistent/model"),  # held every pending clip under serve
    ],
)
def test_settings_that_would_fail_later_stop_earmark_at_once(home: Path, key: str, value: str) -> None:
    result = run(home, "stats", env={f"EARMARK_{key.upper()}": value})
    assert result.exit_code == 1 and key in result.output and "Traceback" not in result.output


def test_file_settings_resolve_from_the_workspace_as_they_are_used(home: Path) -> None:
    """The check and the use read different paths: "~/protocol.md" passed and the team was shown
    the text "~/protocol.md"; a relative path depended on the directory a command ran from."""
    from earmark.config import load_settings
    from earmark.escalation import protocol_html

    (home / "protocol.md").write_text("# Our protocol\n\nStep one.\n")
    settings = load_settings(home, safety_protocol=" protocol.md ")
    assert settings.safety_protocol == str(home / "protocol.md")
    assert "<h1>Our protocol</h1>" in protocol_html(settings.safety_protocol)
    assert "Our protocol" not in protocol_html(load_settings(home).safety_protocol)  # the built-in one


def test_unset_can_be_said_for_the_retention_days(home: Path) -> None:
    from earmark.config import load_settings

    (home / "settings.toml").write_text('retention_transcript_days = "unset"\n')
    settings = load_settings(home, retention_original_days="none")
    assert settings.retention_transcript_days is None and settings.retention_original_days is None
    assert run(home, "stats", env={"EARMARK_RETENTION_ORIGINAL_DAYS": "never"}).exit_code == 0
    # A blank is a mistake (a template's unset variable), not "keep forever".
    assert run(home, "stats", env={"EARMARK_RETENTION_ORIGINAL_DAYS": ""}).exit_code == 1


def test_a_misspelled_setting_variable_is_refused_not_ignored(home: Path) -> None:
    result = run(home, "stats", env={"EARMARK_RETENTION_ORIGINAL_DAY": "7"})
    assert result.exit_code == 1
    assert "EARMARK_RETENTION_ORIGINAL_DAY is not a setting; did you mean EARMARK_RETENTION_ORIGINAL_DAYS?" in (
        result.output
    )
    assert run(home, "stats", env={"EARMARK_SOMETHING_ELSE_ENTIRELY": "1"}).exit_code == 0  # another tool's


def test_settings_changes_are_audited_by_key(home: Path) -> None:
    (home / "settings.toml").write_text("lease_seconds = 300\n")
    assert run(home, "stats").exit_code == 0
    exported = run(home, "audit", "export")
    events = [json.loads(line) for line in exported.stdout.splitlines()]
    changes = [e for e in events if e["action"] == "settings.change"]
    assert changes and "lease_seconds" in changes[-1]["details"]["changed"]
    # Which keys, not their values (only the details: "300" may occur in a hash or a timestamp).
    assert "300" not in json.dumps([e["details"] for e in changes])


def test_catalog_and_inventory_import(home: Path, tmp_path: Path) -> None:
    catalog = tmp_path / "entities.jsonl"
    catalog.write_text(
        '{"id": "artist:taylor-swift", "name": "Taylor Swift", "type": "MusicArtist", "aliases": ["tay tay"]}\n'
        "not json\n"
        '{"id": "city:tulsa", "name": "Tulsa", "type": "Place"}\n',
        encoding="utf-8",
    )
    result = run(home, "catalog", "import", str(catalog))
    assert result.exit_code == 1  # a bad line fails the command but keeps the good ones
    assert "2 added" in result.stdout and "line 2" in result.stderr
    inventory = tmp_path / "inventory.json"
    inventory.write_text(
        '{"intents": ["PlayMusic", "GetWeather"], "slots": [{"name": "artist", "entity_type": "MusicArtist"}]}'
    )
    result = run(home, "inventory", "import", str(inventory))
    assert result.exit_code == 0, result.output
    assert "2 intents, 1 slot types" in result.stdout
    bad_files = [
        '{"intents": "PlayMusic"}',
        '{"intents": ["PlayMusic"], "slots": [{"name": "artist", "entity_type": {"x": 1}}]}',
        '{"intents": ["' + "X" * 65 + '"]}',  # longer than a reviewer can submit
        '{"intents": ["PlayMusic"], "slots": [{"name": " "}]}',
    ]
    for bad in bad_files:
        inventory.write_text(bad)
        result = run(home, "inventory", "import", str(inventory))
        assert result.exit_code == 1 and "not a valid inventory file" in result.stderr, (bad, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    # Files that are not UTF-8 get a clear error, not a traceback, and change nothing.
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes('{"id": "artist:bjork", "name": "Björk", "type": "MusicArtist"}\n'.encode("latin-1"))
    for command in ("catalog", "inventory"):
        result = run(home, command, "import", str(latin1))
        assert result.exit_code == 1, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        assert "utf-8" in result.stderr.lower(), result.output


def test_process_retry_held_reports_what_it_sent_back(home: Path) -> None:
    result = run(home, "process", "--retry-held")
    assert result.exit_code == 0 and "0 held clip(s) sent back to the pipeline" in result.output
    events = [json.loads(line) for line in run(home, "audit", "export").stdout.splitlines()]
    assert [e["details"] for e in events if e["action"] == "pipeline.retry"] == [{"clips": 0, "skipped": 0}]


def test_an_output_path_that_cannot_be_written_is_one_clear_line(home: Path, tmp_path: Path) -> None:
    for args, message in (
        (("audit", "export", "-o", str(tmp_path / "no" / "such" / "x.jsonl")), "No such file or directory"),
        (("audit", "export", "-o", str(tmp_path)), "Is a directory"),
    ):
        result = run(home, *args)
        assert result.exit_code == 1, result.output
        assert f"error: {message}: " in result.output and "Traceback" not in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)


def test_audit_anchor_then_verify_against_it_and_against_an_export(home: Path, tmp_path: Path) -> None:
    anchors, export = tmp_path / "anchors.jsonl", tmp_path / "audit.jsonl"
    assert run(home, "audit", "anchor", "-o", str(anchors)).exit_code == 0
    assert run(home, "audit", "export", "-o", str(export)).exit_code == 0
    assert run(home, "audit", "anchor", "-o", str(anchors)).exit_code == 0
    assert len(anchors.read_text().splitlines()) == 2  # appended, one line each
    ok = run(home, "audit", "verify", "--anchor", str(anchors), "--anchor", str(export))
    assert ok.exit_code == 0 and "3 anchor(s) hold" in ok.output, ok.output  # two lines, one export
    plain = run(home, "audit", "verify")
    assert plain.exit_code == 0 and "without an anchor kept outside the database" in plain.output
    # An anchor from a chain that is not this one (or this one rewritten): refused, row named.
    (tmp_path / "other.jsonl").write_text('{"seq": 1, "hash": "' + "0" * 64 + '"}\n')
    bad = run(home, "audit", "verify", "--anchor", str(tmp_path / "other.jsonl"))
    assert bad.exit_code == 1 and "BROKEN at sequence 1: row 1 differs from the anchor" in bad.output
    (tmp_path / "junk.jsonl").write_text("hello\n")
    junk = run(home, "audit", "verify", "--anchor", str(tmp_path / "junk.jsonl"))
    assert junk.exit_code == 1 and "not an audit anchor" in junk.output


def test_user_list_names_the_ids_the_audit_log_uses(home: Path) -> None:
    assert run(home, "user", "create", "bob", "--role", "reviewer").exit_code == 0
    assert run(home, "user", "deactivate", "bob").exit_code == 0
    rows = [json.loads(line) for line in run(home, "user", "list", "--json").output.splitlines()]
    assert [(r["actor"], r["username"], r["role"], r["active"]) for r in rows] == [
        ("user:1", "admin", "admin", True),
        ("user:2", "bob", "reviewer", False),
    ]
    table = run(home, "user", "list").output
    assert "user:2" in table and "deactivated" in table


def test_an_anchor_goes_only_outside_the_workspace_and_only_into_an_anchor_file(home: Path, tmp_path: Path) -> None:
    """`audit anchor -o HOME/secret.key` appended to the key, and every command failed after."""
    key = (home / "secret.key").read_bytes()
    for inside in (home / "secret.key", home / "earmark.db", home / "anchors.jsonl"):
        refused = run(home, "audit", "anchor", "-o", str(inside))
        assert refused.exit_code == 1 and "inside the workspace" in refused.output, refused.output
    assert (home / "secret.key").read_bytes() == key and not (home / "anchors.jsonl").exists()
    other = tmp_path / "notes.txt"
    other.write_text("my notes\n")
    refused = run(home, "audit", "anchor", "-o", str(other))
    assert refused.exit_code == 1 and "not an anchor file" in refused.output
    assert other.read_text() == "my notes\n"
    ok = run(home, "audit", "anchor", "-o", str(tmp_path / "anchors.jsonl"))
    assert ok.exit_code == 0 and "appended to" in ok.output


def test_a_damaged_secret_is_one_clear_error(home: Path) -> None:
    (home / "secret.key").write_text((home / "secret.key").read_text().strip() + '{"seq": 1}\n')
    result = run(home, "stats")
    assert result.exit_code == 1 and "secret.key is damaged" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
