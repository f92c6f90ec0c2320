import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).parent))

import audiogen  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_CORPORA = REPO.parent / "shared" / "corpora"


@pytest.fixture(scope="session")
def corpora_tree(tmp_path_factory):
    """A generated multi-corpus tree (real layouts, odd formats, broken files)."""
    root = tmp_path_factory.mktemp("corpora")
    expected = audiogen.make_corpora(root)
    return root, expected


@pytest.fixture(scope="session")
def label_table():
    from ser_model.labels import load_label_table

    return load_label_table()


@pytest.fixture(scope="session")
def feature_dir(corpora_tree, tmp_path_factory):
    """The real feature pipeline (in process) over the generated corpora."""
    from pipelines import features as F

    root, _ = corpora_tree
    out = tmp_path_factory.mktemp("features") / "out"
    assert F.run(["--input", str(root), "--output", str(out), "--runner", "FnApiRunner"]) == 0
    return out
