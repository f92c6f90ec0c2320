"""A dask.distributed cluster on this machine: ``dask scheduler`` on a free port plus worker
processes, each in its own process group (used by the tests and the Dask benchmark)."""

import os
import signal
import subprocess
import sys
import time

import distributed


class Cluster:
    """``dask scheduler`` on a free port plus worker processes, each in its own process group."""

    def __init__(self, folder, n_workers=2, env=None):
        folder.mkdir(parents=True, exist_ok=True)
        self.file = folder / "scheduler.json"
        self.log = folder
        self.env = env
        self.procs = {"scheduler": self._start("scheduler", ["scheduler", "--host", "127.0.0.1", "--port", "0",
                                                             "--no-dashboard", "--scheduler-file", str(self.file)])}
        deadline = time.monotonic() + 60
        while not self.file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        for i in range(n_workers):
            self.add_worker(f"w{i}")
        with self.client() as c:
            c.wait_for_workers(n_workers, timeout=120)

    def _start(self, name, args):
        out = open(self.log / f"{name}.log", "w")
        return subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_" + args[0], *args[1:]],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env=self.env)

    def add_worker(self, name):
        self.procs[name] = self._start(name, ["worker", "--scheduler-file", str(self.file), "--nthreads", "1",
                                              "--no-dashboard", "--name", name, "--death-timeout", "60"])

    def client(self):
        return distributed.Client(scheduler_file=str(self.file), timeout=60)

    def kill(self, name):
        os.killpg(self.procs[name].pid, signal.SIGKILL)
        self.procs[name].wait()

    def stop(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
