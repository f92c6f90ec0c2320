"""What every benchmark result records: the command, date, commit and machine it was run with."""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def commit() -> str:
    """The checked-out commit, with ``+dirty`` when the working tree has uncommitted changes."""
    def git(*args):
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=REPO).stdout.strip()

    head = git("rev-parse", "--short=12", "HEAD") or "unknown"
    return head + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def machine() -> dict:
    memory_gib = None
    if os.path.exists("/proc/meminfo"):
        with open("/proc/meminfo") as f:
            memory_gib = round(int(f.readline().split()[1]) / 2**20, 1)
    return {"cpus": os.cpu_count(), "memory_gib": memory_gib, "processor": platform.machine(),
            "system": platform.system(), "python": platform.python_version(),
            # Other work on the machine when the run started (speed figures are relative to it).
            "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None}


def provenance() -> dict:
    script = os.path.relpath(sys.argv[0], REPO)
    return {"command": shlex.join(["python", script, *sys.argv[1:]]), "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "commit": commit(), "machine": machine()}


def write_result(name: str, result: dict) -> Path:
    """``benchmarks/results/NAME.json`` (``name`` a name, not a path: only its last part is used)."""
    out = REPO / "benchmarks/results" / f"{Path(name).name}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    return out
