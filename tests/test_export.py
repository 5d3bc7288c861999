"""Exports load in the ecosystem's own libraries, never hold erased clips, and prune after erasure."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest
import soundfile as sf
import yaml
from sqlalchemy import select
from typer.testing import CliRunner

import earmark.export as export_mod
from earmark import audit
from earmark.catalog import import_catalog
from earmark.cli import app
from earmark.consent import set_consent
from earmark.errors import InvalidInput
from earmark.export import ITEMS, MANIFEST, content_hash, item_id, prune_exports, run_export
from earmark.models import Account, AuditEvent, Clip, Export
from earmark.queues import lease_next
from earmark.review import SlotIn, submit_annotation
from earmark.types import Actor, Consent
from earmark.workspace import Workspace
from tests import factories as f

TEXT = "play shake it off by taylor swift"
CATALOG = [
    {"id": "artist:taylor-swift", "name": "Taylor Swift", "type": "MusicArtist", "aliases": []},
    {"id": "song:shake-it-off", "name": "Shake It Off", "type": "MusicRecording", "aliases": []},
]


def _reviewed(ws: Workspace, n: int, accounts: int = 2) -> list[str]:
    """`n` clips over `accounts` households, each reviewed once with intent, slots and entity links."""
    with ws.transaction() as s:
        import_catalog(s, actor=Actor.cli(), lines=[json.dumps(x) for x in CATALOG])
    ids = f.queue_clips(ws, n, accounts=accounts, text=TEXT)
    reviewer = f.user(ws, "exp-reviewer")
    slots = [
        SlotIn(type="song", start=5, end=17, entity_id="song:shake-it-off"),
        SlotIn(type="artist", start=21, end=33, entity_id="artist:taylor-swift"),
    ]
    while True:
        with ws.transaction() as s:
            a = lease_next(s, actor=reviewer)
            if a is None:
                break
            submit_annotation(s, actor=reviewer, assignment_id=a.id, transcript=TEXT, intent="PlayMusic", slots=slots)
    return ids


def _export(ws: Workspace, fmt: str, out: Path, **kw: object):  # type: ignore[no-untyped-def]
    return run_export(ws, actor=Actor.cli(), fmt=fmt, out=out, **kw)  # type: ignore[arg-type]


def _no_customer_ids(ws: Workspace, folder: Path) -> None:
    with ws.sessions() as s:
        clip_ids = list(s.execute(select(Clip.external_id)).scalars())
    blob = b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())
    assert not any(c.encode() in blob for c in clip_ids)
    assert b"acct-q" not in blob


def test_lhotse_export_loads_in_lhotse(sqlite_ws: Workspace, tmp_path: Path) -> None:
    lhotse = pytest.importorskip("lhotse")
    _reviewed(sqlite_ws, 3)
    out = tmp_path / "lhotse"
    result = _export(sqlite_ws, "lhotse", out, split="none")
    assert result.items == 3 and result.version == 1
    recordings = lhotse.RecordingSet.from_file(out / "recordings_train.jsonl").with_path_prefix(out)
    supervisions = lhotse.SupervisionSet.from_file(out / "supervisions_train.jsonl")
    cuts = lhotse.CutSet.from_manifests(recordings=recordings, supervisions=supervisions)
    cut = next(iter(cuts))
    samples = cut.load_audio()
    assert samples.shape[0] == 1 and abs(samples.shape[1] / cut.sampling_rate - cut.duration) < 0.01
    assert cut.sampling_rate == 16_000 and cut.duration > 0.5
    assert cut.supervisions[0].text == TEXT
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["content_hash"] == content_hash(out) == result.content_hash
    assert sorted(manifest["item_ids"]) == sorted(r.id for r in recordings)
    assert manifest["counts"]["items"] == 3 and manifest["sampling"]["reasons"] == {"uniform": 3}
    _no_customer_ids(sqlite_ws, out)


def test_nemo_and_hf_audiofolder_exports(sqlite_ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _reviewed(sqlite_ws, 2)
    nemo = tmp_path / "nemo"
    _export(sqlite_ws, "nemo", nemo, split="none")
    rows = [json.loads(x) for x in (nemo / "train_manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and {r["text"] for r in rows} == {TEXT}
    for r in rows:
        info = sf.info(nemo / r["audio_filepath"])
        assert abs(info.frames / info.samplerate - r["duration"]) < 1e-3
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    datasets = pytest.importorskip("datasets")
    hf = tmp_path / "hf"
    _export(sqlite_ws, "hf", hf, split="none")
    ds = datasets.load_dataset("audiofolder", data_dir=str(hf), cache_dir=str(tmp_path / "hf-cache"))["train"]
    assert ds.num_rows == 2 and set(ds["transcription"]) == {TEXT} and set(ds["intent"]) == {"PlayMusic"}
    ds = ds.cast_column("audio", datasets.Audio(decode=False))
    for row in ds:
        audio = row["audio"]
        assert audio["path"].endswith(".wav") and (audio["bytes"] or Path(audio["path"]).exists())


def test_nlu_exports_rasa_and_massive_carry_catalog_ids(sqlite_ws: Workspace, tmp_path: Path) -> None:
    _reviewed(sqlite_ws, 2)
    rasa, massive = tmp_path / "rasa", tmp_path / "massive"
    _export(sqlite_ws, "rasa", rasa, split="none")
    data = yaml.safe_load((rasa / "train" / "nlu.yml").read_text())
    assert data["version"] == "3.1"
    [block] = data["nlu"]
    assert block["intent"] == "PlayMusic"
    examples = [x.removeprefix("- ") for x in block["examples"].splitlines()]
    assert examples == [
        'play [shake it off]{"entity": "song", "value": "song:shake-it-off"} by '
        '[taylor swift]{"entity": "artist", "value": "artist:taylor-swift"}'
    ]  # the same utterance twice is one training example
    # Rasa's own entity markup: text outside the brackets plus the entities gives back the utterance.
    plain = re.sub(r"\[([^\]]+)\]\{[^}]+\}", r"\1", examples[0])
    assert plain == TEXT
    assert not (rasa / "audio").exists()  # NLU exports carry no audio
    _export(sqlite_ws, "massive", massive)
    rows = [json.loads(x) for x in (massive / "massive.jsonl").read_text().splitlines()]
    assert rows[0]["annot_utt"] == "play [song : shake it off] by [artist : taylor swift]"
    assert rows[0]["utt"] == TEXT and rows[0]["intent"] == "PlayMusic"
    assert [s["entity_id"] for s in rows[0]["slots"]] == ["song:shake-it-off", "artist:taylor-swift"]


def test_non_empty_folder_is_refused_unless_forced_and_force_makes_a_new_version(
    sqlite_ws: Workspace, tmp_path: Path
) -> None:
    _reviewed(sqlite_ws, 1, accounts=1)
    out = tmp_path / "x"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(InvalidInput, match="not empty; choose a new folder or pass --force"):
        _export(sqlite_ws, "nemo", out)
    assert (out / "keep.txt").read_text() == "mine"  # nothing lost
    with pytest.raises(InvalidInput, match="unknown format 'kaldi'"):
        _export(sqlite_ws, "kaldi", tmp_path / "y")
    with pytest.raises(InvalidInput, match="not an earmark export"):  # --force replaces exports only
        _export(sqlite_ws, "nemo", out, force=True)
    assert (out / "keep.txt").read_text() == "mine"
    out = tmp_path / "z"
    first = _export(sqlite_ws, "nemo", out)
    second = _export(sqlite_ws, "nemo", out, force=True)
    assert (first.version, second.version) == (1, 2)
    with sqlite_ws.sessions() as s:
        states = [r.state for r in s.execute(select(Export).order_by(Export.id)).scalars()]
    assert states == ["superseded", "current"]
    assert not list(tmp_path.glob(".x.*"))  # no temporary folders left behind


def test_original_audio_only_for_accounts_that_allow_training_use(sqlite_ws: Workspace, tmp_path: Path) -> None:
    _reviewed(sqlite_ws, 4, accounts=2)
    with sqlite_ws.transaction() as s:
        set_consent(s, actor=Actor.cli(), account_id="acct-q0", training_use=Consent.allow)
    result = _export(sqlite_ws, "nemo", tmp_path / "orig", audio="original")
    assert result.items == 2 and result.skipped == {"no_training_consent": 2}
    protected = _export(sqlite_ws, "nemo", tmp_path / "prot")
    assert protected.items == 4
    orig = sorted((tmp_path / "orig" / "audio").iterdir())[0].read_bytes()
    prot = (tmp_path / "prot" / "audio" / sorted((tmp_path / "orig" / "audio").iterdir())[0].name).read_bytes()
    assert orig != prot  # the same item, once original and once anonymized


def test_withdrawing_training_use_prunes_the_original_audio_and_keeps_the_protected(
    sqlite_ws: Workspace, tmp_path: Path
) -> None:
    """The prune dropped only erased, withdrawn-from-review and safety clips: an original-audio
    export kept the customer's own voice after they withdrew training use."""
    _reviewed(sqlite_ws, 2, accounts=1)
    with sqlite_ws.transaction() as s:
        set_consent(s, actor=Actor.cli(), account_id="acct-q0", training_use=Consent.allow)
    assert _export(sqlite_ws, "nemo", tmp_path / "orig", audio="original").items == 2
    assert _export(sqlite_ws, "nemo", tmp_path / "prot").items == 2
    with sqlite_ws.transaction() as s:
        set_consent(s, actor=Actor.cli(), account_id="acct-q0", training_use=Consent.deny)
    result = prune_exports(sqlite_ws, actor=Actor.cli())
    assert result.items_removed == 2
    assert (tmp_path / "orig" / ITEMS).read_text() == "" and not list((tmp_path / "orig" / "audio").iterdir())
    assert len((tmp_path / "prot" / ITEMS).read_text().splitlines()) == 2  # anonymized audio: review consent


