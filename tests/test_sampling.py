from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from earmark.catalog import import_catalog
from earmark.models import Account, Clip
from earmark.sampling import SampleResult, draw_sample
from earmark.sampling_policy import SamplingPolicy, draw_stream, parse_policy
from earmark.types import Actor, Consent
from earmark.workspace import Workspace
from tests import factories as f

KEY = b"test-sampling-key"


def _draw(
    ws: Workspace, policy: SamplingPolicy, *, dry_run: bool = False, default: Consent = Consent.deny
) -> SampleResult:
    with ws.transaction() as s:
        result = draw_sample(s, actor=Actor.cli(), policy=policy, key=KEY, default_consent=default, dry_run=dry_run)
        if dry_run:
            s.rollback()
    return result


def _uniform(rate: float, cap: int = 5) -> SamplingPolicy:
    return SamplingPolicy.uniform(rate, cap=cap, period_days=30)


def test_same_key_same_database_same_draw(ws: Workspace) -> None:
    for a in range(6):
        f.ingest(ws, 6, account_id=f"acct-s{a}")
    f.allow(ws, *[f"acct-s{a}" for a in range(6)])
    preview = _draw(ws, _uniform(0.5), dry_run=True).clip_ids
    assert preview == _draw(ws, _uniform(0.5), dry_run=True).clip_ids and preview
    assert _draw(ws, _uniform(0.5)).clip_ids == preview  # the real draw equals its dry run
    assert _draw(ws, _uniform(0.5)).clip_ids == []  # nothing is sampled twice


def test_per_account_cap_holds_across_draws(ws: Workspace) -> None:
    f.ingest(ws, 12, account_id="chatty")
    f.allow(ws, "chatty")
    assert len(_draw(ws, _uniform(1.0, cap=5)).clip_ids) == 5
    f.ingest(ws, 4, account_id="chatty")
    assert _draw(ws, _uniform(1.0, cap=5)).clip_ids == []  # the same 30-day period
    with ws.sessions() as s:
        n = s.execute(select(func.count()).select_from(Clip).where(Clip.sampled_at.is_not(None))).scalar_one()
    assert n == 5


def test_a_future_dated_clip_does_not_stop_the_draws_of_older_periods(ws: Workspace) -> None:
    """Ingest accepts clocks that run ahead; once such a clip was sampled, every older period
    counted as 'late' and no later draw took anything (found in review)."""
    f.ingest(ws, 1, account_id="ahead", recorded_at=datetime(2027, 6, 1, tzinfo=UTC))
    f.allow(ws, "ahead")
    assert len(_draw(ws, _uniform(1.0)).clip_ids) == 1
    for a in range(3):
        f.ingest(ws, 1, account_id=f"on-time-{a}", recorded_at=datetime(2026, 1, 5, tzinfo=UTC))
    f.allow(ws, *[f"on-time-{a}" for a in range(3)])
    assert len(_draw(ws, _uniform(1.0)).clip_ids) == 3


def test_inclusion_probability_and_reason_are_stored(ws: Workspace) -> None:
    f.ingest(ws, 3, account_id="p")
    f.allow(ws, "p")
    _draw(ws, _uniform(1.0))
    with ws.sessions() as s:
        rows = set(s.execute(select(Clip.inclusion_probability, Clip.sample_reason).where(Clip.status == "pending")))
    assert rows == {(1.0, "uniform")}


def test_exclusions_children_accidental_activations_and_consent(ws: Workspace) -> None:
    f.ingest(ws, 2, account_id="fam", child_profile=True)
    f.ingest(ws, 2, account_id="fam", wake_score=0.2)
    f.ingest(ws, 2, account_id="fam", device_type="car")
    f.ingest(ws, 2, account_id="silent")
    f.allow(ws, "fam")
    result = _draw(ws, _uniform(1.0, cap=100))
    assert result.drawn == 2
    assert result.excluded == {"accidental_activation": 2, "child_profile": 2, "consent": 2}


