"""The layering holds: the library needs neither Beam nor Streamlit nor the layers above it."""

import subprocess
import sys

from tests.conftest import REPO

# Imports every module of each package in turn, in one interpreter, with some top-level
# packages made unimportable while it does (a finder on sys.meta_path that refuses them).
BLOCK_AND_IMPORT = """
import importlib, pkgutil, sys

STEPS = {steps!r}
blocked, current = set(), ""

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError(f"{{name}} is not allowed in {{current}}")

sys.meta_path.insert(0, Refuse())
for current, refused in STEPS:
    blocked = set(refused)
    package = importlib.import_module(current)
    for info in pkgutil.walk_packages(package.__path__, current + "."):
        importlib.import_module(info.name)
        print(info.name)
"""


def import_all(steps: list[tuple[str, list[str]]]) -> subprocess.CompletedProcess:
    code = BLOCK_AND_IMPORT.format(steps=steps)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)


def test_the_library_needs_no_beam_streamlit_or_layer_above_and_the_pipelines_no_cli_or_streamlit():
    proc = import_all([("ser_model", ["apache_beam", "streamlit", "pipelines", "ser_cli"]),
                       ("pipelines", ["streamlit", "ser_cli"])])
    assert proc.returncode == 0, proc.stderr[-3000:]
    modules = set(proc.stdout.split())
    assert {"ser_model.predict", "ser_model.train", "ser_model.crossval", "ser_model.corpora.cremad",
            "pipelines.features", "pipelines.score"} <= modules


def test_the_guard_itself_catches_a_forbidden_import():
    proc = import_all([("pipelines", ["apache_beam"])])
    assert proc.returncode != 0 and "apache_beam is not allowed in pipelines" in proc.stderr
