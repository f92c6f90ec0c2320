"""Local SDK worker processes forked from the launcher once it has imported Beam.

The FnApiRunner starts its worker processes (``python -m
apache_beam.runners.worker.sdk_worker_main``) when the first stage runs, after
the launcher has imported Beam and built the job; each worker then imports Beam
again, and on a 2-core machine three processes importing at once share two
cores. ``ser features`` instead imports Beam, the SDK harness and the feature
transforms once, in the launcher, and then forks its workers, which inherit
all of it (:func:`forked_workers`). Measured on the 2-core development
machine, a 61-file run: 1.62 s -> 1.27 s against the earlier pre-start by a
separate interpreter per worker (eight alternating pairs), which had itself
taken 0.3 s off Beam's own worker start.

Protocol (POSIX named pipes in a private temporary folder):

* a forked worker waits for the environment variables the runner gives a
  worker (its control and logging endpoints, pipeline options, worker id) on
  ``envN``, then runs the SDK harness;
* ``attach``: the command the runner runs for each worker. It claims a waiting
  worker (``claimN``, created exclusively), hands it the runner's variables and
  lasts as long as that worker does (until the worker's end of ``doneN``
  closes), so the runner sees an ordinary worker process. With none left to
  claim it becomes an ordinary worker itself.

A forked worker that is never claimed exits when the launcher closes the pool
or dies (it watches a pipe whose other end only the launcher holds).

The fork happens before the launcher creates any gRPC channel or server or
starts a thread, the condition under which gRPC and the BLAS libraries are
fork-safe; a launcher that already has a thread, and systems other than Linux,
get Beam's own worker start. Beam is imported with the optional integrations
it loads whenever they are installed (pandas, Arrow, MongoDB, BigQuery,
Pub/Sub, the Dataflow API client) hidden
(:func:`beam_without_unused_integrations`): a local feature run uses none of
them, and importing them cost 0.75-0.9 s of CPU.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import shlex
import shutil
import sys
import tempfile
import threading
import time

HANDED_OVER = ("CONTROL_API_SERVICE_DESCRIPTOR", "LOGGING_API_SERVICE_DESCRIPTOR", "PIPELINE_OPTIONS",
               "WORKER_ID")
# One BLAS thread per worker process: the workers already use every core, and
# OpenBLAS threads spin-wait, burning a second core for no speed-up on these
# small matrices (measured: same wall time, twice the CPU). Set as defaults:
# a value in the user's environment wins.
SINGLE_THREADED = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def default_to_one_blas_thread() -> None:
    """Put :data:`SINGLE_THREADED` in this process's environment, where the user has not set them.

    Takes effect for numpy loaded after this call and for every process started from this one.
    """
    for var, value in SINGLE_THREADED.items():
        os.environ.setdefault(var, value)
# A run that names its runner or mode, or does not run (dry run, help), gets Beam's own worker start.
FLAGS_WITHOUT_PRESTART = ("--runner", "--direct_running_mode", "--dry_run", "--help", "-h")
# Beam imports these whenever they are installed, each behind a try/except ImportError: its
# pandas and Arrow batch types, MongoDB IO, and the BigQuery, Pub/Sub and Dataflow API clients
# (Google Cloud Storage stays: local runs read and write gs:// paths). A default local
# feature run uses none of them. Measured on the 2-core development machine, CPU time to import
# Beam's worker harness and our transforms: 1.55 s -> 0.79 s; the launcher's imports: 1.69 s -> 0.80 s.
UNUSED_BEAM_INTEGRATIONS = ("pandas", "pyarrow", "pymongo", "bson", "google.cloud.bigquery",
                            "google.cloud.bigquery_storage_v1", "google.cloud.pubsub", "google.cloud.dataflow")


@contextlib.contextmanager
def beam_without_unused_integrations():
    """Import Beam inside this block as if :data:`UNUSED_BEAM_INTEGRATIONS` were not installed.

    A module already imported stays; on leaving, the hidden ones become importable
    again (Beam has decided by then; later code that wants one just imports it).
    """
    hidden = [name for name in UNUSED_BEAM_INTEGRATIONS if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # "import name" now raises ImportError, as if not installed
    # Beam's MongoDB IO warns on every import that it found no compatible bson: not news here.
    mongo_log = logging.getLogger("apache_beam.io.mongodbio")
    level = mongo_log.level
    mongo_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        mongo_log.setLevel(level)
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


def names_flag(argv, flag: str) -> bool:
    """Whether the command line gave ``flag`` (``--flag V`` or ``--flag=V``) rather than its default."""
    return any(a == flag or a.startswith(flag + "=") for a in argv)


def workers_wanted(argv: list[str]) -> int:
    """How many workers to fork for these ``ser features`` arguments: 0 unless a default local run on Linux."""
    if not sys.platform.startswith("linux") or any(names_flag(argv, f) for f in FLAGS_WITHOUT_PRESTART):
        return 0
    for i, arg in enumerate(argv):
        if arg == "--direct_num_workers" and i + 1 < len(argv):
            arg = "=" + argv[i + 1]
        elif not arg.startswith("--direct_num_workers="):
            continue
        try:
            return max(0, int(arg.split("=", 1)[1]))
        except ValueError:
            return 0  # Beam will reject the flag with its own message
    return os.cpu_count() or 1


@contextlib.contextmanager
def forked_workers(n: int):
    """Import Beam, the SDK harness and the feature transforms here, then fork ``n`` waiting workers.

    Yields the :class:`PrestartedWorkers`, or None where this process already
    has a second thread (a user's ``OPENBLAS_NUM_THREADS=4`` starts BLAS
    threads when numpy loads): then the runner starts its own workers. On
    leaving, unclaimed workers end and every worker is waited for.
    """
    default_to_one_blas_thread()  # before numpy loads its BLAS, here and so in the workers
    with beam_without_unused_integrations():
        import apache_beam.runners.worker.sdk_worker_main  # noqa: F401  (what the workers run)
        import pipelines.features  # noqa: F401  (the launcher's job and the workers' transforms)
    if not _single_threaded():
        yield None
        return
    with PrestartedWorkers(n) as workers:
        yield workers


class PrestartedWorkers:
    """``n`` SDK worker processes forked from this one, waiting; :attr:`command` attaches the runner to them.

    Fork before this process creates a thread or a gRPC object (a RuntimeError
    says so otherwise): the workers inherit its imported modules.
    """

    def __init__(self, n: int):
        if not _single_threaded():
            raise RuntimeError("forking SDK workers needs a single-threaded launcher")
        self.n = n
        self.folder = tempfile.mkdtemp(prefix="ser-workers-")
        for i in range(n):
            os.mkfifo(f"{self.folder}/env{i}", 0o600)
            os.mkfifo(f"{self.folder}/done{i}", 0o600)
        watched, self._alive = os.pipe()
        sys.stdout.flush()  # else a child would write this process's buffered output again
        sys.stderr.flush()
        self.pids = [self._fork(i, watched) for i in range(n)]
        os.close(watched)
        self.exit_codes: list[int | None] = [None] * n

    def _fork(self, index: int, watched: int) -> int:
        # Opened here, before the fork: an attach process can hand over its variables however late the child runs.
        env_fd = os.open(f"{self.folder}/env{index}", os.O_RDONLY | os.O_NONBLOCK)
        pid = os.fork()
        if pid:
            os.close(env_fd)
            return pid
        code = 1
        try:  # the child: never returns into the launcher's code
            os.close(self._alive)
            code = serve(self.folder, index, watched, env_fd)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)  # no atexit handlers or finalisers of the launcher's objects

    def runner(self, options):
        """An FnApiRunner whose SDK workers are these processes; adjusts ``options`` to match."""
        from apache_beam.options.pipeline_options import DirectOptions
        from apache_beam.runners.portability.fn_api_runner import fn_runner
        from apache_beam.transforms.environments import SubprocessSDKEnvironment

        direct = options.view_as(DirectOptions)
        # "multi_processing" would make the runner replace the environment given here with its own
        # worker command; in the default mode it warns that several workers want multi_processing
        # (they are separate processes, these) - that one warning is dropped.
        direct.direct_running_mode = "in_memory"
        direct.direct_num_workers = self.n
        logging.getLogger(fn_runner.__name__).addFilter(
            lambda record: not record.getMessage().startswith("If direct_num_workers is not equal to 1"))
        return fn_runner.FnApiRunner(default_environment=SubprocessSDKEnvironment.from_command_string(self.command))

    @property
    def command(self) -> str:
        """The worker command line for Beam's ``SubprocessSDKEnvironment``."""
        return shlex.join([sys.executable, "-m", "pipelines.local_workers", "attach", self.folder, str(self.n)])

    def close(self) -> None:
        """Let unclaimed workers go, wait for every worker to end, remove the folder."""
        if self._alive is not None:
            os.close(self._alive)
            self._alive = None
        deadline = time.monotonic() + 10
        for i, pid in enumerate(self.pids):
            while self.exit_codes[i] is None:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    self.exit_codes[i] = os.waitstatus_to_exitcode(status)
                elif time.monotonic() > deadline:
                    os.kill(pid, 9)
                    self.exit_codes[i] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
                else:
                    time.sleep(0.005)
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _single_threaded() -> bool:
    """Whether this process has one thread only, native ones included (read from /proc on Linux)."""
    try:
        native = len(os.listdir("/proc/self/task"))
    except OSError:
        native = 1
    return threading.active_count() == 1 and native == 1