def test_strata_rates_and_dry_run_report(ws: Workspace) -> None:
    f.ingest(ws, 40, account_id="a1", device_type="car")
    f.ingest(ws, 40, account_id="a2", device_type="speaker")
    f.allow(ws, "a1", "a2")
    policy = parse_policy({"rate": 0.05, "cap_per_account": 100, "strata": {"device_type": {"car": 1.0}}})
    result = _draw(ws, policy, dry_run=True)
    report = result.as_dict()["strata"]
    assert report["device_type=car"] == {"eligible": 40, "drawn": 40, "priority": 0, "capped": 0, "mean_score": 0.0}
    assert report["default"]["eligible"] == 40 and report["default"]["drawn"] < 10


def test_priority_draws_low_confidence_clips_more_often(ws: Workspace) -> None:
    low = {"text": "play shake it off", "confidence": 0.1}
    f.ingest(ws, 60, account_id="lo", device_asr=low)
    f.ingest(ws, 60, account_id="hi")  # confidence 0.9
    f.allow(ws, "lo", "hi")
    policy = parse_policy(
        {
            "rate": 0.2,
            "cap_per_account": 1000,
            "budget": {"uniform": 0.5, "priority": 0.5},
            "priority": {"mean_score": 0.4},
        }
    )
    _draw(ws, policy)
    with ws.sessions() as s:
        rows = s.execute(
            select(Account.external_id, Clip.sample_reason, Clip.inclusion_probability)
            .join(Account, Account.id == Clip.account_id)
            .where(Clip.sampled_at.is_not(None))
        ).all()
    lo = [r for r in rows if r[0] == "lo"]
    hi = [r for r in rows if r[0] == "hi"]
    # Drawn with probability 0.314 against 0.1 (below): 19 against 6 expected, 3 sd apart.
    assert len(lo) > len(hi)
    assert {r[1] for r in hi} == {"uniform"}  # nothing about these clips calls for a person
    assert "priority" in {r[1] for r in lo}
    assert {round(r[2], 6) for r in hi} == {0.1}  # 0.2 * uniform share 0.5
    assert all(r[2] > 0.1 for r in lo)


def test_missing_catalog_entity_raises_priority(ws: Workspace) -> None:
    with ws.transaction() as s:
        lines = [json.dumps({"id": "artist:ts", "name": "Taylor Swift", "type": "MusicArtist", "aliases": []})]
        import_catalog(s, actor=Actor.cli(), lines=lines)
    unknown = {"intent": "PlayMusic", "slots": [{"type": "artist", "value": "the zorblaxes"}], "confidence": 0.9}
    f.ingest(ws, 1, account_id="m", device_nlu=unknown)
    f.ingest(ws, 1, account_id="m")
    f.allow(ws, "m")
    policy = parse_policy({"rate": 0.01, "budget": {"uniform": 0.5, "priority": 0.5}, "priority": {"mean_score": 0.01}})
    result = _draw(ws, policy, dry_run=True)
    assert result.mean_score == 0.5  # one clip of two scores 1


def _stream_lines(ws: Workspace, n_accounts: int, per_account: int) -> list[str]:
    """Ingest clips and return the same metadata as the upstream stream would carry it."""
    rng_lines = []
    start = datetime(2026, 10, 1, tzinfo=UTC)
    for a in range(n_accounts):
        for i in range(per_account):
            at = start + timedelta(hours=7 * i + a)
            conf = 0.3 + 0.6 * ((a * 7 + i) % 10) / 10
            asr = {"text": "play shake it off by taylor swift", "confidence": conf}
            meta = f.meta(account_id=f"acct-st{a}", recorded_at=at, device_asr=asr, device_type="speaker")
            ws.ingest(actor=Actor.cli(), meta=meta, audio=f.audio_bytes(0.2), via="test")
            line = json.loads(meta.model_dump_json(exclude_none=True))
            line["human_review"] = "allow" if a % 4 else "deny"
            rng_lines.append(line)
    f.allow(ws, *[f"acct-st{a}" for a in range(n_accounts) if a % 4])
    rng_lines.sort(key=lambda x: (x["recorded_at"], x["clip_id"]))
    return [json.dumps(x) for x in rng_lines]


