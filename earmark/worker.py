"""The server's background worker: it keeps running the pipeline over newly sampled clips (and,
with `worker_sample_minutes`, draws samples itself), so a queue fills by itself while the web app
serves reviewers. A boundary: it owns its transactions."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta

from earmark import db
from earmark.errors import EarmarkError
from earmark.metrics import refresh_errors
from earmark.models import utcnow
from earmark.types import Actor
from earmark.workspace import Workspace, workspace_policy

log = logging.getLogger("earmark.worker")


class BackgroundWorker:
    """A daemon thread that calls `Workspace.process_pending` every `interval` seconds."""

    def __init__(self, ws: Workspace, *, interval: float, batch: int = 10) -> None:
        self.ws = ws
        self.interval = interval
        self.batch = batch
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.processed = 0
        self._next_retention = time.monotonic()  # the first round runs it, then every interval
        self._next_metrics = time.monotonic()
        self._next_sample = time.monotonic()
        self._last_draw: datetime | None = None
        # Clips whose ingest began before a draw but committed after it are read by the next one.
        self.draw_overlap = timedelta(minutes=1)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="earmark-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_once(self) -> int:
        if time.monotonic() >= self._next_retention:
            self._next_retention = time.monotonic() + self.ws.settings.retention_interval_hours * 3600
            try:
                counts = self.ws.run_retention(actor=Actor.system()).counts()
                log.info("retention: %s", counts)
            except EarmarkError as exc:
                log.error("retention refused: %s", exc)
            except Exception as exc:
                if not db.is_transient(exc):
                    raise
                # Rolled back by a database conflict: still due, so the next round runs it again
                # (data past its time must not wait a whole interval more).
                self._next_retention = time.monotonic()
                log.warning("retention met a database conflict; it runs again next round")
        minutes = self.ws.settings.worker_sample_minutes
        if minutes is not None and time.monotonic() >= self._next_sample:
            # Clips that arrive through the API reach the queue by themselves: the worker draws
            # with the workspace's policy, as `earmark sample` would.
            self._next_sample = time.monotonic() + minutes * 60
            try:
                # After the first round, only clips that arrived since the last draw began.
                started = utcnow()
                drawn = self.ws.draw_sample(
                    actor=Actor.system(),
                    policy=workspace_policy(self.ws.settings),
                    ingested_since=self._last_draw - self.draw_overlap if self._last_draw else None,
                    record_empty=False,
                )
                self._last_draw = started
                if drawn.drawn:
                    log.info("sample: %d clip(s) drawn", drawn.drawn)
            except EarmarkError as exc:
                log.error("sampling refused: %s", exc)
            except Exception as exc:
                if not db.is_transient(exc):
                    raise
                self._next_sample = time.monotonic()  # rolled back: due again next round
                log.warning("sampling met a database conflict; it runs again next round")
        results = self.ws.process_pending(limit=self.batch)
        self.processed += len(results)
        if results:
            log.info("pipeline: %d clip(s) processed", len(results))
        if time.monotonic() >= self._next_metrics:
            # Keep the per-clip figures current, so the metrics page does not pay for new labels.
            self._next_metrics = time.monotonic() + 60
            with self.ws.transaction() as session:
                refreshed = refresh_errors(session)
            if refreshed:
                log.info("metrics: %d clip(s) refreshed", refreshed)
        return len(results)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.run_once()
            except Exception:
                log.exception("pipeline round failed")
                busy = 0
            if not busy:
                self._stop.wait(self.interval)
