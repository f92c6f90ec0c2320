import os
import subprocess
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


# A DenseNet small enough to train in seconds: the real code path, a tiny network.
TINY = ["--set", "model.backbone=densenet_tiny", "--set", "model.mel_pool=[2,2]",
        "--set", "model.mfcc_filters=[8,16]", "--set", "training.batch_size=4",
        "--set", "training.epochs=2", "--set", "training.warmup_epochs=0"]


NATIVE_LOG_MARKS = ("I0000 ", "E0000 ", "cuInit", "absl::InitializeLog", "WARNING:tensorflow")


def ser(*args, timeout=600):
    """Run the real `ser` command line in a subprocess (as a user would: no log settings of ours).

    Unless ``--verbose`` is given, its stderr must hold none of TensorFlow's native start-up lines.
    """
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "-m", "ser_cli.main", *map(str, args)], capture_output=True,
                          text=True, cwd=REPO, timeout=timeout, env=env)
    if "--verbose" not in args:
        leaked = [line for line in proc.stderr.splitlines() if any(m in line for m in NATIVE_LOG_MARKS)]
        assert not leaked, f"native log lines reached the console: {leaked[:3]}"
    return proc


@pytest.fixture(scope="session")
def tiny_bundle(feature_dir, tmp_path_factory):
    """(bundle folder, training stdout) of a few real training steps on the generated corpora."""
    out = tmp_path_factory.mktemp("train") / "bundle"
    proc = ser("train", "--features", feature_dir, "--output", out, *TINY, "--max_steps", "3")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return out, proc.stdout