def test_force_replaces_only_an_earlier_export_never_the_workspace_or_another_folder(
    sqlite_ws: Workspace, tmp_path: Path
) -> None:
    """`--force` deleted whatever folder it was given: the blob store, the workspace itself."""
    _reviewed(sqlite_ws, 1, accounts=1)
    home = sqlite_ws.settings.home
    for target in (home, home / "blobs", home.parent, home / "exports"):
        with pytest.raises(InvalidInput, match="workspace"):
            _export(sqlite_ws, "rasa", target, force=True)
    assert any((home / "blobs").rglob("*")) and (home / "earmark.db").exists()
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep me")
    with pytest.raises(InvalidInput, match="not an earmark export"):
        _export(sqlite_ws, "rasa", other, force=True)
    assert (other / "mine.txt").read_text() == "keep me"
    assert _export(sqlite_ws, "rasa", home / "exports" / "nlu").items == 1
    assert _export(sqlite_ws, "rasa", home / "exports" / "nlu", force=True).items == 1  # an export: replaced


def test_a_clip_erased_while_the_export_runs_is_never_in_it(ws: Workspace, tmp_path: Path) -> None:
    _reviewed(ws, 4, accounts=2)
    erased: list[bool] = []

    def erase_midway(done: int, total: int) -> None:
        if not erased:
            erased.append(True)
            ws.erase(actor=Actor.cli(), account_id="acct-q1")

    result = run_export(ws, actor=Actor.cli(), fmt="lhotse", out=tmp_path / "e", progress=erase_midway)
    assert erased and result.items == 2 and result.skipped == {"erased": 2}
    items = (tmp_path / "e" / ITEMS).read_text().splitlines()
    assert len(items) == 2 and len(list((tmp_path / "e" / "audio").iterdir())) == 2
    with ws.sessions() as s:
        assert s.execute(select(Export.state)).scalar_one() == "current"  # nothing to prune: never held


