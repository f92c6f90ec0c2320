"""`ser app`: run the Streamlit server on the app, and stop it when this command is stopped."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

APP = Path(__file__).resolve().with_name("webapp.py")


def streamlit_command(address: str, port: int) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(APP),
            "--server.address", address, "--server.port", str(port), "--server.headless", "true",
            "--browser.gatherUsageStats", "false",
            # A user of the app is a viewer: no "Deploy" button, no developer menu.
            "--client.toolbarMode", "viewer"]


def run(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="ser app", description="Start the web app (Streamlit) on this machine.")
    p.add_argument("--address", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 for every "
                        "interface)")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--model", default=None, help="bundle folder (default: $SER_MODEL or the bundled model)")
    p.add_argument("--verbose", action="store_true", help="show the server's native log output")
    args = p.parse_args(argv)
    if args.model and "://" not in args.model and not Path(args.model).is_dir():
        print(f"ser app: error: no model bundle folder at {args.model}", file=sys.stderr)
        return 2
    env = dict(os.environ, **({"SER_MODEL": args.model} if args.model else {}))
    print(f"ser app: serving on http://{args.address}:{args.port} (Ctrl-C stops it)", file=sys.stderr, flush=True)
    server = subprocess.Popen(streamlit_command(args.address, args.port), env=env)

    def stop(signum, _frame):
        server.send_signal(signal.SIGTERM)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stop)
    code = server.wait()
    return 0 if code in (0, -signal.SIGTERM) else code
