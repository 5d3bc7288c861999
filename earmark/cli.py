"""The `earmark` command: one Typer app calling the same domain functions as the web layer."""

from __future__ import annotations

import csv
import enum
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import click
import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy.exc import DBAPIError
from typer.core import TyperGroup

from earmark import audit, auth, db, keys
from earmark.config import Settings, load_settings
from earmark.db import BUSY_MESSAGE, is_transient
from earmark.errors import EarmarkError, InvalidInput
from earmark.manifest import ClipMeta, read_manifest
from earmark.pipeline import ProcessResult, pending_clip_ids
from earmark.types import Actor, Consent, Role
from earmark.workspace import Workspace, init_workspace, open_workspace

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


class _Group(TyperGroup):
    """Prints earmark's errors as one clear line and exits 1 (no traceback for user mistakes)."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except EarmarkError as exc:
            err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
            raise typer.Exit(1) from None
        except OSError as exc:
            if exc.filename is None or exc.strerror is None:  # not a path the user named: a real fault
                raise
            err.print(f"[red]error:[/] {escape(exc.strerror)}: {escape(str(exc.filename))}", highlight=False)
            raise typer.Exit(1) from None
        except DBAPIError as exc:
            if not is_transient(exc):
                raise
            err.print(f"[red]error:[/] {BUSY_MESSAGE}", highlight=False)
            raise typer.Exit(75) from None  # EX_TEMPFAIL


app = typer.Typer(
    cls=_Group,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="earmark: privacy-first human review of voice clips.",
)
token_app = typer.Typer(no_args_is_help=True, help="Service tokens for the HTTP API.")
consent_app = typer.Typer(no_args_is_help=True, help="Customers' consent to human review.")
keys_app = typer.Typer(no_args_is_help=True, help="Workspace encryption keys.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
user_app = typer.Typer(no_args_is_help=True, help="Users of the web UI.")
audit_app = typer.Typer(no_args_is_help=True, help="The tamper-evident audit log.")
app.add_typer(token_app, name="token")
app.add_typer(consent_app, name="consent")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
app.add_typer(audit_app, name="audit")
eval_app = typer.Typer(no_args_is_help=True, help="Measure the pipeline's stages on evaluation data.")
pii_app = typer.Typer(no_args_is_help=True, help="Personal data in transcripts.")
app.add_typer(eval_app, name="eval")
app.add_typer(pii_app, name="pii")


class State:
    home: Path | None = None


state = State()


@app.callback()
def _main(
    home: Annotated[
        Path | None,
        typer.Option("--home", envvar="EARMARK_HOME", help="Workspace folder (default ./earmark-data)."),
    ] = None,
) -> None:
    state.home = home


def _settings() -> Settings:
    return load_settings(state.home)


def _open() -> Workspace:
    return open_workspace(_settings())


def _read_password(stdin: bool) -> str | None:
    if stdin:
        return sys.stdin.readline().rstrip("\n")
    return None


@app.command()
def init(
    admin: Annotated[str, typer.Option(help="Username of the first admin.")] = "admin",
    password_stdin: Annotated[bool, typer.Option(help="Read the admin password from stdin.")] = False,
) -> None:
    """Create a workspace (settings, keys, database, blob store) and its first admin."""
    ws, password = init_workspace(_settings(), admin_username=admin, admin_password=_read_password(password_stdin))
    ws.close()
    out.print(f"[green]workspace ready[/] at {ws.settings.home}")
    if password and not password_stdin:
        out.print(f"admin login: [bold]{admin}[/] / [bold]{password}[/]  (shown once)")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the workspace database to the newest schema."""
    settings = _settings()
    engine = db.make_engine(settings.db_url)
    try:
        db.upgrade(engine)
        current, _ = db.schema_revisions(engine)
    finally:
        engine.dispose()
    out.print(f"database at revision {current}")


@db_app.command("current")
def db_current() -> None:
    """Show the database's schema revision and the newest one."""
    engine = db.make_engine(_settings().db_url)
    try:
        current, head = db.schema_revisions(engine)
    finally:
        engine.dispose()
    out.print(f"current: {current}  newest: {head}")


@app.command()
def ingest(
    manifest: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSONL manifest.")],
) -> None:
    """Ingest the clips a JSONL manifest lists (idempotent by clip_id)."""
    ws = _open()
    try:
        ws.collect_orphans()
        lines = list(read_manifest(manifest))
        created = duplicates = 0
        problems: list[tuple[int, str]] = []
        good: list[tuple[int, ClipMeta]] = []
        for line in lines:
            if line.meta is None:
                problems.append((line.lineno, line.error or "invalid"))
            else:
                good.append((line.lineno, line.meta))
        limit = ws.settings.max_upload_bytes

        def loader(meta: ClipMeta) -> Callable[[], bytes]:
            def load() -> bytes:
                assert meta.audio is not None
                path = (manifest.parent / meta.audio).resolve()
                try:
                    size = path.stat().st_size
                    if size > limit:
                        raise InvalidInput(f"file is {size} bytes; the limit is {limit}", field="audio")
                    return path.read_bytes()
                except OSError as exc:
                    raise InvalidInput(f"cannot read {meta.audio}: {exc.strerror}", field="audio") from exc

            return load

        # Counted in manifest lines, the bad ones included (done as soon as read): the total is
        # the manifest's, not the count of lines that parsed.
        columns = (TextColumn("ingest"), BarColumn(), MofNCompleteColumn(), TextColumn("lines"), TimeRemainingColumn())
        with Progress(*columns, console=err, transient=False) as progress:
            task = progress.add_task("ingest", total=len(lines), completed=len(problems))
            outcomes = ws.ingest_many(((m, loader(m)) for _, m in good), actor=Actor.cli(), via="manifest")
            for (lineno, _), outcome in zip(good, outcomes, strict=True):
                progress.advance(task)
                if outcome.error is not None:
                    problems.append((lineno, str(outcome.error)))
                elif outcome.result is not None and outcome.result.created:
                    created += 1
                else:
                    duplicates += 1
        problems.sort()
    finally:
        ws.close()
    out.print(f"ingested {created} new clip(s), {duplicates} already present, {len(problems)} rejected")
    for lineno, reason in problems:
        err.print(f"[red]line {lineno}[/]: {escape(reason)}", highlight=False)
    if problems:
        raise typer.Exit(1)


