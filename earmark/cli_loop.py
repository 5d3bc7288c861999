"""The learning loop's commands: sample, sample-stream, export, metrics, eval sampling."""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from earmark.catalog import CatalogLine, InventoryFile, read_lines
from earmark.cli import _open, _settings, app, err, eval_app, out
from earmark.errors import InvalidInput
from earmark.export_formats import DEFAULT_SPLIT
from earmark.sampling import SampleResult
from earmark.sampling_policy import (
    CapCounter,
    EntityCheck,
    SamplingPolicy,
    StreamTotals,
    capped,
    draw_stream,
    entity_check,
    load_policy,
)
from earmark.textnorm import normalize
from earmark.types import Actor
from earmark.workspace import sampling_key, workspace_policy


def _policy(policy: Path | None, rate: float | None) -> SamplingPolicy:
    s = _settings()
    if policy is not None and rate is not None:
        raise InvalidInput("give either --policy or --rate, not both", field="rate")
    if rate is not None:
        if not 0.0 < rate <= 1.0:
            raise InvalidInput("--rate must be in (0, 1]", field="rate")
        return SamplingPolicy.uniform(rate, cap=s.sample_cap_per_account, period_days=s.sample_cap_days)
    if policy is None:
        return workspace_policy(s)
    # The workspace's household cap is a ceiling every draw keeps to, a policy file's included.
    return capped(load_policy(policy), s.sample_cap_per_account)


def _print_sample(result: SampleResult, dry_run: bool) -> None:
    table = Table(title="would be drawn per stratum" if dry_run else "drawn per stratum")
    table.add_column("stratum", no_wrap=True)
    for col in ("eligible", "drawn", "priority", "capped", "score"):
        table.add_column(col, justify="right")
    for name, st in result.as_dict()["strata"].items():
        table.add_row(
            escape(name),
            str(st["eligible"]),
            str(st["drawn"]),
            str(st["priority"]),
            str(st["capped"]),
            f"{st['mean_score']:.3f}",
        )
    out.print(table)
    out.print(
        "priority: drawn for the priority share; capped: held back by the household cap; score: mean priority score"
    )
    excluded = ", ".join(f"{k} {v}" for k, v in result.excluded.items()) or "none"
    verb = "would sample" if dry_run else "sampled"
    out.print(
        f"{result.considered} never-sampled clips, {result.eligible} eligible (excluded: {excluded}); "
        f"{verb} {result.drawn}, {result.capped} held back by the per-account cap"
    )