def test_erasure_marks_exports_and_prune_rewrites_them(ws: Workspace, tmp_path: Path) -> None:
    _reviewed(ws, 4, accounts=2)
    out = tmp_path / "asr"
    first = _export(ws, "lhotse", out, split="none")
    nlu = _export(ws, "massive", tmp_path / "nlu")
    ws.erase(actor=Actor.cli(), account_id="acct-q1")
    with ws.sessions() as s:
        assert {r.state for r in s.execute(select(Export)).scalars()} == {"needs_prune"}
    if not ws.settings.database_url or ws.settings.database_url.startswith("sqlite"):
        # The CLI shows the same (it reaches a SQLite workspace by --home).
        listed = CliRunner().invoke(app, ["--home", str(ws.settings.home), "export", "list", "--json"])
        assert {r["state"] for r in json.loads(listed.stdout)} == {"needs_prune"}
    from earmark.export import prune_exports

    result = prune_exports(ws, actor=Actor.cli())
    assert (result.exports, result.items_removed) == (2, 4)
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["version"] == 2 and manifest["counts"]["items"] == 2 and manifest["pruned_at"]
    assert manifest["content_hash"] == content_hash(out) != first.content_hash
    assert len(list((out / "audio").iterdir())) == 2
    assert len((out / "supervisions_train.jsonl").read_text().splitlines()) == 2
    assert len((tmp_path / "nlu" / "massive.jsonl").read_text().splitlines()) == nlu.items - 2
    assert prune_exports(ws, actor=Actor.cli()).exports == 0  # nothing left to do
    with ws.sessions() as s:
        assert {r.state for r in s.execute(select(Export)).scalars()} == {"current"}
        assert audit.verify_chain(s).ok


def test_consent_withdrawal_marks_exports_too(ws: Workspace, tmp_path: Path) -> None:
    _reviewed(ws, 2, accounts=2)
    _export(ws, "rasa", tmp_path / "r")
    with ws.transaction() as s:
        set_consent(s, actor=Actor.cli(), account_id="acct-q0", human_review=Consent.deny)
    from earmark.export import prune_exports

    assert prune_exports(ws, actor=Actor.cli()).items_removed == 1
    assert _export(ws, "rasa", tmp_path / "r2").items == 1  # and new exports leave the account out


def test_nothing_to_export_is_an_error_that_writes_nothing(sqlite_ws: Workspace, tmp_path: Path) -> None:
    f.queue_clips(sqlite_ws, 1)  # queued, never reviewed
    with pytest.raises(InvalidInput, match="nothing to export: no reviewed clip can go out"):
        _export(sqlite_ws, "massive", tmp_path / "empty")
    assert not (tmp_path / "empty").exists() and not list(tmp_path.glob(".empty.*"))
    with sqlite_ws.sessions() as s:
        assert s.execute(select(Export)).first() is None


