"""Run the web app with uvicorn."""

from __future__ import annotations

import logging

import uvicorn

from earmark.config import Settings
from earmark.web.app import create_app
from earmark.workspace import open_workspace


def run(settings: Settings, *, host: str, port: int) -> None:
    ws = open_workspace(settings)
    if settings.anonymizer == "trained":
        try:  # a voice trained on other encoder weights stops the server here, not every clip later
            ws.components()
        except BaseException:
            ws.close()
            raise
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = create_app(ws, worker=True)
    try:
        # uvicorn's access log prints full URLs (assignment ids, audio signatures): ours logs
        # route templates only (see earmark.web.app).
        uvicorn.run(app, host=host, port=port, access_log=False, log_level="info")
    finally:
        ws.close()