@app.command()
def sample(
    policy: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="Sampling policy (TOML or YAML); default: setting."),
    ] = None,
    rate: Annotated[float | None, typer.Option(help="Uniform draw of this share, instead of a policy.")] = None,
    dry_run: Annotated[bool, typer.Option(help="Show what would be drawn per stratum; change nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Draw clips for human review by a sampling policy: capped per household, priority where people help most."""
    pol = _policy(policy, rate)
    ws = _open()
    try:
        result = ws.draw_sample(actor=Actor.cli(), policy=pol, dry_run=dry_run)
    finally:
        ws.close()
    if as_json:
        print(json.dumps({"dry_run": dry_run, "policy": pol.digest(), **result.as_dict()}, indent=2))
        return
    _print_sample(result, dry_run)
    if (
        result.eligible
        and pol.budget.priority
        and abs(result.mean_score - pol.priority.mean_score) > 0.2 * max(pol.priority.mean_score, 1e-9)
    ):
        err.print(
            f"note: the eligible clips' mean priority score is {result.mean_score:.3f} but the policy assumes "
            f"priority.mean_score = {pol.priority.mean_score}; set it to the measured value so the draw "
            "spends the budget the policy states"
        )
    if not dry_run and result.drawn:
        out.print("run `earmark process` (or keep `earmark serve` running) to make them safe to hear and queue them")


def _entity_check(catalog: Path, inventory: Path | None) -> EntityCheck | None:
    names: dict[str, set[str]] = {}
    for lineno, line in enumerate(read_lines(catalog), 1):
        if not line.strip():
            continue
        try:
            entry = CatalogLine.model_validate_json(line)
        except ValueError as exc:
            raise InvalidInput(f"{catalog}:{lineno}: not a catalog line ({exc})", field="catalog") from None
        bucket = names.setdefault(entry.type, set())
        bucket.add(normalize(entry.name))
        bucket.update(normalize(a) for a in entry.aliases)
    slot_types: dict[str, str | None] = {}
    if inventory is not None:
        try:
            inv = InventoryFile.model_validate_json(inventory.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise InvalidInput(f"{inventory}: not an inventory file ({exc})", field="inventory") from None
        slot_types = {slot.name: slot.entity_type for slot in inv.slots}
    return entity_check(names, slot_types) if names else None


@app.command("sample-stream")
def sample_stream(
    policy: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="Sampling policy (TOML or YAML); default: setting."),
    ] = None,
    input_file: Annotated[
        Path | None, typer.Option("--input", "-i", help="Metadata JSONL (default: stdin).", dir_okay=False)
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Drawn lines (default: stdout).")] = None,
    catalog: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="Entity catalog JSONL, for the missing-entity criterion."),
    ] = None,
    inventory: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="Inventory JSON: which slot types link to the catalog."),
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option(
            dir_okay=False,
            help="Cap state carried between runs of a stream split into batches (read if present, "
            "replaced after a complete run; households as keyed pseudonyms).",
        ),
    ] = None,
) -> None:
    """Draw clips from a metadata stream without the database: JSONL in, drawn lines out, one line at a time.

    Each input line needs clip_id, account_id, recorded_at, and may carry locale, device_type, child_profile,
    wake_score, human_review (allow|deny; default: setting consent_default), device_asr, device_nlu. Drawn lines
    come out unchanged plus a `sampling` object (probability, reason, policy) that `earmark ingest` keeps.
    """
    s = _settings()
    pol = _policy(policy, None)
    key = sampling_key(s)
    known = None
    if catalog is not None:
        known = _entity_check(catalog, inventory)
    totals = StreamTotals()
    context = {"key": hmac.new(key, b"cap-state", hashlib.sha256).hexdigest()[:16], "period_days": pol.period_days}
    caps = _read_cap_state(state, pol.cap_per_account, context)

    def bad(lineno: int, why: str) -> None:
        err.print(f"line {lineno}: skipped: {escape(why)}", highlight=False)

    # Bytes: a line that is not UTF-8 is a bad line like any other, not the end of the stream.
    src = input_file.open("rb") if input_file else sys.stdin.buffer
    dst = output.open("w", encoding="utf-8") if output else sys.stdout
    try:
        for line in draw_stream(
            src,
            pol,
            key,
            default_consent=s.consent_default,
            known_entity=known,
            on_error=bad,
            totals=totals,
            caps=caps,
        ):
            dst.write(line + "\n")
    finally:
        if input_file:
            src.close()
        if output:
            dst.close()
    if state is not None:
        # Only a complete run moves the state on; a failed one leaves the previous state whole.
        tmp = state.with_name(state.name + ".tmp")
        tmp.write_text(json.dumps(caps.state(), separators=(",", ":")) + "\n", encoding="utf-8")
        tmp.replace(state)
    late = f" ({caps.late} of them late, from a period already closed)" if caps.late else ""
    excluded = ", ".join(f"{k} {v}" for k, v in sorted(totals.excluded.items())) or "none"
    err.print(
        f"read {totals.read}, drew {totals.drawn}, {totals.capped} held back by the per-account cap{late}, "
        f"excluded: {excluded}; {totals.bad} bad lines skipped, {totals.duplicates} repeated clip ids skipped"
    )


def _read_cap_state(path: Path | None, cap: int, context: dict[str, Any]) -> CapCounter:
    if path is None or not path.exists():
        return CapCounter(cap, context=context)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput(f"{path}: cannot read the cap state ({exc})", field="state") from exc
    return CapCounter.from_state(cap, raw, context=context)


export_app = typer.Typer(
    no_args_is_help=True, help="Training-data exports (ASR, NLU and wake-word formats), versioned and prunable."
)
app.add_typer(export_app, name="export")