@app.command()
def gc(
    grace: Annotated[float, typer.Option(help="Keep unreferenced blobs younger than this many seconds.")] = 3600.0,
) -> None:
    """Delete orphan blobs (written by an ingest that died before its row was committed)."""
    ws = _open()
    try:
        n = ws.collect_orphans(grace_seconds=grace)
    finally:
        ws.close()
    out.print(f"deleted {n} orphan blob(s)")


class TokenRole(enum.StrEnum):
    """The roles a token may have (people log in; tokens are for systems and auditors' scripts)."""

    service = "service"
    admin = "admin"
    auditor = "auditor"


@token_app.command("create")
def token_create(
    role: Annotated[TokenRole, typer.Option(help="Role of the token.")] = TokenRole.service,
    label: Annotated[str, typer.Option(help="What the token is for.")] = "",
) -> None:
    """Create an API token. The secret is printed once and stored only hashed."""
    ws = _open()
    try:
        with ws.transaction() as session:
            row, secret = auth.create_token(session, actor=Actor.cli(), role=Role(role.value), label=label)
            token_id = row.id
    finally:
        ws.close()
    err.print(f"token {token_id} ({role}) created; store it now, it is not shown again:")
    print(secret)


@token_app.command("revoke")
def token_revoke(token_id: int) -> None:
    """Revoke an API token by id."""
    ws = _open()
    try:
        with ws.transaction() as session:
            auth.revoke_token(session, actor=Actor.cli(), token_id=token_id)
    finally:
        ws.close()
    out.print(f"token {token_id} revoked")


@consent_app.command("set")
def consent_set(
    account: str,
    human_review: Annotated[Consent | None, typer.Option("--human-review", help="allow or deny")] = None,
    training_use: Annotated[
        Consent | None, typer.Option("--training-use", help="Original audio in training exports: allow or deny.")
    ] = None,
    create: Annotated[bool, typer.Option(help="Record consent for an account with no clips yet.")] = False,
) -> None:
    """Record an account's consent to human review and to training use of its original audio.
    `--human-review deny` withdraws its queued clips at once."""
    ws = _open()
    try:
        result = ws.set_consent(
            actor=Actor.cli(), account_id=account, human_review=human_review, training_use=training_use, create=create
        )
    finally:
        ws.close()
    out.print(
        f"account {account}: human review {result.human_review}, training use {result.training_use}; "
        f"{result.withdrawn} clip(s) withdrawn"
    )
    if result.exports_to_prune:
        out.print(
            f"{result.exports_to_prune} export(s) hold its clips and are marked: run `earmark export prune` "
            "to rewrite them without them"
        )
    if result.derivatives_deleted or result.annotations_deleted:
        out.print(
            f"deleted {result.derivatives_deleted} protected clip(s) and {result.annotations_deleted} annotation(s); "
            "run `earmark export prune` if exports held them"
        )


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Re-wrap every account key under a new workspace key (blobs are not re-encrypted)."""
    ws = _open()
    try:
        from_env = ws.settings.workspace_key is not None
        key_file = None if from_env else ws.settings.key_file
        with ws.transaction() as session:
            new_id, new, n = keys.rotate_workspace_key(
                session, actor=Actor.cli(), keyring=ws.keyring, key_file=key_file
            )
        if key_file is not None:
            keys.finish_rotation(key_file, new_id, new)
    finally:
        ws.close()
    out.print(f"workspace key rotated to {new_id}; {n} account key(s) re-wrapped")
    if from_env:
        import base64

        err.print("the workspace key comes from EARMARK_WORKSPACE_KEY: replace it with this value now:")
        print(base64.b64encode(new).decode())


@app.command()
def process(
    limit: Annotated[int, typer.Option(help="Most clips to process in this run.")] = 100_000,
    retry_held: Annotated[
        bool,
        typer.Option(
            "--retry-held",
            help="First send clips held by a processing error (error:...) back to the pipeline, once the "
            "cause is fixed; clips of accounts that no longer allow review stay held.",
        ),
    ] = False,
) -> None:
    """Run sampled clips through the safe-to-hear pipeline and queue the protected versions."""
    ws = _open()
    try:
        if retry_held:
            from earmark.pipeline import retry_held as send_back

            with ws.transaction() as session:
                n = send_back(session, actor=Actor.cli(), consent_default=ws.settings.consent_default)
            err.print(f"{n} held clip(s) sent back to the pipeline")
        with ws.sessions() as session:
            total = min(limit, len(pending_clip_ids(session, limit=limit)))
        counts: dict[str, int] = {}
        columns = (TextColumn("protect"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=err) as progress:
            task = progress.add_task("protect", total=total)
            if total:
                progress.update(task, description="loading models")
                ws.components()

            def done(result: ProcessResult) -> None:
                key = result.outcome if result.reason is None else f"{result.outcome} ({result.reason})"
                counts[key] = counts.get(key, 0) + 1
                progress.advance(task)

            ws.process_pending(limit=limit, on_done=done)
    finally:
        ws.close()
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "nothing to do"
    out.print(f"processed {sum(counts.values())} clip(s): {summary}")


@app.command()
def stats(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Counts of accounts, clips and queue items."""
    ws = _open()
    try:
        data = ws.stats()
    finally:
        ws.close()
    if as_json:
        print(json.dumps(data, indent=2, sort_keys=True))
        return
    table = Table("what", "count")
    accounts = data["accounts"]
    clips = data["clips"]
    queue = data["queue"]
    assert isinstance(accounts, dict) and isinstance(clips, dict) and isinstance(queue, dict)
    table.add_row("accounts", str(accounts["total"]))
    for k, v in accounts["by_consent"].items():
        table.add_row(f"  consent {k}", str(v))
    table.add_row("clips", str(clips["total"]))
    for k, v in sorted(clips["by_status"].items()):
        table.add_row(f"  {k}", str(v))
    table.add_row("queued", str(queue["queued"]))
    for name, states in sorted(queue["by_queue"].items()):
        if states.get("queued"):
            table.add_row(f"  {name}", str(states["queued"]))
    table.add_row("leased", str(queue["leased"]))
    table.add_row("reviewed", str(data["reviewed"]))
    out.print(table)


