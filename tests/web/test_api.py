from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy import text as sql
from typer.testing import CliRunner

from earmark import auth
from earmark.cli import app as cli_app
from earmark.models import Account, AuditEvent, Clip
from earmark.types import Actor, Role
from earmark.workspace import Workspace
from tests import factories as f
from tests.web.helpers import client


def _token(ws: Workspace, role: Role = Role.service) -> str:
    with ws.transaction() as s:
        _, secret = auth.create_token(s, actor=Actor.cli(), role=role)
    return secret


def _meta(clip_id: str = "api-1", **extra: object) -> str:
    body = {
        "clip_id": clip_id,
        "account_id": "acct-api",
        "device_id": "dev-9",
        "recorded_at": "2026-11-25T18:00:00Z",
        "locale": "en-US",
    }
    body.update(extra)
    return json.dumps(body, ensure_ascii=False)


def _post(c: TestClient, token: str | None, audio: bytes, metadata: str | bytes):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return c.post(
        "/api/v1/clips",
        headers=headers,
        files={"audio": ("clip.wav", audio, "audio/wav")},
        data={"metadata": metadata},
    )


def _clips(ws: Workspace) -> int:
    with ws.sessions() as s:
        return int(s.execute(select(func.count()).select_from(Clip)).scalar_one())


def test_upload_created_duplicate_conflict(ws: Workspace) -> None:
    c, token = client(ws), _token(ws)
    audio = f.audio_bytes(1.5, 16000)
    first = _post(c, token, audio, _meta())
    assert first.status_code == 201, first.text
    assert first.json() == {
        "clip_id": "api-1",
        "created": True,
        "sample_rate": 16000,
        "channels": 1,
        "num_samples": 24000,
    }
    again = _post(c, token, audio, _meta())
    assert again.status_code == 200 and again.json()["created"] is False
    clash = _post(c, token, f.audio_bytes(), _meta())
    assert clash.status_code == 409 and "already exists" in clash.json()["error"]["message"]
    assert _clips(ws) == 1


@pytest.mark.parametrize(
    ("audio", "metadata", "status", "text"),
    [
        (b"not audio at all" * 10, _meta(), 422, "not a readable audio file"),
        (b"", _meta(), 422, "empty"),
        (None, "{bad json", 422, "not valid JSON"),
        (None, '{"clip_id": "x\\ud800", "account_id": "a"}', 422, "lone surrogate"),
        (None, _meta(recorded_at="2026-11-25T18:00:00"), 422, "time zone"),
        (None, _meta(recorded_at="0001-01-01T00:00:00+01:00"), 422, "out of range"),
        (None, _meta(recorded_at="1969-12-31T23:59:59Z"), 422, "before 1970"),
        (None, _meta(colour="blue"), 422, "unknown field"),
        (None, json.dumps({"clip_id": "x"}), 422, "account_id: required field is missing"),
        (None, _meta(audio="x.wav"), 422, "audio"),
    ],
)
def test_bad_uploads_are_refused_with_a_reason_and_store_nothing(
    ws: Workspace, audio: bytes | None, metadata: str, status: int, text: str
) -> None:
    c, token = client(ws), _token(ws)
    resp = _post(c, token, f.audio_bytes() if audio is None else audio, metadata)
    assert resp.status_code == status, resp.text
    assert text in resp.json()["error"]["message"]
    assert _clips(ws) == 0
    with ws.sessions() as s:
        assert s.execute(select(func.count()).select_from(Account)).scalar_one() == 0
    assert list(ws.blobs.iter_keys()) == []


def test_upload_errors_read_well_and_list_what_the_route_takes(ws: Workspace) -> None:
    """json's "Unterminated string starting at" became "starting at at column 2", and an unknown
    field was told `audio` is allowed, which this route refuses in the metadata."""
    c, token = client(ws), _token(ws)
    cut = _post(c, token, f.audio_bytes(), '{"clip_id": "x1')
    assert cut.json()["error"]["message"] == "not valid JSON: unterminated string starting at column 13"
    unknown = _post(c, token, f.audio_bytes(), _meta(colour="blue")).json()["error"]["message"]
    assert "colour: unknown field (allowed: clip_id, account_id, device_id, recorded_at, locale, device_asr" in unknown
    assert "audio" not in unknown
    nested = _post(c, token, f.audio_bytes(), _meta(device_asr={"text": "hi", "lang": "en"})).json()
    assert "device_asr.lang: unknown field (allowed: text, confidence, alternatives)" in nested["error"]["message"]
    assert _clips(ws) == 0


def test_metadata_must_be_utf8_and_non_ascii_text_arrives_whole(ws: Workspace) -> None:
    """Starlette decodes a form field that is not UTF-8 as Latin-1 without a word: a stray 0xFF byte
    was stored as "ÿ". The metadata's bytes are decoded as a manifest line's are."""
    c, token = client(ws), _token(ws)
    garbled = _meta(device_asr={"text": "call Zoë"}).encode().replace("ë".encode(), b"\xff")
    resp = _post(c, token, f.audio_bytes(), garbled)
    assert resp.status_code == 422, resp.text
    at = garbled.index(b"\xff") + 1
    message = f"not UTF-8 text (invalid start byte at byte {at}); save the file as UTF-8"
    assert resp.json()["error"] == {"message": message, "field": "metadata"}
    assert _clips(ws) == 0
    assert list(ws.blobs.iter_keys()) == []
    with ws.sessions() as s:
        assert s.execute(select(func.count()).select_from(Account)).scalar_one() == 0
        ingests = select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "clip.ingest")
        assert s.execute(ingests).scalar_one() == 0
    # Valid UTF-8 is taken as sent, with a byte-order mark before it as a manifest's first line may.
    for clip_id, metadata in [
        ("api-zoe", _meta("api-zoe", device_asr={"text": "call Zoë"}).encode()),
        ("api-bom", b"\xef\xbb\xbf" + _meta("api-bom", device_asr={"text": "call Zoë"}).encode()),
    ]:
        ok = _post(c, token, f.audio_bytes(), metadata)
        assert ok.status_code == 201, ok.text
        with ws.sessions() as s:
            assert s.execute(select(Clip.device_asr_text).where(Clip.external_id == clip_id)).scalar_one() == "call Zoë"


