"""The one file-system layer (ser_model/storage.py) on object storage: an S3 emulator (moto's
server, from PyPI) started here on a free port, reached through s3fs as a user reaches S3.

The same calls serve gs:// through gcsfs (not started here: see README, "Remote storage").
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pyarrow.parquet as pq
import pytest

from ser_model import storage
from tests import audiogen
from tests.conftest import TINY, ser

BUCKET = "s3://ser-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """An S3 emulator and the environment that points s3fs (in this process and in every `ser` run) at it."""
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(endpoint, timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("the S3 emulator did not start")
            time.sleep(0.3)
    env = {"FSSPEC_S3_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        import fsspec

        fsspec.config.conf.setdefault("s3", {})["endpoint_url"] = endpoint   # this process read its config at import
        fs = fsspec.filesystem("s3", skip_instance_cache=True)
        fs.mkdir(BUCKET)
        yield endpoint
        fsspec.config.conf.get("s3", {}).pop("endpoint_url", None)
    proc.terminate()
    proc.wait(timeout=20)


def test_files_round_trip_and_are_listed_as_on_a_local_disk(s3, tmp_path):
    for rel in ("a/x.wav", "a/b/y.wav", "a/b/z.txt", "c.wav"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(rel.encode())
    url = f"{BUCKET}/tree"
    storage.upload_tree(str(tmp_path), url)
    for pattern in ("**", "a/*", "a/**/*.wav", "*.wav", "a/b/y.wav", "nothing*"):
        local = [(p[len(str(tmp_path)) + 1:], n) for p, n in storage.list_files(f"{tmp_path}/{pattern}")]
        remote = [(p[len(url) + 1:], n) for p, n in storage.list_files(f"{url}/{pattern}")]
        assert remote == local, pattern
    assert storage.read_text(f"{url}/a/b/y.wav") == "a/b/y.wav"

    with pytest.raises(RuntimeError):
        with storage.open_write(f"{url}/half.bin") as f:
            f.write(b"some")
            raise RuntimeError("stopped half way")
    assert storage.list_files(f"{url}/half*") == []     # neither the file nor its temporary
    storage.write_text(f"{url}/c.wav", "new")
    assert storage.read_text(f"{url}/c.wav") == "new"
    storage.delete_tree(f"{url}/a")
    assert [p for p, _ in storage.list_files(f"{url}/**")] == [f"{url}/c.wav"]


def test_features_train_and_score_on_s3(s3, corpora_tree, feature_dir, tmp_path):
    """`ser features`, `ser train` and `ser score` with every input and output on S3."""
    root, _ = corpora_tree
    storage.upload_tree(str(root), f"{BUCKET}/corpora")
    proc = ser("features", "--input", f"{BUCKET}/corpora", "--output", f"{BUCKET}/features")
    assert proc.returncode == 0, proc.stderr[-3000:]
    remote = json.loads(storage.read_text(f"{BUCKET}/features/manifest.json"))
    local = json.loads((feature_dir / "manifest.json").read_text())
    for key in ("inputs", "written", "skipped", "failed", "files_per_split", "label_split"):
        assert remote[key] == local[key], key
    assert storage.list_files(f"{BUCKET}/features.staging*/**") == []

    proc = ser("train", "--features", f"{BUCKET}/features", "--output", f"{BUCKET}/model", *TINY,
               "--max_steps", "2")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert storage.exists(f"{BUCKET}/model/model.keras") and storage.exists(f"{BUCKET}/model/MODEL_CARD.md")

    archive = tmp_path / "archive"
    for i in range(3):
        audiogen.write(archive / f"clip{i}.wav", seconds=1.5, pitch=150 + 30 * i, seed=i)
    (archive / "broken.wav").write_bytes(b"RIFF....not audio")
    storage.upload_tree(str(archive), f"{BUCKET}/archive")
    proc = ser("score", "--model", f"{BUCKET}/model", "--input", f"{BUCKET}/archive",
               "--output", f"{BUCKET}/scores", "--windows")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "inputs 4 = scored 3 + failed 1" in proc.stdout
    with storage.open_read(f"{BUCKET}/scores.files.parquet") as f:
        rows = pq.read_table(f).to_pylist()
    assert sorted(r["path"] for r in rows) == sorted(f"{BUCKET}/archive/{n}" for n in os.listdir(archive))
    assert storage.exists(f"{BUCKET}/scores.windows.parquet")
    assert storage.list_files(f"{BUCKET}/scores.staging*") == []


def test_a_missing_remote_bundle_or_feature_folder_is_a_one_line_error(s3):
    proc = ser("score", "--model", f"{BUCKET}/no-model", "--input", f"{BUCKET}/archive", "--output", f"{BUCKET}/x")
    assert proc.returncode == 2 and "no model bundle at s3://ser-test/no-model" in proc.stderr
    proc = ser("train", "--features", f"{BUCKET}/no-features", "--output", f"{BUCKET}/m")
    assert proc.returncode == 2 and "no-features/features.json not found" in proc.stderr