@user_app.command("create")
def user_create(
    username: str,
    role: Annotated[Role, typer.Option(help="Role of the user.")] = Role.reviewer,
    password_stdin: Annotated[bool, typer.Option(help="Read the password from stdin.")] = False,
) -> None:
    """Create a web user; prints a generated password unless one comes on stdin."""
    password = _read_password(password_stdin) or auth.generate_password()
    ws = _open()
    try:
        with ws.transaction() as session:
            auth.create_user(session, actor=Actor.cli(), username=username, password=password, role=role)
    finally:
        ws.close()
    out.print(f"user {username} ({role}) created")
    if not password_stdin:
        out.print(f"password: [bold]{password}[/] (shown once)")


@user_app.command("list")
def user_list(json_out: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False) -> None:
    """Every user with the id the audit log names them by (`user:<id>`), role and state."""
    from rich.table import Table

    ws = _open()
    try:
        with ws.sessions() as session:
            users = auth.list_users(session)
    finally:
        ws.close()
    if json_out:
        for u in users:
            print(json.dumps(u))
        return
    table = Table()
    for col in ("audit actor", "user", "role", "state", "created"):
        table.add_column(col)
    for u in users:
        table.add_row(u["actor"], u["username"], u["role"], "active" if u["active"] else "deactivated", u["created"])
    out.print(table)


@user_app.command("role")
def user_role(username: str, role: Annotated[Role, typer.Option(help="The new role.")]) -> None:
    """Change a user's role (their sessions end)."""
    ws = _open()
    try:
        with ws.transaction() as session:
            auth.change_role(session, actor=Actor.cli(), username=username, role=role)
    finally:
        ws.close()
    out.print(f"user {username} is now {role}")


@user_app.command("deactivate")
def user_deactivate(username: str) -> None:
    """Deactivate a user (they can no longer log in; their sessions end)."""
    ws = _open()
    try:
        with ws.transaction() as session:
            auth.deactivate_user(session, actor=Actor.cli(), username=username)
    finally:
        ws.close()
    out.print(f"user {username} deactivated")


@audit_app.command("verify")
def audit_verify(
    anchor: Annotated[
        list[Path] | None,
        typer.Option(
            "--anchor",
            help="A file `earmark audit anchor` wrote, or an earlier `earmark audit export`, kept outside the "
            "database: the rows it names must still be there, unchanged (repeatable).",
        ),
    ] = None,
) -> None:
    """Check the audit chain; name the first row that was changed, deleted, inserted or moved.
    Rows cut off the end (with the head set back) show only against an anchor kept elsewhere."""
    anchors = [a for path in anchor or [] for a in audit.read_anchors(path.read_text("utf-8"), source=str(path))]
    ws = _open()
    try:
        with ws.sessions() as session:
            result = audit.verify_chain(session)
            if result.ok and anchors:
                result = audit.check_anchors(session, anchors) or result
            head = audit.head_anchor(session)
    finally:
        ws.close()
    if result.ok:
        checked = f"; {len(anchors)} anchor(s) hold" if anchors else ""
        out.print(f"OK: {result.rows} audit rows, chain intact{checked}; head {head.seq} {head.hash}")
        if not anchors:
            err.print(
                "without an anchor kept outside the database, rows cut off the end cannot be seen: "
                "keep `earmark audit anchor` output elsewhere and pass it with --anchor"
            )
        return
    err.print(f"[red]BROKEN[/] at sequence {result.first_bad_seq}: {result.reason}")
    raise typer.Exit(1)


