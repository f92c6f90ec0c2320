"""The pipeline over the real development corpora (skipped where ../shared/corpora is absent)."""

import json
import random
import shutil

import pytest

from pipelines import features as F
from tests.conftest import SHARED_CORPORA

pytestmark = pytest.mark.skipif(not SHARED_CORPORA.is_dir(), reason="../shared/corpora not present")


@pytest.fixture(scope="module")
def sample_tree(tmp_path_factory):
    """Links to the quirky originals plus a fixed random sample of each corpus, in their layouts."""
    root = tmp_path_factory.mktemp("real")
    rng = random.Random(7)
    picked = [p for p in (SHARED_CORPORA / "originals").rglob("*") if p.is_file()]
    for corpus in ("ravdess", "cremad", "tess", "savee"):
        files = sorted(p for p in (SHARED_CORPORA / corpus).rglob("*.opus"))
        picked += rng.sample(files, 40)
    for src in picked:
        dst = root / src.relative_to(SHARED_CORPORA)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.symlink_to(src)
    shutil.copy(SHARED_CORPORA / "cremad" / "VideoDemographics.csv", root / "cremad")
    return root, len(picked)


def test_real_originals_and_sample_all_become_examples(sample_tree, tmp_path):
    root, n = sample_tree
    out = tmp_path / "out"
    assert F.run(["--input", str(root), "--output", str(out), "--runner", "FnApiRunner"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    # Every real file is a usable utterance: the originals' quirks (stereo, 96 kHz,
    # AIFF named .wav, OA_ typo, one-letter intensity) must not cost a single file.
    assert manifest["inputs"] == n + 1  # + VideoDemographics.csv
    assert manifest["written"] == n, (out / "dead_letters.jsonl").read_text()
    assert manifest["skipped"] == 1 and manifest["failed"] == 0
    assert set(manifest["corpus_split"]) == {"ravdess", "cremad", "tess", "savee"}
    for corpus, splits in manifest["corpus_split"].items():
        assert splits.get("test", 0) > 0, corpus
    assert "unknown" not in manifest["speakers"]["cremad"].get("1001", {})
