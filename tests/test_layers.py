"""The layering holds: the library needs neither Beam nor Streamlit nor the layers above it."""

import subprocess
import sys

from tests.conftest import REPO

BLOCK_AND_IMPORT = """
import importlib, pkgutil, sys

BLOCKED = {blocked!r}

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is not allowed in {package}")

sys.meta_path.insert(0, Refuse())
import {package}
for info in pkgutil.walk_packages({package}.__path__, "{package}."):
    importlib.import_module(info.name)
    print(info.name)
"""


def import_all(package: str, blocked: set[str]) -> subprocess.CompletedProcess:
    code = BLOCK_AND_IMPORT.format(package=package, blocked=sorted(blocked))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)


def test_every_library_module_imports_without_beam_streamlit_or_the_layers_above():
    proc = import_all("ser_model", {"apache_beam", "streamlit", "pipelines", "ser_cli"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    modules = proc.stdout.split()
    assert {"ser_model.predict", "ser_model.train", "ser_model.evaluate", "ser_model.corpora.cremad"} <= set(modules)


def test_the_pipelines_need_no_streamlit_and_not_the_command_line_package():
    proc = import_all("pipelines", {"streamlit", "ser_cli"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {"pipelines.features", "pipelines.score"} <= set(proc.stdout.split())


def test_the_guard_itself_catches_a_forbidden_import():
    proc = import_all("pipelines", {"apache_beam"})
    assert proc.returncode != 0 and "apache_beam is not allowed in pipelines" in proc.stderr
