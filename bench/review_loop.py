"""The reviewer's loop in Chromium: keystrokes per clip and submit-to-playable latency.

Builds a demo workspace (synthesized requests through the real safe-to-hear pipeline) on SQLite in a
temporary folder, serves it, and lets a scripted reviewer work through the queue with the keyboard:
most clips verified with one key, every fifth corrected by typing. For each clip it takes the time
from the Enter that submits to the moment the next clip's audio can play (the `canplay` event), as
the browser sees it. Figures only; run with
    .venv/bin/python bench/review_loop.py [--clips 100]
Target (issue 4): median at most 150 ms, p95 at most 300 ms.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from earmark.config import load_settings
from earmark.demo import build_demo
from earmark.workspace import open_workspace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.web.browser import chromium, live_server

# Stamps the submit keystroke (kept across a navigation) and the moment the new clip can play.
PROBE = """
document.addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' && !ev.altKey && !ev.ctrlKey) {
    window.__playable = null;
    sessionStorage.setItem('submitAt', String(performance.timeOrigin + performance.now()));
  }
}, true);
window.__playable = null;
// review.js announces each clip (after a navigation or an in-page swap) once its audio can play.
document.addEventListener('earmark:playable', () => {
  if (window.__playable === null) window.__playable = performance.timeOrigin + performance.now();
});
"""
REVIEW_URL = re.compile(r"/review/[A-Za-z0-9_-]{16,}$")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=100, help="clips to review")
    args = ap.parse_args()
    console = Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="earmark-bench-") as tmp:
        settings = load_settings(Path(tmp) / "home", blob_fsync=False)
        t0 = time.perf_counter()
        logins = build_demo(settings, seed=5, n_clips=int(args.clips * 2.6), reset=False, console=console)
        console.print(f"workspace built in {time.perf_counter() - t0:.0f} s")
        password = next(login.password for login in logins if login.username == "reviewer1")
        ws = open_workspace(settings)
        latencies: list[float] = []
        keys = 0
        reviewed = 0
        with live_server(ws) as base, chromium() as browser:
            page = browser.new_context().new_page()
            page.add_init_script(PROBE)
            page.goto(f"{base}/login")
            page.focus("input[name=username]")
            page.keyboard.type("reviewer1")
            page.keyboard.press("Tab")
            page.keyboard.type(password)
            page.keyboard.press("Enter")
            page.wait_for_url(lambda url: "/login" not in url)
            page.goto(f"{base}/review")
            page.get_by_test_id("start").focus()  # the queue page's start button (a POST lease)
            page.keyboard.press("Enter")
            page.wait_for_url(REVIEW_URL)
            keys += 1
            while reviewed < args.clips:
                if not REVIEW_URL.search(page.url):
                    break  # queue empty
                page.wait_for_function("() => window.__playable !== null")
                current = page.url
                if reviewed % 5 == 4:  # an edit: go to the end, add a word
                    page.keyboard.press("End")
                    page.keyboard.type(" please")
                    keys += 1 + len(" please")
                page.keyboard.press("Enter")
                keys += 1
                reviewed += 1
                page.wait_for_url(lambda url, current=current: url != current)
                if not REVIEW_URL.search(page.url):
                    break
                page.wait_for_function("() => window.__playable !== null")
                latency = page.evaluate("window.__playable - Number(sessionStorage.getItem('submitAt'))")
                latencies.append(float(latency))
        ws.close()
    if not latencies:
        print("no clip reviewed: the queue was empty")
        return
    print(f"{reviewed} clips reviewed by keyboard; {keys / reviewed:.2f} keystrokes per clip")
    print(
        f"submit -> next clip playable: median {statistics.median(latencies):.0f} ms, "
        f"p95 {percentile(latencies, 0.95):.0f} ms, max {max(latencies):.0f} ms (n={len(latencies)})"
    )


if __name__ == "__main__":
    main()
