"""The report in a real browser: headless Chromium driven over the DevTools protocol (CDP).

Chromium loads the page from a file:// URL with the network unused; the test checks that every image decoded,
that nothing was logged as an error (a blocked external fetch would be: the page's Content-Security-Policy
refuses them), and that a screenshot shows a page rather than a blank.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from _report_data import write_correlate_dir

from lexprobe.report import build_report

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
CHROMIUM = shutil.which("chromium")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",  # Chromium picks a free port and writes it to DevToolsActivePort
    "--window-size=1280,1600",
)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="chromium is not installed (apt-get install chromium); CI installs it and runs this test",
)


class DevTools:
    """The smallest CDP client: one page's websocket, commands answered in order, events kept."""

    def __init__(self, url: str, *, timeout: float) -> None:
        import websocket  # websocket-client, in the dev extra

        self._ws = websocket.create_connection(url, timeout=timeout, suppress_origin=True)
        self._timeout = timeout
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        self._ws.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            message = json.loads(self._ws.recv())
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self.events.append(message)
        raise TimeoutError(f"no answer to {method} within {self._timeout} s")

    def wait_for(self, method: str) -> dict[str, Any]:
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            if any(e.get("method") == method for e in self.events):
                return next(e for e in self.events if e.get("method") == method)
            self.events.append(json.loads(self._ws.recv()))
        raise TimeoutError(f"no {method} within {self._timeout} s")

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and browser log entries of level error seen so far."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(" ".join(str(a.get("value", a.get("description"))) for a in params.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                found.append(str(params.get("exceptionDetails", {}).get("text")))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                found.append(f"{params['entry'].get('source')}: {params['entry'].get('text')}")
        return found

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._ws.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DevTools]:
    """A headless Chromium with its own profile, killed (its whole process group) at teardown."""
    if CHROMIUM is None:
        pytest.fail("chromium is not on PATH but CI is set: .ci/run installs it (apt-get install chromium)")
    profile = tmp_path / "profile"
    log = (tmp_path / "chromium.log").open("wb")
    process = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    client = None
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and len(port_file.read_text().split()) >= 2):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chromium did not start: {(tmp_path / 'chromium.log').read_text()[-2000:]}")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
            targets = json.load(answer)
        page = next(t for t in targets if t.get("type") == "page")
        client = DevTools(page["webSocketDebuggerUrl"], timeout=30)
        yield client
    finally:
        if client is not None:
            client.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()


def test_report_renders_in_chromium_with_every_image_decoded_and_no_error(browser: DevTools, tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    runs = [RESULTS / n for n in ("align-hgnc", "lexicalization-hgnc", "train-hgnc-name-to-symbol")]
    correlate = write_correlate_dir(tmp_path / "correlate")
    report = build_report([*runs, correlate], tmp_path / "report.html")
    n_embedded = len(re.findall(r'<img src="data:image/png;base64,', report.read_text()))

    for domain in ("Page", "Runtime", "Log"):
        browser.send(f"{domain}.enable")
    browser.send("Page.navigate", url=report.resolve().as_uri())
    browser.wait_for("Page.loadEventFired")

    # decode() settles once an image is ready to paint (or rejects if it cannot be decoded)
    images = browser.evaluate(
        "Promise.all(Array.from(document.images).map(img => img.decode().then(() => true, () => false)"
        ".then(ok => ({alt: img.alt, ok: ok, complete: img.complete, width: img.naturalWidth}))))"
    )
    assert len(images) == n_embedded >= 10
    broken = [i["alt"] for i in images if not (i["ok"] and i["complete"] and i["width"] > 0)]
    assert not broken, f"images that did not decode: {broken}"
    n_shots = sum(1 for r in runs for _ in r.glob("shots-*"))  # K-shot evaluations show after their run
    assert browser.evaluate("document.querySelectorAll('details pre').length") == len(runs) + n_shots + 2
    assert browser.evaluate("document.title") == "lexprobe report"

    size = browser.send("Page.getLayoutMetrics")["cssContentSize"]
    shot = browser.send(
        "Page.captureScreenshot",
        format="png",
        captureBeyondViewport=True,
        clip={"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 6000), "scale": 0.5},
    )
    screenshot = tmp_path / "report.png"
    screenshot.write_bytes(base64.b64decode(shot["data"]))
    assert not browser.errors(), browser.errors()

    with Image.open(io.BytesIO(screenshot.read_bytes())) as image:
        pixels = np.asarray(image.convert("L"), dtype=float)
    assert pixels.shape[0] > 500 and pixels.shape[1] > 500
    assert pixels.std() > 20, "the screenshot is (nearly) uniform"
    assert (pixels < 235).mean() > 0.03, "the screenshot is (nearly) all white"


#: Layout facts of the page as shown: where the summary starts, and anything wider than the viewport.
_LAYOUT = """(() => {
  const summary = document.getElementById('summary');
  const first = summary.querySelector('table');
  const boxes = Array.from(document.querySelectorAll('div.table'));
  return {
    width: innerWidth, height: innerHeight, pageWidth: document.documentElement.scrollWidth,
    summaryTop: summary.getBoundingClientRect().top,
    firstTop: first.getBoundingClientRect().top, firstText: first.innerText,
    overflowing: Array.from(document.querySelectorAll('div.table, figure, pre, p, h2'))
      .filter(e => e.getBoundingClientRect().right > innerWidth + 0.5)
      .map(e => e.tagName + ' ' + e.innerText.slice(0, 60)),
    scrolled: boxes.filter(b => b.scrollWidth > b.clientWidth).map(b => getComputedStyle(b).overflowX),
  };
})()"""


@pytest.mark.parametrize("width", [1280, 760])
def test_the_summary_is_on_the_first_screen_and_nothing_is_wider_than_the_window(
    browser: DevTools, tmp_path: Path, width: int
) -> None:
    study = RESULTS / "study-smollm2"
    report = build_report([study], tmp_path / "report.html")
    for domain in ("Page", "Runtime", "Log"):
        browser.send(f"{domain}.enable")
    browser.send("Emulation.setDeviceMetricsOverride", width=width, height=800, deviceScaleFactor=1, mobile=False)
    browser.send("Page.navigate", url=report.resolve().as_uri())
    browser.wait_for("Page.loadEventFired")
    layout = browser.evaluate(_LAYOUT)
    assert (layout["width"], layout["height"]) == (width, 800)
    # the answer first: the summary and its first table of verdicts start on the first screen, unscrolled
    assert 0 <= layout["summaryTop"] < layout["firstTop"] < layout["height"] - 100, layout
    verdicts = set(pd.read_csv(study / "correlate" / "holdout.csv")["measured_verdict"])
    assert any(v in layout["firstText"] for v in verdicts), layout["firstText"][:300]
    # a wide table scrolls inside its own box; the page itself never scrolls sideways
    assert layout["pageWidth"] <= width and not layout["overflowing"], layout["overflowing"]
    assert layout["scrolled"] and set(layout["scrolled"]) == {"auto"}
    assert not browser.errors(), browser.errors()