def test_metadata_is_documented_as_a_text_field(ws: Workspace) -> None:
    """The route takes the metadata's bytes, but clients still send a text field, not a file."""
    spec = client(ws).get("/api/v1/openapi.json").json()
    body = spec["paths"]["/api/v1/clips"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    fields = spec["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]["properties"]
    assert fields["metadata"]["type"] == "string" and "contentMediaType" not in fields["metadata"]
    assert fields["metadata"]["description"].startswith("JSON object")
    assert fields["audio"]["contentMediaType"] == "application/octet-stream"


def test_oversized_upload_is_refused_before_it_is_read(ws: Workspace) -> None:
    ws.settings.max_upload_bytes = 50_000
    c, token = client(ws), _token(ws)
    resp = _post(c, token, f.audio_bytes(5.0), _meta())
    assert resp.status_code == 413 and "limit of 50000 bytes" in resp.json()["error"]["message"]
    assert _clips(ws) == 0


def test_oversized_chunked_upload_gets_413_too(ws: Workspace) -> None:
    """No Content-Length (chunked transfer): the limit is counted as the body arrives."""
    ws.settings.max_upload_bytes = 50_000
    c, token = client(ws), _token(ws)
    boundary = "earmark-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n{_meta()}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="audio"; filename="clip.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\n"
        ).encode()
        + f.audio_bytes(5.0)
        + f"\r\n--{boundary}--\r\n".encode()
    )

    def chunks():  # type: ignore[no-untyped-def]
        for i in range(0, len(body), 8192):
            yield body[i : i + 8192]

    headers = {"Authorization": f"Bearer {token}", "content-type": f"multipart/form-data; boundary={boundary}"}
    resp = c.post("/api/v1/clips", headers=headers, content=chunks())
    assert resp.status_code == 413 and "limit of 50000 bytes" in resp.json()["error"]["message"]
    assert _clips(ws) == 0


def test_tokens_are_required_and_role_checked(ws: Workspace) -> None:
    c = client(ws)
    assert _post(c, None, f.audio_bytes(), _meta()).status_code == 401
    assert _post(c, "emk_forged", f.audio_bytes(), _meta()).status_code == 401
    assert _post(c, _token(ws, Role.auditor), f.audio_bytes(), _meta()).status_code == 403


def test_consent_route(ws: Workspace) -> None:
    c, token = client(ws), _token(ws)
    headers = {"Authorization": f"Bearer {token}"}
    ok = c.put("/api/v1/accounts/acct-new/consent", headers=headers, json={"human_review": "allow"})
    assert ok.status_code == 200 and ok.json()["human_review"] == "allow"
    assert (ok.json()["training_use"], ok.json()["exports_to_prune"]) == ("deny", 0)  # the consent in effect
    bad = c.put("/api/v1/accounts/acct-new/consent", headers=headers, json={"human_review": "maybe"})
    assert bad.status_code == 422 and "human_review" in bad.json()["error"]["message"]
    garbled = c.put(
        "/api/v1/accounts/acct-new/consent",
        headers={**headers, "content-type": "application/json"},
        content=b"{human_review: allow",
    )
    assert garbled.status_code == 422
    assert garbled.json()["error"]["message"] == "the request body is not valid JSON"  # was "0: JSON decode error"
    # An id no clip could carry is refused, not recorded as a new account.
    odd = c.put("/api/v1/accounts/%20acct%20x/consent", headers=headers, json={"human_review": "allow"})
    assert odd.status_code == 422 and "account_id" in odd.json()["error"]["message"]
    stats = c.get("/api/v1/stats", headers=headers).json()
    assert stats["accounts"]["by_consent"]["allow"] == 1


@f.postgres_only
def test_a_database_conflict_is_a_503_to_retry_and_saves_nothing(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change that meets a lock it may not wait for (here: lock_timeout while another transaction
    holds the audit chain's head; a deadlock victim is the same) is rolled back whole and answered
    503 with Retry-After, not a bare 500; the CLI says the same and exits 75 (EX_TEMPFAIL)."""
    monkeypatch.setenv("PGOPTIONS", "-c lock_timeout=300")
    ws.engine.dispose()  # new connections take the timeout
    c, token = client(ws), _token(ws)
    headers = {"Authorization": f"Bearer {token}"}
    with ws.engine.connect() as holder:
        holder.execute(sql("SELECT 1 FROM audit_head FOR UPDATE"))
        busy = c.put("/api/v1/accounts/acct-busy/consent", headers=headers, json={"human_review": "allow"})
        cli = CliRunner().invoke(
            cli_app,
            ["--home", str(ws.settings.home), "consent", "set", "acct-busy", "--human-review", "allow", "--create"],
            env={"EARMARK_DATABASE_URL": ws.settings.database_url or ""},
        )
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
    assert "nothing was saved" in busy.json()["error"]["message"]
    assert cli.exit_code == 75 and "nothing was saved" in cli.output, cli.output
    with ws.sessions() as s:
        assert s.execute(select(func.count()).select_from(Account)).scalar_one() == 0
    again = c.put("/api/v1/accounts/acct-busy/consent", headers=headers, json={"human_review": "allow"})
    assert again.status_code == 200, again.text
