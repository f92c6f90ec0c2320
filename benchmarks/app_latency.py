"""Web app: time from upload to prediction (3 s and 60 s clips) and server memory over 20 uploads.

    python benchmarks/app_latency.py [--model BUNDLE]

Starts `streamlit run app.py` on a free localhost port, drives Debian's headless
Chromium with Playwright, and samples the server's resident memory (whole process
tree) after each upload. Results: benchmarks/results/app_latency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.score_throughput import tree_rss  # noqa: E402
from benchmarks.provenance import provenance  # noqa: E402
from tests.audiogen import voice  # noqa: E402
from tests.test_app_browser import free_port  # noqa: E402


def clip(path: Path, seconds: float) -> Path:
    parts, total, i = [], 0.0, 0
    while total < seconds:
        parts.append(voice(2.0, 16000, 120 + 30 * (i % 6), seed=i, silence=0.25))
        total += 2.5
        i += 1
    sf.write(path, np.concatenate(parts)[: int(seconds * 16000)], 16000)
    return path


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None)
    p.add_argument("--uploads", type=int, default=20)
    p.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "app_latency.json"))
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    port = free_port()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **({"SER_MODEL": args.model} if args.model else {})}
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"), "--server.port",
                               str(port), "--server.address", "127.0.0.1", "--server.headless", "true"],
                              cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    result = {"benchmark": "app_latency", **provenance()}
    try:
        with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=shutil.which("chromium"), headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
            page = browser.new_page()

            def upload_and_wait(path: Path) -> float:
                page.goto(url)
                page.get_by_text("Upload a file").first.wait_for(timeout=120000)
                started = time.perf_counter()
                page.locator("input[type=file]").set_input_files(str(path))
                page.get_by_text("Class probabilities").wait_for(timeout=300000)
                page.get_by_text("Log-mel spectrogram").wait_for(timeout=300000)
                return time.perf_counter() - started

            short, long = clip(Path(tmp) / "short.wav", 3.0), clip(Path(tmp) / "long.wav", 60.0)
            result["first_upload_with_model_load_s"] = round(upload_and_wait(short), 2)
            result["upload_to_prediction_3s_clip_s"] = round(upload_and_wait(short), 2)
            result["upload_to_prediction_60s_clip_s"] = round(upload_and_wait(long), 2)
            rss = []
            for i in range(args.uploads):
                upload_and_wait(long if i % 2 else short)
                rss.append(round(tree_rss(server.pid) / 2**20))
            result["server_rss_mb_after_each_upload"] = rss
            result["server_rss_growth_mb_last10"] = rss[-1] - rss[len(rss) // 2]
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(json.dumps(result, indent=1))
    Path(args.output).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