@audit_app.command("anchor")
def audit_anchor(
    output: Annotated[
        Path, typer.Option("-o", "--output", help="File to append the anchor to ('-' for stdout).")
    ] = Path("-"),
) -> None:
    """Write the chain's head (sequence number and hash) as one JSON line, to keep outside the
    database (another system, write-once storage, a ticket): `audit verify --anchor` then shows
    rows deleted from the end, which the chain alone cannot."""
    ws = _open()
    try:
        if str(output) != "-":
            _check_anchor_file(output, ws.settings.home)
        with ws.transaction() as session:
            head = audit.head_anchor(session)
            now = datetime.now(UTC).isoformat(timespec="seconds")
            line = json.dumps({"seq": head.seq, "hash": head.hash, "at": now})
            if str(output) == "-":
                print(line)
            else:
                with open(output, "a", encoding="utf-8") as fh:
                    fh.write(line + "\n")
            audit.record(session, actor=Actor.cli(), action="audit.anchor", details={"seq": head.seq})
    finally:
        ws.close()
    if str(output) != "-":
        err.print(f"anchor of row {head.seq} appended to {output}; keep it where no admin can write")


def _check_anchor_file(path: Path, home: Path) -> None:
    """Anchors go outside the workspace (an anchor beside the database proves nothing, and an
    append to secret.key or earmark.db would break them) and only into an anchor file."""
    where, ws_home = path.expanduser().resolve(), home.resolve()
    if where == ws_home or ws_home in where.parents:
        raise InvalidInput(f"{path} is inside the workspace; keep anchors outside it, where no admin can write")
    if where.is_file() and where.stat().st_size:
        audit.read_anchors(where.read_text("utf-8", errors="replace"), source=f"{path} (not an anchor file)")


@audit_app.command("export")
def audit_export(
    output: Annotated[Path, typer.Option("-o", "--output", help="JSONL file to write ('-' for stdout).")] = Path("-"),
) -> None:
    """Write the whole audit log as JSONL (one event per line, with its hashes)."""
    ws = _open()
    n = 0
    try:
        with ws.sessions() as session:
            fh = sys.stdout if str(output) == "-" else open(output, "w", encoding="utf-8")  # noqa: SIM115
            try:
                for ev in audit.iter_events(session):
                    fh.write(json.dumps(audit.event_dict(ev), sort_keys=True) + "\n")
                    n += 1
            finally:
                if fh is not sys.stdout:
                    fh.close()
        with ws.transaction() as session:
            audit.record(session, actor=Actor.cli(), action="audit.export", details={"rows": n})
    finally:
        ws.close()
    err.print(f"exported {n} audit rows")


@app.command()
def erase(account: str) -> None:
    """Erase an account: queues, text and annotations deleted, audio key destroyed, blobs removed."""
    ws = _open()
    try:
        result = ws.erase(actor=Actor.cli(), account_id=account)
    finally:
        ws.close()
    if result.already_erased:
        out.print(f"account {account} was already erased; nothing left to do")
        return
    out.print(
        f"account {account} erased: {result.clips} clip(s), {result.withdrawn} withdrawn from queues, "
        f"{result.annotations} annotation(s), {len(result.blob_keys)} blob(s) deleted; its key is destroyed"
    )
    if result.exports:
        out.print(f"{result.exports} export(s) held its clips: run `earmark export prune` to rewrite them")


catalog_app = typer.Typer(no_args_is_help=True, help="The entity catalog slot values link to.")
inventory_app = typer.Typer(no_args_is_help=True, help="The project's intents and slot types.")
app.add_typer(catalog_app, name="catalog")
app.add_typer(inventory_app, name="inventory")


@catalog_app.command("import")
def catalog_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSONL: id, name, type, aliases.")],
) -> None:
    """Add or update catalog entities; bad lines are reported by number, good ones kept."""
    from earmark.catalog import import_catalog, read_lines

    lines = read_lines(file)
    ws = _open()
    try:
        with ws.transaction() as session:
            report = import_catalog(session, actor=Actor.cli(), lines=lines)
    finally:
        ws.close()
    out.print(f"catalog: {report.added} added, {report.updated} updated, {len(report.errors)} rejected")
    for lineno, reason in report.errors:
        err.print(f"[red]line {lineno}[/]: {escape(reason)}", highlight=False)
    if report.errors:
        raise typer.Exit(1)


@inventory_app.command("import")
def inventory_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSON: intents, slots.")],
) -> None:
    """Replace the intent and slot inventory reviewers annotate with."""
    from earmark.catalog import import_inventory

    ws = _open()
    try:
        with ws.transaction() as session:
            intents, slots = import_inventory(session, actor=Actor.cli(), path=file)
    finally:
        ws.close()
    out.print(f"inventory: {intents} intents, {slots} slot types")


retention_app = typer.Typer(no_args_is_help=True, help="Retention of each class of data.")
app.add_typer(retention_app, name="retention")
gold_app = typer.Typer(no_args_is_help=True, help="The gold set: reviewed clips that measure reviewers' accuracy.")
app.add_typer(gold_app, name="gold")