def test_gold_passes_are_not_the_clips_label(sqlite_ws: Workspace, tmp_path: Path) -> None:
    from earmark.quality import add_gold, serve_gold

    ids = _reviewed(sqlite_ws, 1, accounts=1)
    with sqlite_ws.transaction() as s:
        clip = s.execute(select(Clip).where(Clip.external_id == ids[0])).scalar_one()
        add_gold(s, actor=Actor.cli(), clip=clip, transcript=TEXT, intent="PlayMusic")
    newbie = f.user(sqlite_ws, "gold-taker")
    with sqlite_ws.transaction() as s:
        assert serve_gold(s, user=newbie) is not None
    with sqlite_ws.transaction() as s:
        a = lease_next(s, actor=newbie, queue="gold")
        assert a is not None
        submit_annotation(s, actor=newbie, assignment_id=a.id, transcript="play bake it of", intent="RateBook")
    _export(sqlite_ws, "massive", tmp_path / "g")
    [row] = [json.loads(x) for x in (tmp_path / "g" / "massive.jsonl").read_text().splitlines()]
    assert (row["utt"], row["intent"]) == (TEXT, "PlayMusic")  # the reviewed label, not the gold test pass


def test_a_clip_the_safety_team_kept_is_never_exported(ws: Workspace, tmp_path: Path) -> None:
    """Two passes: the first labels the clip, the second reviewer flags it as distressing and the
    safety team escalates it. The first pass's label must not make it training data."""
    from earmark import escalation
    from earmark.review import flag_sensitive
    from earmark.types import Role

    ws.settings.review_passes = 2
    ids = f.queue_clips(ws, 2, text=TEXT)
    r1, r2 = f.user(ws, "r1"), f.user(ws, "r2")
    for reviewer in (r1, r2):
        for _ in ids:
            with ws.transaction() as s:
                a = lease_next(s, actor=reviewer)
                clip = s.get(Clip, a.clip_id)  # type: ignore[union-attr]
                if reviewer is r2 and clip.external_id == ids[0]:  # type: ignore[union-attr]
                    flag_sensitive(s, actor=r2, assignment_id=a.id)  # type: ignore[union-attr]
                else:
                    submit_annotation(s, actor=reviewer, assignment_id=a.id, transcript=TEXT, intent="PlayMusic")  # type: ignore[union-attr]
    safety = f.user(ws, "saf1", Role.safety)
    with ws.transaction() as s:
        lease = escalation.lease_safety(s, actor=safety, max_clips=5, window_minutes=60, lease_seconds=600)
        assert lease.assignment is not None
        escalation.record_outcome(
            s, actor=safety, assignment_id=lease.assignment.id, outcome="escalated", note="protocol step 3"
        )
    result = _export(ws, "massive", tmp_path / "s")
    assert result.items == 1
    with ws.sessions() as s:
        kept = s.execute(select(Clip).where(Clip.external_id == ids[0])).scalar_one()
        assert kept.status == "reviewed"  # judged by the safety team, and still not exported
        from earmark.models import ExportClip

        assert kept.id not in s.execute(select(ExportClip.clip_id)).scalars().all()


def test_export_erase_prune_from_the_command_line(sqlite_ws: Workspace, tmp_path: Path) -> None:
    _reviewed(sqlite_ws, 2, accounts=2)
    home = str(sqlite_ws.settings.home)
    runner = CliRunner()
    out = tmp_path / "cli-export"
    made = runner.invoke(
        app, ["--home", home, "export", "create", "--format", "nemo", "-o", str(out), "--split", "none"]
    )
    assert made.exit_code == 0, made.output
    assert "export cli-export v1 (nemo): 2 item(s)" in made.output
    assert "no split: all 2 item(s) in train" in made.output and "by household" not in made.output
    assert json.loads((out / "earmark-manifest.json").read_text())["policy"]["split"] == "none (all in train)"
    again = runner.invoke(app, ["--home", home, "export", "create", "--format", "nemo", "-o", str(out)])
    assert again.exit_code == 1 and "pass --force" in again.output
    erased = runner.invoke(app, ["--home", home, "erase", "acct-q1"])
    assert "1 export(s) held its clips: run `earmark export prune`" in erased.output
    pruned = runner.invoke(app, ["--home", home, "export", "prune"])
    assert "pruned 1 export(s), 1 item(s) removed" in pruned.output
    assert len((out / "train_manifest.jsonl").read_text().splitlines()) == 1
    # One household cannot fill three splits: said, not left for the trainer to find.
    split = runner.invoke(app, ["--home", home, "export", "create", "--format", "nemo", "-o", str(tmp_path / "s")])
    assert split.exit_code == 0 and "warning: no item in" in split.output, split.output
    wake = runner.invoke(app, ["--home", home, "export", "create", "--format", "wakeword", "-o", str(tmp_path / "w")])
    assert wake.exit_code == 1 and "no wake-word answers yet" in wake.output