def test_stream_draws_the_same_clips_as_the_database(ws: Workspace) -> None:
    lines = _stream_lines(ws, n_accounts=8, per_account=12)
    policy = parse_policy(
        {
            "rate": 0.4,
            "cap_per_account": 3,
            "period_days": 2,
            "panel_rate": 0.8,
            "budget": {"uniform": 0.5, "priority": 0.5},
            "priority": {"mean_score": 0.3},
        }
    )
    streamed = [json.loads(x) for x in draw_stream(iter(lines), policy, KEY)]
    result = _draw(ws, policy)
    assert [x["clip_id"] for x in streamed] == result.clip_ids
    assert len(result.clip_ids) > 5
    with ws.sessions() as s:
        rows = s.execute(select(Clip.external_id, Clip.inclusion_probability).where(Clip.sampled_at.is_not(None)))
        stored = {clip_id: p for clip_id, p in rows}
    assert {x["clip_id"]: x["sampling"]["probability"] for x in streamed} == stored


def test_upstream_drawn_clips_keep_their_decision(ws: Workspace) -> None:
    meta = f.meta(account_id="up", sampling={"probability": 0.02, "reason": "priority", "policy": "abc"})
    ws.ingest(actor=Actor.cli(), meta=meta, audio=f.audio_bytes(0.2), via="test")
    f.allow(ws, "up")
    # A policy that would draw almost nothing still keeps what the stream drew.
    assert _draw(ws, _uniform(0.0001)).clip_ids == [meta.clip_id]
    with ws.sessions() as s:
        clip = s.execute(select(Clip).where(Clip.external_id == meta.clip_id)).scalar_one()
    assert (clip.inclusion_probability, clip.sample_reason, clip.status) == (0.02, "priority", "pending")


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cap=st.integers(0, 4),
    per_account=st.lists(st.integers(0, 7), min_size=1, max_size=4),
    rate=st.sampled_from([0.3, 0.7, 1.0]),
)
def test_cap_is_never_exceeded(sqlite_ws: Workspace, cap: int, per_account: list[int], rate: float) -> None:
    prefix = f"h{abs(hash((cap, tuple(per_account), rate))) % 10**8}-"
    for i, n in enumerate(per_account):
        if n:
            f.ingest(sqlite_ws, n, account_id=f"{prefix}{i}")
    f.allow(sqlite_ws, *[f"{prefix}{i}" for i, n in enumerate(per_account) if n])
    _draw(sqlite_ws, _uniform(rate, cap=cap))
    with sqlite_ws.sessions() as s:
        counts = s.execute(
            select(Account.external_id, func.count())
            .join(Clip, Clip.account_id == Account.id)
            .where(Clip.sampled_at.is_not(None), Account.external_id.startswith(prefix))
            .group_by(Account.external_id)
        ).all()
    assert all(c <= cap for _, c in counts)
    if rate == 1.0:
        assert dict(counts) == {f"{prefix}{i}": min(n, cap) for i, n in enumerate(per_account) if n and cap}


def test_a_clip_whose_original_retention_purged_is_not_drawn(ws: Workspace) -> None:
    """It had nothing left to make safe to hear: the pipeline held it with an error, and it took a
    place in its household's cap."""
    from sqlalchemy import update

    from earmark.models import utcnow

    kept, purged = f.ingest(ws, 2, account_id="acct-p")
    f.allow(ws, "acct-p")
    with ws.transaction() as s:
        s.execute(update(Clip).where(Clip.external_id == purged).values(blob_key=None, original_purged_at=utcnow()))
    f.sample_all(ws)
    with ws.sessions() as s:
        status = dict(s.execute(select(Clip.external_id, Clip.status)).all())
    assert status == {kept: "pending", purged: "stored"}
