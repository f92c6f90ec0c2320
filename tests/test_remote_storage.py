"""The one file-system layer (ser_model/storage.py) on object storage: storage emulators from
PyPI (moto's server for s3://, gcp-storage-emulator for gs://) started here on free ports, reached
through s3fs and gcsfs as a user reaches the real services."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pyarrow.parquet as pq
import pytest

from ser_model import storage
from tests import audiogen
from tests.conftest import TINY, ser

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


EMULATORS = {
    # name: (command, environment for the clients; {endpoint} is filled in)
    "s3": (["-m", "moto.server", "-H", "127.0.0.1", "-p", "{port}"],
           {"FSSPEC_S3_ENDPOINT_URL": "{endpoint}", "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}),
    "gs": (["-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1", "--port", "{port}", "--in-memory"],
           # the emulator speaks GCS's JSON API only: gcsfs's gRPC bucket probing stays off
           {"STORAGE_EMULATOR_HOST": "{endpoint}", "FSSPEC_GCS_TOKEN": "anon",
            "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}),
}


@pytest.fixture(scope="module", params=sorted(EMULATORS))
def bucket(request, tmp_path_factory):
    """A bucket on a storage emulator started here, and the environment that points the client
    (s3fs, gcsfs) at it, in this process and in every `ser` run. Yields the bucket's URL."""
    import fsspec

    protocol = request.param
    command, env = EMULATORS[protocol]
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = open(tmp_path_factory.mktemp(protocol) / "emulator.log", "w")
    proc = subprocess.Popen([sys.executable, *(a.format(port=port) for a in command)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(endpoint, timeout=2)
            break
        except urllib.error.HTTPError:   # it answers
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail(f"the {protocol} emulator did not start")
            time.sleep(0.3)
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v.format(endpoint=endpoint))
        fsspec.config.conf.clear()
        fsspec.config.set_conf_env(fsspec.config.conf)   # this process read the environment at import
        url = f"{protocol}://ser-test"
        fsspec.filesystem(protocol, skip_instance_cache=True).mkdir("ser-test")
        yield url
    fsspec.config.conf.clear()
    fsspec.config.set_conf_env(fsspec.config.conf)
    proc.terminate()
    proc.wait(timeout=20)


def test_files_round_trip_and_are_listed_as_on_a_local_disk(bucket, tmp_path):
    for rel in ("a/x.wav", "a/b/y.wav", "a/b/z.txt", "c.wav"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(rel.encode())
    url = f"{bucket}/tree"
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


def test_features_train_and_score_on_object_storage(bucket, corpora_tree, feature_dir, tmp_path):
    """`ser features`, `ser train` and `ser score` with every input and output in a bucket."""
    root, _ = corpora_tree
    storage.upload_tree(str(root), f"{bucket}/corpora")
    proc = ser("features", "--input", f"{bucket}/corpora", "--output", f"{bucket}/features")
    assert proc.returncode == 0, proc.stderr[-3000:]
    remote = json.loads(storage.read_text(f"{bucket}/features/manifest.json"))
    local = json.loads((feature_dir / "manifest.json").read_text())
    for key in ("inputs", "written", "skipped", "failed", "files_per_split", "label_split"):
        assert remote[key] == local[key], key
    assert storage.list_files(f"{bucket}/features.staging*/**") == []

    proc = ser("train", "--features", f"{bucket}/features", "--output", f"{bucket}/model", *TINY,
               "--max_steps", "2")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert storage.exists(f"{bucket}/model/model.keras") and storage.exists(f"{bucket}/model/MODEL_CARD.md")

    archive = tmp_path / "archive"
    for i in range(3):
        audiogen.write(archive / f"clip{i}.wav", seconds=1.5, pitch=150 + 30 * i, seed=i)
    (archive / "broken.wav").write_bytes(b"RIFF....not audio")
    storage.upload_tree(str(archive), f"{bucket}/archive")
    proc = ser("score", "--model", f"{bucket}/model", "--input", f"{bucket}/archive",
               "--output", f"{bucket}/scores", "--windows")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "inputs 4 = scored 3 + failed 1" in proc.stdout
    with storage.open_read(f"{bucket}/scores.files.parquet") as f:
        rows = pq.read_table(f).to_pylist()
    assert sorted(r["path"] for r in rows) == sorted(f"{bucket}/archive/{n}" for n in os.listdir(archive))
    assert storage.exists(f"{bucket}/scores.windows.parquet")
    assert storage.list_files(f"{bucket}/scores.staging*") == []


def test_a_missing_remote_bundle_or_feature_folder_is_a_one_line_error(bucket):
    proc = ser("score", "--model", f"{bucket}/no-model", "--input", f"{bucket}/archive", "--output", f"{bucket}/x")
    assert proc.returncode == 2 and f"no model bundle at {bucket}/no-model" in proc.stderr
    proc = ser("train", "--features", f"{bucket}/no-features", "--output", f"{bucket}/m")
    assert proc.returncode == 2 and "no-features/features.json not found" in proc.stderr


def test_a_bad_setting_is_reported_before_remote_features_are_copied(bucket, feature_dir):
    from ser_model import storage

    storage.upload_tree(str(feature_dir), f"{bucket}/settings-check")
    for command in (["train", "--output", f"{bucket}/m2"], ["crossval", "--output", f"{bucket}/cv"]):
        proc = ser(*command, "--features", f"{bucket}/settings-check", "--set", "training.epochz=3")
        assert proc.returncode == 2 and "unknown setting 'epochz'" in proc.stderr, proc.stderr[-2000:]
        assert "copying" not in proc.stderr