def test_a_withdrawal_while_an_export_is_written_keeps_the_clip_out(ws: Workspace, tmp_path: Path) -> None:
    """Consent was read when the export began and re-checked only for erasure when it was
    registered: the withdrawn customer's transcript went out in a current export no prune knew of."""
    _reviewed(ws, 2, accounts=2)
    with ws.sessions() as s:
        gone = s.execute(select(Clip.external_id).join(Account).where(Account.external_id == "acct-q0")).scalar_one()

    def withdraw_once(done: int, total: int) -> None:  # after the clips were read, before registering
        if done == total:
            ws.set_consent(actor=Actor.cli(), account_id="acct-q0", human_review=Consent.deny)

    result = run_export(ws, actor=Actor.cli(), fmt="rasa", out=tmp_path / "exp", progress=withdraw_once)
    assert result.items == 1
    assert item_id(ws.secret, gone) not in (tmp_path / "exp" / ITEMS).read_text()
    manifest = json.loads((tmp_path / "exp" / MANIFEST).read_text())
    assert manifest["counts"]["skipped"] == {"withdrawn": 1}


@f.postgres_only
def test_an_erasure_during_a_prune_is_pruned_too(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The erasure found the export already waiting for the prune that was running and marked
    nothing; the prune then set it current with the erased clip still in it."""
    _reviewed(ws, 3, accounts=3)
    out = tmp_path / "exp"
    run_export(ws, actor=Actor.cli(), fmt="rasa", out=out)
    ws.set_consent(actor=Actor.cli(), account_id="acct-q2", human_review=Consent.deny)  # marks it
    with ws.sessions() as s:
        erased = s.execute(select(Clip.external_id).join(Account).where(Account.external_id == "acct-q0")).scalar_one()
    rendering, go = threading.Event(), threading.Event()
    real = export_mod._render_folder

    def render_slowly(folder, fmt, items, **kw):  # type: ignore[no-untyped-def]
        if threading.current_thread().name == "pruner":
            rendering.set()
            go.wait(30)
        real(folder, fmt, items, **kw)

    monkeypatch.setattr(export_mod, "_render_folder", render_slowly)
    pruner = threading.Thread(target=prune_exports, args=(ws,), kwargs={"actor": Actor.cli()}, name="pruner")
    pruner.start()
    assert rendering.wait(30)
    eraser = threading.Thread(target=ws.erase, kwargs={"actor": Actor.cli(), "account_id": "acct-q0"})
    eraser.start()
    f.wait_for_lock_wait(ws, [eraser])  # the erasure's mark waits for the prune
    go.set()
    pruner.join()
    eraser.join()
    with ws.sessions() as s:
        assert s.execute(select(Export.state)).scalar_one() == "needs_prune"
    prune_exports(ws, actor=Actor.cli())
    assert item_id(ws.secret, erased) not in (out / ITEMS).read_text()


@f.postgres_only
def test_an_erasure_between_reading_a_chunk_and_opening_its_audio_leaves_the_clip_out(
    ws: Workspace, tmp_path: Path
) -> None:
    """The chunk was read, then the erasure shredded the key and committed: the whole export
    failed with KeyUnavailable instead of leaving the erased clips out."""
    _reviewed(ws, 3, accounts=2)
    eraser = f.Racer(lambda: ws.erase(actor=Actor.cli(), account_id="acct-q0"))
    with f.at_statement(ws, eraser, "FROM account_keys"):
        result = run_export(ws, actor=Actor.cli(), fmt="lhotse", out=tmp_path / "e")
    eraser.join()
    assert eraser.error is None, eraser.error
    assert result.items == 1 and result.skipped == {"erased": 2}


def test_households_never_cross_splits_and_the_split_follows_the_ratio() -> None:
    """Exports had no split at all: a random split of them put one household's voice in train and test."""
    from earmark.export_formats import parse_split, split_of

    secret = b"s" * 32
    ratio = parse_split("80/10/10")
    splits = [split_of(secret, f"acct-{i}", ratio) for i in range(5000)]
    assert abs(splits.count("train") / 5000 - 0.8) < 0.03
    assert abs(splits.count("dev") / 5000 - 0.1) < 0.02 and abs(splits.count("test") / 5000 - 0.1) < 0.02
    assert splits == [split_of(secret, f"acct-{i}", ratio) for i in range(5000)]  # stable
    assert split_of(secret, "acct-1", parse_split("none")) == "train"
    for bad in ("80/20", "80/10/20", "a/b/c", "-10/60/50"):
        with pytest.raises(InvalidInput, match=r"split: .* add up to 100"):
            parse_split(bad)


def test_every_format_writes_household_disjoint_splits_that_stay_across_versions(
    sqlite_ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _reviewed(sqlite_ws, 40, accounts=20)  # two clips per household
    with sqlite_ws.sessions() as s:
        household = {
            item_id(sqlite_ws.secret, ext): acct
            for ext, acct in s.execute(select(Clip.external_id, Account.external_id).join(Account)).all()
        }
    massive = tmp_path / "massive"
    result = _export(sqlite_ws, "massive", massive, split="50/25/25")
    rows = [json.loads(x) for x in (massive / "massive.jsonl").read_text().splitlines()]
    by_household: dict[str, set[str]] = {}
    for r in rows:
        by_household.setdefault(household[r["id"]], set()).add(r["partition"])
    assert all(len(v) == 1 for v in by_household.values())  # a household is in one split
    assert {p for v in by_household.values() for p in v} == {"train", "dev", "test"}
    manifest = json.loads((massive / MANIFEST).read_text())
    sizes = {k: sum(r["partition"] == k for r in rows) for k in ("train", "dev", "test")}
    assert manifest["counts"]["splits"] == sizes == result.splits
    assert manifest["policy"]["split"].startswith("50/25/25")
    # The same households in the same splits in every format, and in a new version.
    lhotse = tmp_path / "lhotse"
    _export(sqlite_ws, "lhotse", lhotse, split="50/25/25")
    for split in ("train", "dev", "test"):
        sups = [json.loads(x) for x in (lhotse / f"supervisions_{split}.jsonl").read_text().splitlines()]
        assert {household[x["id"]] for x in sups} == {h for h, v in by_household.items() if v == {split}}
    nemo = tmp_path / "nemo"
    _export(sqlite_ws, "nemo", nemo, split="50/25/25")
    assert len((nemo / "dev_manifest.jsonl").read_text().splitlines()) == sizes["dev"]
    rasa = tmp_path / "rasa"
    _export(sqlite_ws, "rasa", rasa, split="50/25/25")
    assert sorted(p.parent.name for p in rasa.rglob("nlu.yml")) == ["dev", "test", "train"]
    again = _export(sqlite_ws, "massive", massive, split="50/25/25", force=True)
    assert again.version == 2 and again.splits == sizes
    # A prune removes households, never moves one: the others keep their split.
    sqlite_ws.erase(actor=Actor.cli(), account_id="acct-q3")
    prune_exports(sqlite_ws, actor=Actor.cli())
    after = [json.loads(x) for x in (massive / "massive.jsonl").read_text().splitlines()]
    assert {r["id"]: r["partition"] for r in after} == {
        r["id"]: r["partition"] for r in rows if household[r["id"]] != "acct-q3"
    }
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    datasets = pytest.importorskip("datasets")
    hf = tmp_path / "hf"
    hf_result = _export(sqlite_ws, "hf", hf, split="50/25/25")
    ds = datasets.load_dataset("audiofolder", data_dir=str(hf), cache_dir=str(tmp_path / "hf-cache"))
    assert {k: ds[k].num_rows for k in ds} == {
        {"dev": "validation"}.get(k, k): v for k, v in hf_result.splits.items() if v
    }
    assert {household[i] for i in ds["validation"]["id"]}.isdisjoint(household[i] for i in ds["train"]["id"])


def test_a_prune_that_empties_a_split_removes_its_files(sqlite_ws: Workspace, tmp_path: Path) -> None:
    _reviewed(sqlite_ws, 6, accounts=6)
    out = tmp_path / "hf"
    result = _export(sqlite_ws, "hf", out, split="34/33/33")
    items = [json.loads(x) for x in (out / ITEMS).read_text().splitlines()]
    with sqlite_ws.sessions() as s:
        acct = dict(s.execute(select(Clip.external_id, Account.external_id).join(Account)).all())
    owner = {item_id(sqlite_ws.secret, ext): a for ext, a in acct.items()}
    smallest = min((k for k, v in result.splits.items() if v), key=lambda k: result.splits[k])
    for it in items:
        if it["split"] == smallest:
            sqlite_ws.erase(actor=Actor.cli(), account_id=owner[it["id"]])
    prune_exports(sqlite_ws, actor=Actor.cli())
    folder = {"dev": "validation"}.get(smallest, smallest)
    assert not (out / folder).exists()
    assert json.loads((out / MANIFEST).read_text())["counts"]["splits"][smallest] == 0


def test_withdrawing_training_use_marks_only_original_audio_and_prune_history_is_cumulative(
    sqlite_ws: Workspace, tmp_path: Path
) -> None:
    """A training-use withdrawal marked every export holding the account's clips, and the prune
    made a new version of each (0 items removed) and overwrote the manifest's pruned count."""
    _reviewed(sqlite_ws, 4, accounts=2)
    with sqlite_ws.transaction() as s:
        for acct in ("acct-q0", "acct-q1"):
            set_consent(s, actor=Actor.cli(), account_id=acct, training_use=Consent.allow)
    orig = tmp_path / "orig"
    _export(sqlite_ws, "nemo", orig, audio="original")
    _export(sqlite_ws, "nemo", tmp_path / "prot")
    _export(sqlite_ws, "massive", tmp_path / "nlu")
    home = str(sqlite_ws.settings.home)
    said = CliRunner().invoke(app, ["--home", home, "consent", "set", "acct-q0", "--training-use", "deny"])
    assert said.exit_code == 0, said.output
    assert "human review allow, training use deny" in said.output
    assert "1 export(s) hold its clips and are marked: run `earmark export prune`" in said.output
    with sqlite_ws.sessions() as s:
        states = {Path(r.path).name: r.state for r in s.execute(select(Export)).scalars()}
    assert states == {"orig": "needs_prune", "prot": "current", "nlu": "current"}
    first = prune_exports(sqlite_ws, actor=Actor.cli())
    assert (first.exports, first.items_removed, first.unchanged) == (1, 2, 0)
    sqlite_ws.erase(actor=Actor.cli(), account_id="acct-q1")
    prune_exports(sqlite_ws, actor=Actor.cli())
    manifest = json.loads((orig / MANIFEST).read_text())
    assert manifest["version"] == 3 and manifest["counts"]["skipped"]["pruned"] == 4  # 2 + 2, not the last 2
    # A marked export with nothing to remove keeps its version and files.
    before = (tmp_path / "prot" / MANIFEST).read_text()
    with sqlite_ws.transaction() as s:
        row = s.execute(select(Export).where(Export.path == str((tmp_path / "prot").resolve()))).scalar_one()
        assert row.version == 2
        row.state = "needs_prune"
    again = prune_exports(sqlite_ws, actor=Actor.cli())
    assert (again.exports, again.items_removed, again.unchanged) == (0, 0, 1)
    assert (tmp_path / "prot" / MANIFEST).read_text() == before
    with sqlite_ws.sessions() as s:
        row = s.execute(select(Export).where(Export.path == str((tmp_path / "prot").resolve()))).scalar_one()
        assert (row.version, row.state) == (2, "current")


def test_a_new_version_keeps_format_and_name_and_text_formats_refuse_original_audio(
    sqlite_ws: Workspace, tmp_path: Path
) -> None:
    """`--force` made "lhotse v2" in MASSIVE format and ignored `--name`; `--audio original` was
    accepted for rasa, which has no audio."""
    _reviewed(sqlite_ws, 1, accounts=1)
    out = tmp_path / "lhotse"
    _export(sqlite_ws, "lhotse", out)
    with pytest.raises(InvalidInput, match=r"format: .* in lhotse format; a new version keeps the format"):
        _export(sqlite_ws, "massive", out, force=True)
    with pytest.raises(InvalidInput, match=r"name: .* holds export 'lhotse'; a new version keeps its name"):
        _export(sqlite_ws, "lhotse", out, force=True, name="newname")
    assert _export(sqlite_ws, "lhotse", out, force=True, name="lhotse").version == 2
    assert json.loads((out / MANIFEST).read_text())["format"] == "lhotse"
    with pytest.raises(InvalidInput, match="audio: rasa is a text-only format"):
        _export(sqlite_ws, "rasa", tmp_path / "r", audio="original")
    assert not (tmp_path / "r").exists()
    made = CliRunner().invoke(
        app,
        ["--home", str(sqlite_ws.settings.home), "export", "create", "-f", "massive", "-o", str(out), "--force"],
    )
    assert made.exit_code == 1 and "a new version keeps the format" in made.output


def test_a_deleted_export_folder_can_be_forgotten_instead_of_failing_every_prune(
    sqlite_ws: Workspace, tmp_path: Path
) -> None:
    """`rm -rf` of an export folder left it in needs_prune for ever: every prune exited 1."""
    import shutil

    _reviewed(sqlite_ws, 2, accounts=2)
    home = str(sqlite_ws.settings.home)
    runner = CliRunner()
    kept, deleted = tmp_path / "kept", tmp_path / "a"
    _export(sqlite_ws, "massive", kept)
    _export(sqlite_ws, "massive", deleted)
    refused = runner.invoke(app, ["--home", home, "export", "forget", "a"])
    assert refused.exit_code == 1 and "still exists: forget only records a deleted export" in refused.output
    shutil.rmtree(deleted)
    sqlite_ws.erase(actor=Actor.cli(), account_id="acct-q0")
    pruned = runner.invoke(app, ["--home", home, "export", "prune"])
    assert pruned.exit_code == 1 and "run `earmark export forget FOLDER`" in pruned.output
    assert "pruned 1 export(s), 1 item(s) removed" in pruned.output  # the other export is done
    unknown = runner.invoke(app, ["--home", home, "export", "forget", "nope"])
    assert unknown.exit_code == 1 and "no current export named 'nope'" in unknown.output
    forgot = runner.invoke(app, ["--home", home, "export", "forget", str(deleted)])
    assert forgot.exit_code == 0, forgot.output
    assert "export a v1" in forgot.output and "recorded as gone" in forgot.output
    again = runner.invoke(app, ["--home", home, "export", "prune"])
    assert again.exit_code == 0 and "pruned 0 export(s)" in again.output
    sqlite_ws.erase(actor=Actor.cli(), account_id="acct-q1")  # a gone export is not marked again
    with sqlite_ws.sessions() as s:
        states = {Path(r.path).name: r.state for r in s.execute(select(Export)).scalars()}
        forgotten = s.execute(select(AuditEvent).where(AuditEvent.action == "export.forget")).scalar_one()
        assert audit.verify_chain(s).ok
    assert states == {"kept": "needs_prune", "a": "gone"}
    assert forgotten.details == {"version": 1, "state": "needs_prune", "items": 2}
    assert runner.invoke(app, ["--home", home, "export", "prune"]).exit_code == 0
    # The customer is told the dataset that held their recording was deleted, and when.
    from earmark.transparency import build_report

    with sqlite_ws.transaction() as s:
        report = build_report(s, actor=Actor.cli(), account_id="acct-q1", secret=sqlite_ws.secret)
    [left] = [e for e in report["exports_left"] if e["name"] == "a"]
    assert left["how"] == "the dataset was deleted" and left["removed_on"] is not None
    # The forgotten export's folder is free: a new export there is a new export, in any format,
    # and the deleted dataset stays in the report.
    f.queue_clips(sqlite_ws, 1, seed=3)
    f.review_all(sqlite_ws, f.user(sqlite_ws, "late"))
    assert run_export(sqlite_ws, actor=Actor.cli(), fmt="rasa", out=deleted).items == 1
    with sqlite_ws.sessions() as s:
        rows = [(r.name, r.version, r.format, r.state) for r in s.execute(select(Export).order_by(Export.id)).scalars()]
    assert rows[-1] == ("a", 1, "rasa", "current") and ("a", 1, "massive", "gone") in rows
    with sqlite_ws.transaction() as s:
        report = build_report(s, actor=Actor.cli(), account_id="acct-q1", secret=sqlite_ws.secret)
    assert [e["how"] for e in report["exports_left"] if e["name"] == "a"] == ["the dataset was deleted"]


def test_original_audio_with_placeholder_transcripts_is_counted_warned_and_can_be_left_out(
    sqlite_ws: Workspace, tmp_path: Path
) -> None:
    """`--audio original` paired the customer's real speech with `call [PERSON] at [PHONE]`, without a word."""
    f.queue_clips(sqlite_ws, 2, accounts=1, text="call zebediah on five five five one two three four")
    f.queue_clips(sqlite_ws, 1, accounts=1, seed=1, text="play shake it off")
    reviewer = f.user(sqlite_ws, "masker")
    while True:
        with sqlite_ws.transaction() as s:
            a = lease_next(s, actor=reviewer)
            if a is None:
                break
            clip = s.get(Clip, a.clip_id)
            assert clip is not None and clip.redacted_text
            submit_annotation(s, actor=reviewer, assignment_id=a.id, transcript=clip.redacted_text, intent="Call")
    with sqlite_ws.transaction() as s:
        set_consent(s, actor=Actor.cli(), account_id="acct-q0", training_use=Consent.allow)
    home = str(sqlite_ws.settings.home)
    out = tmp_path / "orig"
    args = ["--home", home, "export", "create", "-f", "nemo", "-o", str(out), "--audio", "original"]
    made = CliRunner().invoke(app, args)
    assert made.exit_code == 0, made.output
    assert "warning: 2 item(s) pair the original speech with a transcript holding placeholders" in made.output
    assert json.loads((out / MANIFEST).read_text())["counts"]["masked_transcripts"] == 2
    skipped = _export(sqlite_ws, "nemo", tmp_path / "clean", audio="original", skip_masked=True)
    assert skipped.items == 1 and skipped.skipped == {"masked": 2} and skipped.masked == 0
    texts_out = [json.loads(x)["text"] for x in (tmp_path / "clean" / ITEMS).read_text().splitlines()]
    assert texts_out == ["play shake it off"] and all("[" not in t for t in texts_out)
    protected = CliRunner().invoke(app, ["--home", home, "export", "create", "-f", "nemo", "-o", str(tmp_path / "p")])
    assert protected.exit_code == 0 and "pair the original speech" not in protected.output  # bleeped audio matches
