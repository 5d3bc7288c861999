"""The HTTP API for the assistant's backend (service tokens): ingest clips, record consent."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import aclosing
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Path, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict
from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.formparsers import MultiPartException, MultiPartParser

from earmark.errors import InvalidInput, TooLarge
from earmark.manifest import ID_PATTERN, ClipMeta, parse_meta
from earmark.types import Actor, Consent
from earmark.web.deps import api_actor, get_ws, load_json


class _FieldBytesParser(MultiPartParser):
    """Starlette's multipart parser, except that a text field's value is its bytes as sent.

    Starlette decodes text fields itself, and a field that is not UTF-8 it decodes whole as Latin-1
    without a word: a stray 0xFF byte in the metadata was stored as "ÿ", and any "é" beside it as "Ã©".
    """

    def on_part_end(self) -> None:
        part = self._current_part
        if part.file is None:
            self.items.append((part.field_name, bytes(part.data)))  # type: ignore[arg-type]
        else:
            super().on_part_end()


class _FieldBytesRequest(Request):
    """A request whose multipart form is read by the parser above (limits and errors as Starlette's)."""

    async def _get_form(
        self, *, max_files: int | float = 1000, max_fields: int | float = 1000, max_part_size: int = 1024 * 1024
    ) -> FormData:
        # Starlette has no hook for its parser, so this is its own _get_form with ours; any other body
        # is left to it. (tests/web/test_api.py sends metadata that is not UTF-8: it fails if this stops working.)
        content_type, _ = parse_options_header(self.headers.get("content-type"))
        if self._form is None and content_type == b"multipart/form-data":
            limits = {"max_files": max_files, "max_fields": max_fields, "max_part_size": max_part_size}
            try:
                async with aclosing(self.stream()) as stream:
                    self._form = await _FieldBytesParser(self.headers, stream, **limits).parse()  # type: ignore[arg-type]
            except MultiPartException as exc:
                raise HTTPException(status_code=400, detail=exc.message) from None
        return await super()._get_form(max_files=max_files, max_fields=max_fields, max_part_size=max_part_size)


class _FieldBytesRoute(APIRoute):
    """A route whose form's text fields arrive as bytes, for the route to decode (and refuse) itself."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def with_field_bytes(request: Request) -> Response:
            return await handler(_FieldBytesRequest(request.scope, request.receive))

        return with_field_bytes


def _text_field(schema: dict[str, Any]) -> None:
    """Document a form field taken as bytes as the text field it is (FastAPI documents bytes as a file)."""
    schema.pop("contentMediaType", None)


router = APIRouter(prefix="/api/v1", route_class=_FieldBytesRoute)
# The audio comes as its own file part: an unknown field is told the others.
METADATA_FIELDS = [name for name in ClipMeta.model_fields if name != "audio"]


@router.post("/clips", name="api.clips.create", status_code=201)
async def create_clip(
    request: Request,
    audio: UploadFile = File(..., description="The recording: WAV, FLAC or OGG."),
    metadata: bytes = Form(
        ...,
        description="JSON object: the fields of a manifest line, without `audio`. UTF-8 text.",
        json_schema_extra=_text_field,
    ),
    actor: Actor = Depends(api_actor),
) -> JSONResponse:
    ws = get_ws(request)
    raw = load_json(metadata, field="metadata")  # decoded as UTF-8 here, as a manifest line is
    if isinstance(raw, dict) and "audio" in raw:
        raise InvalidInput("send the audio as the 'audio' file part, not in metadata", field="metadata.audio")
    meta = parse_meta(raw, allowed=METADATA_FIELDS)
    data = await audio.read(ws.settings.max_upload_bytes + 1)
    if len(data) > ws.settings.max_upload_bytes:
        raise TooLarge(f"audio is larger than {ws.settings.max_upload_bytes} bytes", field="audio")
    result = await run_in_threadpool(ws.ingest, actor=actor, meta=meta, audio=data, via="api")
    body = {"clip_id": result.clip_id, "created": result.created}
    if result.info is not None:
        body.update(
            sample_rate=result.info.sample_rate,
            channels=result.info.channels,
            num_samples=result.info.num_samples,
        )
    return JSONResponse(body, status_code=201 if result.created else 200)


class ConsentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    human_review: Consent | None = None
    training_use: Consent | None = None


@router.put("/accounts/{account_id}/consent", name="api.consent.set")
def put_consent(
    request: Request,
    body: ConsentBody,
    account_id: Annotated[str, Path(pattern=ID_PATTERN, description="The account's id, as in clip metadata.")],
    actor: Actor = Depends(api_actor),
) -> dict[str, object]:
    result = get_ws(request).set_consent(
        actor=actor,
        account_id=account_id,
        human_review=body.human_review,
        training_use=body.training_use,
        create=True,
    )
    return {
        "account_id": account_id,
        "human_review": str(result.human_review),
        "withdrawn": result.withdrawn,
        "derivatives_deleted": result.derivatives_deleted,
        "annotations_deleted": result.annotations_deleted,
        "training_use": str(result.training_use),
        "exports_to_prune": result.exports_to_prune,  # run `earmark export prune` to take the clips out
    }


@router.get("/stats", name="api.stats")
def get_stats(request: Request, actor: Actor = Depends(api_actor)) -> dict[str, object]:
    return get_ws(request).stats()


REPORT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@router.get("/accounts/{account_id}/report", name="api.report")
def get_report(
    account_id: Annotated[str, Path(pattern=ID_PATTERN, description="The account's id, as in clip metadata.")],
    request: Request,
    format: str = "json",
    actor: Actor = Depends(api_actor),
) -> Response:
    """Transparency report for an account (empty for one earmark never saw)."""
    from earmark.transparency import build_report, render_html

    ws = get_ws(request)
    if format not in ("json", "html"):
        raise InvalidInput("format must be json or html", field="format")
    with ws.transaction() as session:
        data = build_report(
            session, actor=actor, account_id=account_id, secret=ws.secret, consent_default=ws.settings.consent_default
        )
    if format == "html":
        # A document to hand to the customer, styled by its own <style> block and nothing else:
        # the app's policy would block that block; this one allows inline style and no script.
        return HTMLResponse(render_html(data), headers={"Content-Security-Policy": REPORT_CSP})
    return JSONResponse(data)


@router.post("/accounts/{account_id}/erase", name="api.erase")
def post_erase(
    account_id: Annotated[str, Path(pattern=ID_PATTERN, description="The account's id, as in clip metadata.")],
    request: Request,
    actor: Actor = Depends(api_actor),
) -> dict[str, object]:
    """Erase an account (idempotent: a second call reports it was already erased)."""
    result = get_ws(request).erase(actor=actor, account_id=account_id)
    return {
        "account_id": account_id,
        "already_erased": result.already_erased,
        "clips": result.clips,
        "withdrawn": result.withdrawn,
        "annotations": result.annotations,
        "blobs_deleted": len(result.blob_keys),
    }