@export_app.command("create")
def export_create(
    fmt: Annotated[
        str,
        typer.Option(
            "--format", "-f", help="lhotse, nemo, hf (ASR); rasa, massive (NLU); wakeword (what woke the device)."
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write (must be empty unless --force).")],
    audio: Annotated[
        str, typer.Option(help="protected (default) or original: only accounts whose training-use consent allows.")
    ] = "protected",
    name: Annotated[
        str | None, typer.Option(help="Name of the export (default: the folder's name; a new version keeps its name).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace a non-empty folder (a new version of its export).")] = False,
    split: Annotated[
        str,
        typer.Option(
            help="Percent of households in train/dev/test (each household wholly in one), or none: all train."
        ),
    ] = DEFAULT_SPLIT,
    skip_masked: Annotated[
        bool,
        typer.Option(
            help="Leave out items whose transcript holds a placeholder ([PHONE]); with --audio original, "
            "their audio says what the text does not."
        ),
    ] = False,
) -> None:
    """Export reviewed clips as training data, with a manifest (item ids, sampling, counts, content hash)."""
    from earmark.export import run_export

    ws = _open()
    try:
        columns = (TextColumn("export"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, console=err, transient=True) as progress:
            task = progress.add_task("export", total=None)
            result = run_export(
                ws,
                actor=Actor.cli(),
                fmt=fmt,
                out=output,
                audio=audio,
                name=name,
                force=force,
                split=split,
                skip_masked=skip_masked,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
    finally:
        ws.close()
    skipped = ", ".join(f"{k} {v}" for k, v in result.skipped.items()) or "none"
    out.print(
        f"export {escape(result.name)} v{result.version} ({result.format}): {result.items} item(s) in "
        f"{escape(str(result.path))}; skipped: {skipped}; content hash {result.content_hash[:16]}"
    )
    if split.strip().lower() == "none":
        out.print(f"no split: all {result.items} item(s) in train")
    else:
        out.print("split by household: " + ", ".join(f"{k} {v}" for k, v in result.splits.items()))
        empty = [k for k in ("train", "dev", "test") if not result.splits.get(k)]
        if empty:
            err.print(
                f"[yellow]warning:[/] no item in {', '.join(empty)}: too few households for this split; "
                "evaluate on another export or choose other ratios (--split)"
            )
    if audio == "original" and result.masked:
        err.print(
            f"[yellow]warning:[/] {result.masked} item(s) pair the original speech with a transcript holding "
            "placeholders ([PHONE], [PERSON]...): a mismatched ASR target; filter them, or export with --skip-masked",
            highlight=False,
        )


@export_app.command("prune")
def export_prune() -> None:
    """Rewrite every export that holds erased or withdrawn clips without them (a new version each)."""
    from earmark.export import prune_exports

    ws = _open()
    try:
        result = prune_exports(ws, actor=Actor.cli())
    finally:
        ws.close()
    out.print(f"pruned {result.exports} export(s), {result.items_removed} item(s) removed")
    if result.unchanged:
        out.print(f"{result.unchanged} marked export(s) held nothing to remove: same version, current again")
    for path in result.missing:
        err.print(
            f"[red]missing:[/] {escape(path)} is gone or moved; it stays marked until pruned: move it back, "
            "or if it was deleted, run `earmark export forget FOLDER`",
            highlight=False,
        )
    if result.missing:
        raise typer.Exit(1)


@export_app.command("forget")
def export_forget(
    export: Annotated[str, typer.Argument(help="The export's name or folder (see `earmark export list`).")],
) -> None:
    """Record that an export's folder was deleted, so no prune waits for it (audited; the folder must be gone)."""
    from earmark.export import forget_export

    ws = _open()
    try:
        with ws.transaction() as session:
            row = forget_export(session, actor=Actor.cli(), export=export)
            name, version, path = row.name, row.version, row.path
    finally:
        ws.close()
    out.print(f"export {escape(name)} v{version} ({escape(path)}) recorded as gone; no prune waits for it")


@export_app.command("list")
def export_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Every export with its version, state (current, needs_prune, superseded, gone) and item count."""
    from earmark.export import list_exports

    ws = _open()
    try:
        with ws.sessions() as session:
            rows = [
                {
                    "id": r.id,
                    "name": r.name,
                    "version": r.version,
                    "format": r.format,
                    "state": r.state,
                    "items": r.clips,
                    "audio": r.audio,
                    "created_at": r.created_at.isoformat(timespec="seconds"),
                    "path": r.path,
                    "content_hash": r.content_hash,
                }
                for r in list_exports(session)
            ]
    finally:
        ws.close()
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="exports")
    for col in ("id", "name", "version", "format", "state", "items", "path"):
        table.add_column(col)
    for r in rows:
        table.add_row(*(escape(str(r[c])) for c in ("id", "name", "version", "format", "state", "items", "path")))
    out.print(table)


@eval_app.command("sampling")
def eval_sampling(
    data: Annotated[Path, typer.Argument(help="Snips NLU benchmark folder (2017-06-custom-intent-engines).")],
    seeds: Annotated[int, typer.Option(help="Runs per policy.")] = 5,
    rounds: Annotated[int, typer.Option(help="Review rounds per run.")] = 30,
    budget: Annotated[int, typer.Option(help="Utterances heard per round.")] = 100,
    priority_share: Annotated[float, typer.Option(help="Priority share of a round.")] = 0.7,
    svg: Annotated[Path | None, typer.Option(help="Write the accuracy-vs-heard chart here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Does priority sampling pay? Simulate uniform vs priority review rounds and retrain an intent model."""
    try:
        from earmark.sampling_eval import Params, format_table, render_svg, run
    except ImportError as exc:
        raise InvalidInput(f"this evaluation needs scikit-learn: pip install 'earmark[eval]' ({exc})") from None

    params = Params(seeds=seeds, rounds=rounds, budget=budget, priority_share=priority_share)
    with err.status("simulating review rounds"):
        result = run(data, params)
    if svg is not None:
        svg.write_text(render_svg(result), encoding="utf-8")
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        out.print(format_table(result), markup=False, highlight=False)


def _range(bounds: list[float] | tuple[float, float] | None) -> str:
    """A share's 95% interval as "12.0–40.5%", or "–"."""
    return "–" if not bounds else f"{bounds[0]:.1%}–{bounds[1]:.1%}"


@app.command()
def metrics(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    since_days: Annotated[
        int | None, typer.Option(min=1, max=3650, help="Only labels of the last N days (1 to 3650).")
    ] = None,
) -> None:
    """Device ASR WER and NLU accuracy against reviewed labels (inverse-probability weighted), by locale,
    intent and device type; intent confusions; worst examples (masked); review cost; privacy figures."""
    from datetime import timedelta

    from earmark.metrics import compute_metrics
    from earmark.models import utcnow

    ws = _open()
    try:
        since = utcnow() - timedelta(days=since_days) if since_days else None
        with ws.transaction() as session:
            result = compute_metrics(
                session,
                actor=Actor.cli(),
                since=since,
                period_days=ws.settings.sample_cap_days,
                consent_default=ws.settings.consent_default,
            )
    finally:
        ws.close()
    data = result.as_dict()
    if as_json:
        print(json.dumps(data, indent=2))
        return

    def pct(v: float | None) -> str:
        return "–" if v is None else f"{v:.1%}"

    for group, rows in [("overall", {"all": data["overall"]}), *data["by"].items()]:
        table = Table(title=f"device errors by {group}" if group != "overall" else "device errors")
        for col in (group, "clips", "ASR WER", "(unweighted)", "intent acc.", "slot F1"):
            table.add_column(col, justify="left" if col == group else "right")
        for name, r in rows.items():
            table.add_row(
                escape(name),
                str(r["clips"]),
                pct(r["asr_wer"]),
                pct(r["asr_wer_unweighted"]),
                pct(r["intent_accuracy"]),
                "–" if r["slot_f1"] is None else f"{r['slot_f1']:.2f}",
            )
        out.print(table)
        if group == "overall" and data["overall"]["clips"]:
            o = data["overall"]
            f1 = "–" if o["slot_f1_unweighted"] is None else f"{o['slot_f1_unweighted']:.2f}"
            out.print(
                f"weights: the {o['clips']} clips are worth {o['effective_clips']} equally weighted ones "
                f"(effective sample size); the heaviest clip carries {pct(o['largest_weight_share'])} of the weight; "
                f"slot F1 unweighted {f1}"
            )
    c, p = data["cost"], data["privacy"]
    out.print(
        f"cost: {c['review_hours']} review hours over {c['passes']} passes; {c['useful_labels']} of "
        f"{c['reviewed_clips']} reviewed clips corrected the device; "
        f"{c['seconds_per_useful_label'] if c['seconds_per_useful_label'] is not None else '–'} s per useful label"
    )
    out.print(
        f"privacy: {p['heard_by_a_person']} of {p['recordings']} recordings heard by a person "
        f"({pct(p['share_heard'])}); at most {p['most_clips_heard_per_account_per_period']} per account per "
        f"{p['period_days']} days; PII found in {pct(p['share_of_processed_with_pii'])} of processed clips; "
        f"{p['clips_routed_to_safety']} to safety"
    )
    w = data["wake_word"]
    if w["answered"]:
        table = Table(title=f"what woke the device ({w['answered']} clips answered, {w['hours']} hours)")
        for col in ("answer", "clips", "median wake score"):
            table.add_column(col, justify="left" if col == "answer" else "right")
        for r in w["by_answer"]:
            score = r["median_wake_score"]
            table.add_row(r["description"], str(r["clips"]), "–" if score is None else f"{score:.2f}")
        out.print(table)
        out.print(
            f"false wakes: {w['false_wakes']}; weighted by how the clips were drawn, {pct(w['false_wake_share'])}"
            f" (95% interval {_range(w['false_wake_interval'])}); the weighted answers are worth "
            f"{w['effective_answers']} drawn evenly"
        )
        devices = Table(title="false wakes by device type")
        for col in ("device type", "clips answered", "false wakes", "weighted share", "95% interval"):
            devices.add_column(col, justify="left" if col == "device type" else "right")
        for d in w["by_device"]:
            devices.add_row(
                d["device_type"],
                str(d["answered"]),
                str(d["false_wakes"]),
                pct(d["false_wake_share"]),
                _range(d["interval"]),
            )
        out.print(devices)