def serve(folder: str, index: int, watched: int, env_fd: int) -> int:
    """A forked worker: wait to be claimed on ``env_fd``, then run the SDK harness (already imported)."""
    import apache_beam.runners.worker.sdk_worker_main as harness

    data = b""
    while True:
        ready, _, _ = select.select([env_fd, watched], [], [])
        if env_fd in ready:
            chunk = os.read(env_fd, 1 << 16)
            if chunk:
                data += chunk
                continue
            if data:  # the attach process wrote everything and closed its end
                break
        if watched in ready:  # the launcher closed the pool or died: not needed
            return 0
    os.close(env_fd)
    # Held open for this process's life: its closing tells the attach process that this worker ended.
    os.open(f"{folder}/done{index}", os.O_WRONLY)
    os.environ.update(json.loads(data))
    harness.main([])
    return 0


def attach(folder: str, n: int) -> int:
    """The runner's worker command: hand its endpoints to a pre-started worker and last as long as it does."""
    env = json.dumps({k: os.environ[k] for k in HANDED_OVER if k in os.environ}).encode()
    for index in range(n):
        try:
            os.close(os.open(f"{folder}/claim{index}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            done_fd = os.open(f"{folder}/done{index}", os.O_RDONLY | os.O_NONBLOCK)
            env_fd = os.open(f"{folder}/env{index}", os.O_WRONLY | os.O_NONBLOCK)  # ENXIO: that worker is gone
        except OSError:
            continue
        os.set_blocking(env_fd, True)
        os.write(env_fd, env)
        os.close(env_fd)
        while True:  # readable (end of file) once the worker has opened its end and exited
            select.select([done_fd], [], [])
            if not os.read(done_fd, 1):
                return 0
    # None left to claim (the runner asked for more workers than were started): be an ordinary worker.
    os.execv(sys.executable, [sys.executable, "-m", "apache_beam.runners.worker.sdk_worker_main"])
    return 1  # not reached


def main(argv: list[str]) -> int:
    if argv[:1] == ["attach"] and len(argv) == 3:
        return attach(argv[1], int(argv[2]))
    print("usage: python -m pipelines.local_workers attach FOLDER N", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
