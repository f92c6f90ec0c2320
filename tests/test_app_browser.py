"""The app in a real browser: `streamlit run app.py` on a free localhost port, driven by headless Chromium."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                                reason="Debian's chromium is not installed (make test installs it)")
OUTPUT = REPO / "tests" / "output"
EXAMPLE = sorted((REPO / "examples/cremad/AudioWAV").glob("*.opus"))[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_bundle):
    port = free_port()
    env = {**os.environ, "SER_MODEL": str(tiny_bundle[0]), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"),
                             "--server.port", str(port), "--server.address", "127.0.0.1",
                             "--server.headless", "true", "--browser.gatherUsageStats", "false"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("streamlit did not start: " + proc.stdout.read().decode()[-2000:])
    yield url
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


def upload(page, url, path: Path):
    page.goto(url)
    page.get_by_text("Upload a file").first.wait_for(timeout=60000)
    page.locator("input[type=file]").set_input_files(str(path))


def test_upload_shows_prediction_and_charts(server, browser, tiny_bundle):
    classes = __import__("json").loads((tiny_bundle[0] / "labels.json").read_text())["classes"]
    page = browser.new_page(viewport={"width": 1400, "height": 2200})
    upload(page, server, EXAMPLE)
    page.get_by_text("Class probabilities").wait_for(timeout=90000)
    page.get_by_text("Log-mel spectrogram").wait_for(timeout=30000)
    page.wait_for_timeout(1500)  # let charts render before the screenshot
    heading = page.locator("h3").filter(has_text="").all_inner_texts()
    assert any(any(c in h for c in classes) for h in heading), heading
    assert page.locator("[data-testid=stMetric]").count() >= 3
    assert page.locator("[data-testid=stImage] img, [data-testid=stPyplot] img, img").count() >= 3
    assert page.locator("[data-testid=stVegaLiteChart], canvas, svg").count() >= 1
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / "app_prediction.png"), full_page=True)
    page.close()


def test_bad_file_shows_the_error_message(server, browser, tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("definitely not audio\n" * 40)
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    upload(page, server, bad)
    alert = page.locator("[data-testid=stAlert]").filter(has_text="not an audio file")
    alert.wait_for(timeout=60000)
    assert "notes.wav" in alert.inner_text()
    assert page.get_by_text("Traceback").count() == 0
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / "app_bad_file.png"))
    page.close()
