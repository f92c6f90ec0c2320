"""The app in a real browser: `ser app` on a free localhost port, driven by headless Chromium."""

import os
import shutil
import signal
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


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on ``port`` (Linux's /proc/net/tcp, tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


@pytest.fixture(scope="module")
def server(tiny_bundle):
    """The real `ser app` command with its defaults (only the port is chosen)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ser_cli.main", "app", "--port", str(port),
                             "--model", str(tiny_bundle[0])],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
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
    yield url, port, proc
    if proc.poll() is None:
        proc.kill()


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


def test_serves_this_machine_only(server):
    _, port, _ = server
    assert listening_addresses(port) == {"0100007F"}   # 127.0.0.1, nothing else


def test_upload_shows_prediction_and_charts(server, browser, tiny_bundle):
    from playwright.sync_api import expect

    from ser_model.predict import Predictor

    expected = Predictor(str(tiny_bundle[0])).predict_file(str(EXAMPLE))
    page = browser.new_page(viewport={"width": 1400, "height": 2200})
    upload(page, server[0], EXAMPLE)
    page.get_by_text("Class probabilities").wait_for(timeout=90000)
    page.get_by_text("Log-mel spectrogram").wait_for(timeout=30000)
    page.wait_for_timeout(1500)  # let charts render before the screenshot
    assert expected.label in page.locator("[data-testid=stHeading] h3").first.inner_text()
    emotion = page.locator("[data-testid=stMetric]").filter(has_text="Emotion").first
    assert expected.label in emotion.inner_text() and f"{expected.confidence:.0%}" in emotion.inner_text()
    # polar chart, waveform, log-mel and MFCC images; class-probability and valence bar charts
    expect(page.locator("[data-testid=stImage] img")).to_have_count(4, timeout=30000)
    expect(page.locator("[data-testid=stVegaLiteChart]")).to_have_count(2, timeout=30000)
    assert page.get_by_text("Deploy", exact=True).count() == 0   # no developer toolbar for viewers
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / "app_prediction.png"), full_page=True)
    page.close()


def test_bad_file_shows_the_error_message(server, browser, tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("definitely not audio\n" * 40)
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    upload(page, server[0], bad)
    alert = page.locator("[data-testid=stAlert]").filter(has_text="not an audio file")
    alert.wait_for(timeout=60000)
    assert "notes.wav" in alert.inner_text()
    assert page.get_by_text("Traceback").count() == 0
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / "app_bad_file.png"))
    page.close()


def test_sigterm_to_ser_app_stops_the_server(server):
    """Runs last in this module: stopping `ser app` must not leave Streamlit serving."""
    url, port, proc = server
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert listening_addresses(port) == set()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