@gold_app.command("pick")
def gold_pick(
    n: Annotated[int, typer.Argument(help="How many clips to add to the gold set.", min=1)],
    per_account: Annotated[int, typer.Option(help="At most this many gold clips per household.", min=1)] = 1,
    seed: Annotated[int | None, typer.Option(help="Seed of the random choice (repeatable picks).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Add up to N reviewed clips to the gold set, at random, each with the answer its passes agreed
    on or a senior adjudicated (never flagged, near-sensitive or safety clips)."""
    from earmark.gold import pick_gold

    ws = _open()
    try:
        with ws.transaction() as session:
            picks = pick_gold(
                session,
                actor=Actor.cli(),
                n=n,
                consent_default=ws.settings.consent_default,
                per_account=per_account,
                seed=seed,
            )
    finally:
        ws.close()
    if as_json:
        print(json.dumps([{"clip": p.clip_id, "source": p.source} for p in picks]))
        return
    for pick in picks:
        out.print(f"clip {pick.clip_id}: gold ({pick.source})")
    out.print(
        f"{len(picks)} clip(s) added to the gold set" + ("" if len(picks) == n else f" ({n} asked; no more eligible)")
    )


@gold_app.command("add")
def gold_add(clip: Annotated[int, typer.Argument(help="The clip's id (as in the audit log and `gold list`).")]) -> None:
    """Add one reviewed clip to the gold set with its final answer, or say why it cannot be gold."""
    from earmark.gold import add_gold

    ws = _open()
    try:
        with ws.transaction() as session:
            pick = add_gold(session, actor=Actor.cli(), clip_id=clip, consent_default=ws.settings.consent_default)
    finally:
        ws.close()
    out.print(f"clip {pick.clip_id}: gold ({pick.source})")


@gold_app.command("remove")
def gold_remove(clip: Annotated[int, typer.Argument(help="The gold clip's id.")]) -> None:
    """Take a clip out of the gold set (gold passes already answered keep their scores)."""
    from earmark.gold import remove_gold

    ws = _open()
    try:
        with ws.transaction() as session:
            withdrawn = remove_gold(session, actor=Actor.cli(), clip_id=clip)
    finally:
        ws.close()
    out.print(f"clip {clip} left the gold set ({withdrawn} waiting gold item(s) withdrawn)")


@gold_app.command("list")
def gold_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """The gold set: each clip with how many reviewers answered it and how many were right."""
    from earmark.gold import list_gold

    ws = _open()
    try:
        with ws.sessions() as session:
            rows = list_gold(session)
    finally:
        ws.close()
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "clip": r.clip_id,
                        "answered": r.answered,
                        "correct": r.correct,
                        "waiting": r.waiting,
                        "servable": r.servable,
                    }
                    for r in rows
                ]
            )
        )
        return
    table = Table("clip", "answered", "correct", "accuracy", "served, unanswered", "can be served")
    for r in rows:
        accuracy = f"{r.correct / r.answered:.0%}" if r.answered else "–"
        table.add_row(
            str(r.clip_id),
            str(r.answered),
            str(r.correct),
            accuracy,
            "yes" if r.waiting else "",
            "yes" if r.servable else "no (withdrawn, erased, audio gone or the safety team's)",
        )
    out.print(table)
    out.print(f"{len(rows)} gold clip(s)")


@retention_app.command("run")
def retention_run(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would be purged; purge nothing.")] = False,
) -> None:
    """Purge what the retention policy says is past its time; print counts per data class."""
    ws = _open()
    try:
        result = ws.run_retention(actor=Actor.cli(), dry_run=dry_run)
    finally:
        ws.close()
    if as_json:
        print(json.dumps({**result.counts(), "dry_run": dry_run}))
    else:
        verb = "retention (dry run, nothing purged): would purge " if dry_run else "retention: "
        out.print(verb + ", ".join(f"{v} {k}" for k, v in result.counts().items()))


@app.command()
def report(
    account: str,
    fmt: Annotated[str, typer.Option("--format", help="json or html")] = "json",
) -> None:
    """Transparency report for one account: recordings, human listens (by role), deletions."""
    from earmark.transparency import build_report, render_html

    if fmt not in ("json", "html"):
        raise InvalidInput("format must be json or html", field="format")
    ws = _open()
    try:
        with ws.transaction() as session:
            data = build_report(
                session,
                actor=Actor.cli(),
                account_id=account,
                secret=ws.secret,
                consent_default=ws.settings.consent_default,
            )
    finally:
        ws.close()
    print(json.dumps(data, indent=2) if fmt == "json" else render_html(data))


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default: setting bind_host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: setting bind_port).")] = None,
) -> None:
    """Serve the web UI and the HTTP API."""
    from earmark.web.server import run

    settings = _settings()
    run(settings, host=host or settings.bind_host, port=port or settings.bind_port)


@app.command()
def demo(
    seed: Annotated[int, typer.Option(help="Seed; the same seed builds the same workspace.")] = 7,
    clips: Annotated[int, typer.Option(help="How many clips to synthesize.")] = 240,
    serve_ui: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve the UI when done.")] = True,
    reset: Annotated[bool, typer.Option(help="Delete an existing workspace at --home first.")] = False,
    port: Annotated[int | None, typer.Option(help="Port to serve on.")] = None,
) -> None:
    """Build a fresh demo workspace from synthesized speech, then serve it."""
    from earmark.demo import build_demo

    settings = _settings()
    if state.home is None:
        settings = load_settings(Path("earmark-demo"))
    # When serving, a first batch is made safe to hear now so a reviewer can start at once; the
    # server's background worker processes the rest.
    creds = build_demo(
        settings, seed=seed, n_clips=clips, reset=reset, console=err, process_limit=20 if serve_ui else None
    )
    table = Table("user", "role", "password", title="demo logins")
    for c in creds:
        table.add_row(c.username, c.role, c.password)
    out.print(table)
    if serve_ui:
        from earmark.web.server import run

        settings = load_settings(settings.home)  # with what the demo wrote into its settings.toml
        p = port or settings.bind_port
        out.print(f"open [bold]http://{settings.bind_host}:{p}/[/] and log in as reviewer1")
        run(settings, host=settings.bind_host, port=p)


@pii_app.command("detect")
def pii_detect(
    file: Annotated[Path | None, typer.Argument(help='JSONL lines {"id", "text"}; stdin if omitted.')] = None,
) -> None:
    """Find personal data in ASR-style text: JSONL in, JSONL out with character spans."""
    from earmark.pii import detect_pii, mask

    stream = open(file, encoding="utf-8") if file else sys.stdin  # noqa: SIM115 - closed below
    bad = 0
    try:
        for lineno, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                if not isinstance(rec, dict) or not isinstance(rec.get("text"), str):
                    raise ValueError("needs a JSON object with a string field 'text'")
            except ValueError as exc:
                err.print(f"[red]line {lineno}[/]: {escape(str(exc))}", highlight=False)
                bad += 1
                continue
            text = rec["text"]
            spans = detect_pii(text)
            print(
                json.dumps(
                    {
                        "id": rec.get("id"),
                        "text": text,
                        "masked": mask(text, spans),
                        "spans": [{"start": s.start, "end": s.end, "type": s.type, "value": s.value} for s in spans],
                    },
                    ensure_ascii=False,
                )
            )
    finally:
        if file:
            stream.close()
    if bad:
        raise typer.Exit(1)


def _read_clip(path: Path) -> tuple[np.ndarray, int]:
    """A clip from disk, checked like an ingest (so a bad file gets the same clear error)."""
    from earmark.audio import AudioLimits, decode_mono, probe_audio
    from earmark.pipeline import normalize

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}", field="audio") from exc
    probe_audio(data, AudioLimits(max_seconds=3600))
    x, sr = decode_mono(data)
    y, _ = normalize(x, sr)
    return y, 16_000


def _stage_settings() -> Settings:
    # Stage tools work without a workspace: defaults plus EARMARK_* variables.
    return load_settings(state.home) if state.home else Settings()


@app.command()
def redact(
    audio: Annotated[Path, typer.Argument(help="Audio file (WAV, FLAC, OGG).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the redacted 16 kHz WAV.")],
    transcript: Annotated[str | None, typer.Option(help="What is said; transcribed with Whisper if omitted.")] = None,
    mode: Annotated[str, typer.Option(help="tone or silence")] = "tone",
    pad_ms: Annotated[int, typer.Option(help="Padding around each redacted word (ms).")] = 100,
) -> None:
    """Bleep personal data in a clip; prints the redacted spans as JSON (samples and seconds)."""
    from earmark.align import PocketsphinxAligner
    from earmark.audio import encode_wav
    from earmark.pii import SpokenPiiDetector
    from earmark.pipeline import TARGET_RATE, build_detector, build_transcriber
    from earmark.redaction import bleep, mask_text, pii_audio_spans, speech_regions_holding

    if mode not in ("tone", "silence"):
        raise InvalidInput("mode must be tone or silence", field="mode")
    x, sr = _read_clip(audio)
    settings = _stage_settings()
    said = None if transcript is None else " ".join(transcript.split())
    text = build_transcriber(settings).transcribe(x, sr).text if said is None else said
    words = PocketsphinxAligner().align(x, sr, text) if text else None
    pii = SpokenPiiDetector().detect(text)
    pad = pad_ms * TARGET_RATE // 1000
    spans, unplaced = pii_audio_spans(text, words or [], pii, pad=pad, num_samples=x.size)
    wholesale = bool(unplaced)
    if wholesale:
        spans = speech_regions_holding(build_detector(settings).detect(x, sr), pad=pad, num_samples=x.size)
    y = bleep(x, sr, spans, mode=mode)  # type: ignore[arg-type]
    output.write_bytes(encode_wav(y, sr))
    print(
        json.dumps(
            {
                "transcript": text,
                "masked": mask_text(text, pii),
                "aligned": words is not None,
                "wholesale": wholesale,
                "sample_rate": sr,
                "pii": [{"start": p.start, "end": p.end, "type": p.type} for p in pii],
                "spans": [
                    {"start": s.start, "end": s.end, "start_s": s.start / sr, "end_s": s.end / sr} for s in spans
                ],
            }
        )
    )


@app.command()
def screen(
    audio: Annotated[Path, typer.Argument(help="Audio file (WAV, FLAC, OGG).")],
    transcript: Annotated[str | None, typer.Option(help="What is said; transcribed with Whisper if omitted.")] = None,
) -> None:
    """Sensitive-content screening of one clip: prints {"route", "labels", "scores", "reasons"}."""
    from earmark.pipeline import build_transcriber
    from earmark.screening import screen as screen_clip

    x, sr = _read_clip(audio)
    if transcript is None:
        transcript = build_transcriber(_stage_settings()).transcribe(x, sr).text
    result = screen_clip(x, sr, transcript)
    print(
        json.dumps({"route": result.route, "labels": result.labels, "scores": result.scores, "reasons": result.reasons})
    )


@app.command()
def anonymize(
    audio: Annotated[Path, typer.Argument(help="Audio file (WAV, FLAC, OGG).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the anonymized 16 kHz WAV.")],
    seed: Annotated[int, typer.Option(help="Seed for the per-clip parameters.")] = 0,
    alpha: Annotated[float | None, typer.Option(help="McAdams coefficient (selects the McAdams method).")] = None,
    method: Annotated[
        str | None,
        typer.Option(
            help="world, world-gentle, world-auto, world-natural, trained, mcadams or mcadams-wide "
            "(default: setting `anonymizer`)."
        ),
    ] = None,
) -> None:
    """Anonymize the voice of one clip; prints the method and parameters used as JSON."""
    import numpy as np

    from earmark.anonymize import NAMES, by_name
    from earmark.audio import encode_wav

    x, sr = _read_clip(audio)
    settings = _stage_settings()
    chosen = "mcadams" if alpha is not None else (method or settings.anonymizer)
    if chosen not in NAMES:
        raise InvalidInput(f"method must be one of {', '.join(NAMES)}", field="method")
    if alpha is not None and not 0.5 <= alpha <= 1.0:
        raise InvalidInput("alpha must be in [0.5, 1.0]", field="alpha")
    try:
        anonymizer = by_name(chosen, voice=settings.voice_model)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="voice_model") from exc
    params = {"alpha": alpha} if alpha is not None else anonymizer.draw(np.random.default_rng(seed))
    y = anonymizer.apply(x, sr, params)
    output.write_bytes(encode_wav(y, sr))
    report = {"method": anonymizer.name, "params": params, "sample_rate": sr, "num_samples": int(y.size)}
    route = getattr(anonymizer, "route", None)
    if callable(route):  # trained: "converted", "world" (a word or two) or "silent", as the pipeline records
        report["route"] = route(x)
    print(json.dumps(report, default=str))


voice_app = typer.Typer(no_args_is_help=True, help="Target voices of the trained anonymizer.")
app.add_typer(voice_app, name="voice")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


def _voice_clips(source: Path, speakers: list[str]) -> list[Path]:
    """The target voice's files: manifest.csv rows (path,speaker_id) of the chosen speakers, or every
    audio file in the folder."""
    manifest = source / "manifest.csv"
    if not manifest.is_file():
        if speakers:
            raise InvalidInput("--speaker needs a manifest.csv (path,speaker_id) in the folder", field="speaker")
        return sorted(p for p in source.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
    try:  # utf-8-sig: a CSV saved by a spreadsheet starts with a byte-order mark
        with manifest.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{manifest} is not UTF-8 text (byte {exc.start})", field="manifest") from exc
    if rows and not {"path", "speaker_id"} <= set(rows[0]):
        raise InvalidInput(f"{manifest} needs the columns path and speaker_id", field="manifest")
    present = sorted({r["speaker_id"] for r in rows})
    unknown = sorted(set(speakers) - set(present))
    if unknown:
        raise InvalidInput(f"no speaker {', '.join(unknown)} in {manifest}", field="speaker")
    if not speakers and len(present) > 1:
        shown = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "")
        raise InvalidInput(
            f"{manifest} holds {len(present)} speakers ({shown}): choose the target voice with --speaker "
            "(repeat it to pool several on purpose)",
            field="speaker",
        )
    return [source / r["path"] for r in rows if not speakers or r["speaker_id"] in speakers]


@voice_app.command("train")
def voice_train(
    source: Annotated[
        Path,
        typer.Argument(
            exists=True, file_okay=False, help="Folder of the target voice's audio, or with a manifest.csv."
        ),
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="The voice model file to write (.npz).")],
    about: Annotated[
        str, typer.Option(help="Where the voice comes from and its licence (kept in the file; shown by `voice show`).")
    ],
    speaker: Annotated[
        list[str] | None, typer.Option(help="Only this speaker_id of manifest.csv (repeatable).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
) -> None:
    """Train the trained anonymizer's mapping to one target voice (at least 30 s of its speech;
    several minutes keep more words). Use only a voice whose licence allows it: every reviewed clip
    will sound like it. Set `voice_model` to the file to use it."""
    from earmark.voice_model import VoiceModel, train

    if not about.strip():
        raise InvalidInput("--about must say where the voice comes from and its licence", field="about")
    if output.exists() and not force:
        raise InvalidInput(f"{output} exists (--force replaces it)", field="output")
    if not output.parent.is_dir() or not os.access(output.parent, os.W_OK):
        raise InvalidInput(f"cannot write into {output.parent}: no such folder, or not writable", field="output")
    paths = _voice_clips(source, speaker or [])
    if not paths:
        raise InvalidInput(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) in {source}", field="source")
    clips = []
    for path in paths:
        try:
            clips.append(_read_clip(path)[0])
        except InvalidInput as exc:  # name the file: the folder may hold hundreds
            named = exc.message if str(path) in exc.message else f"{path}: {exc.message}"
            raise InvalidInput(named, field=exc.field) from exc
    columns = (TextColumn("train"), BarColumn(), MofNCompleteColumn(), TextColumn("clips"), TimeRemainingColumn())
    with Progress(*columns, console=err) as progress:
        task = progress.add_task("train", total=len(clips))
        try:
            model = train(clips, about=about.strip(), on_clip=lambda: progress.advance(task))
        except ValueError as exc:
            raise InvalidInput(str(exc), field="source") from exc
    try:
        model.save(output)
    except OSError as exc:
        raise InvalidInput(f"cannot write {output}: {exc.strerror}", field="output") from exc
    VoiceModel.load(output)  # what was written reads back
    out.print(
        f"wrote {output}: {len(clips)} clips, {model.seconds:.0f} s, median pitch {model.f0_median:.0f} Hz; "
        # Absolute: settings.toml reads a relative path from the workspace folder, not from here.
        f"set voice_model = {str(output.resolve())!r} and anonymizer = 'trained' to use it"
    )


@voice_app.command("show")
def voice_show(
    path: Annotated[Path | None, typer.Argument(help="A voice model file (default: the one settings use).")] = None,
) -> None:
    """What a voice model file holds: where its voice comes from, how much speech, its pitch."""
    from earmark.voice_model import BUNDLED, VoiceModel

    chosen = path or _stage_settings().voice_model or BUNDLED
    try:
        model = VoiceModel.load(chosen)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="path") from exc
    print(
        json.dumps(
            {
                "path": str(chosen),
                "about": model.about,
                "seconds": model.seconds,
                "median_pitch_hz": round(model.f0_median, 1),
                "encoder_layer": model.layer,
                "encoder_sha256": model.encoder_sha256,
            },
            indent=2,
        )
    )


@eval_app.command("pii")
def eval_pii(
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, help="JSONL sets.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    errors: Annotated[int, typer.Option(help="Show up to N misses and false alarms per set.")] = 0,
) -> None:
    """Precision, recall and F2 per PII type on JSONL sets ({"text", "spans": [{"start","end","type"}]})."""
    from earmark.pii.evaluate import read_jsonl, score, table

    results: dict[str, object] = {}
    for path in files:
        try:
            records = read_jsonl(path)
        except ValueError as exc:
            raise InvalidInput(f"{path}: not valid JSONL ({exc})") from exc
        report = score(records, max_errors=errors)
        results[path.stem] = report.as_dict()
        if not as_json:
            out.print(f"## {path.stem}\n\n{table(report.as_dict())}\n", markup=False, highlight=False)
            for kind, text, detail in report.errors:
                out.print(f"  {kind:12} {detail}   <- {text[:140]!r}", markup=False, highlight=False)
    if as_json:
        print(json.dumps(results, indent=2))


@eval_app.command("anonymization")
def eval_anonymization(
    folder: Annotated[
        Path, typer.Argument(exists=True, file_okay=False, help="Audio + manifest.csv (path,speaker_id).")
    ],
    anonymizer: Annotated[
        str,
        typer.Option(
            help="world, trained (with the setting voice_model), world-gentle, world-auto, world-natural, mcadams "
            "or mcadams-wide (alpha 0.5-0.9)."
        ),
    ] = "world",
    seed: Annotated[int, typer.Option(help="Seed of the per-clip parameter draws.")] = 0,
    limit: Annotated[int | None, typer.Option(help="At most N utterances per speaker.")] = None,
    no_asr: Annotated[bool, typer.Option("--no-asr", help="Skip the Whisper intelligibility figures.")] = False,
    equalizing: Annotated[
        bool, typer.Option(help="Also the equalizing attackers (each clip equalized before embedding).")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Speaker linkability (EER against resemblyzer: four attackers, and three of them again
    equalizing every clip first) and intelligibility (Whisper)."""
    from earmark.anon_eval import build, evaluate

    method = build(anonymizer, voice=_stage_settings().voice_model)
    with out.status("evaluating") as status:
        report = evaluate(
            folder,
            anonymizer=method,
            seed=seed,
            limit=limit,
            transcribe=not no_asr,
            equalizing=equalizing,
            on_step=lambda msg: status.update(msg),
        )
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
        return
    table = Table(
        title=f"{report.anonymizer}: {report.utterances} clips, {report.speakers} speakers, {report.seconds} s"
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    for attacker, value in report.eer.items():
        table.add_row(f"EER {attacker.replace('_', '-')}", f"{value:.1%}")
    pct = [
        ("Whisper word disagreement anonymized vs original", report.disagreement),
        ("WER original vs reference", report.wer_original),
        ("WER anonymized vs reference", report.wer_anonymized),
        ("one-word clips recognized, original", report.one_word_original),
        ("one-word clips recognized, anonymized", report.one_word_anonymized),
    ]
    for label, value in pct:
        if value is not None:
            table.add_row(label, f"{value:.1%}")
    table.add_row("anonymizer speed (x real time, CPU)", f"{report.x_real_time}")
    out.print(table)


# The learning loop's commands (sample, sample-stream, export, metrics) live in their own module.
from earmark import cli_loop  # noqa: E402, F401


def main() -> None:
    app()


if __name__ == "__main__":
    main()
