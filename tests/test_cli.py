"""The `ser` command's shared behaviour: quiet output, progress, flags, inputs, dead letters."""

import json
import os

import numpy as np
import pytest

from pipelines.dead_letters import dead_letter, to_jsonl
from pipelines.launch import balance_line, expand_input
from pipelines.progress import ProgressLine, Ticks, progress_text
from ser_cli.quiet import is_native_log
from ser_model.aggregate import file_probabilities
from tests.conftest import REPO, ser


@pytest.mark.parametrize("line,native", [
    (b"I0000 00:00:1796186480.897085    2335 port.cc:153] oneDNN custom operations are on.\n", True),
    (b"E0000 00:00:1796186485.956591    2335 cuda_platform.cc:52] failed call to cuInit: INTERNAL\n", True),
    (b"W1202 04:41:19.513292    12 some/dir/file.cc:7] a warning\n", True),
    (b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n", True),
    (b"To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with it.\n",
     True),
    (b"Traceback (most recent call last):\n", False),
    (b"ser features: error: no input file matched; nothing was written\n", False),
    (b"I want this line\n", False),
])
def test_native_start_up_lines_are_recognised_and_nothing_else(line, native):
    assert is_native_log(line) is native


def test_mistyped_flags_and_commands_exit_2():
    proc = ser("train", "--features", "x", "--output", "y", "--epochz", "3")
    assert proc.returncode == 2 and "unrecognized arguments: --epochz" in proc.stderr
    proc = ser("scor")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


def test_train_refuses_an_output_it_cannot_write_before_any_work():
    proc = ser("train", "--features", "/nonexistent", "--output", "/etc/hostname/model")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "ser train: error: cannot write /etc/hostname/model: /etc/hostname is a file, not a folder"]


def test_progress_text_has_count_share_rate_and_eta():
    assert progress_text(0, 10, 0.0) == "0/10 files (0%)"
    assert progress_text(25, 100, 5.0) == "25/100 files (25%), 5.0 files/s, ETA 0:15"
    assert progress_text(100, 100, 10.0) == "100/100 files (100%), 10.0 files/s"
    assert progress_text(10, 40000, 1.0).endswith("ETA 1:06:39")


def test_ticks_from_several_processes_add_up(tmp_path):
    import pickle
    import subprocess
    import sys

    out = tmp_path / "progress.log"
    tick_three = "import pickle, sys; t = pickle.loads(bytes.fromhex(sys.argv[1])); [t.tick() for _ in range(3)]"
    with out.open("w") as stream, ProgressLine(9, "done", stream=stream) as progress:
        ticks = pickle.dumps(progress.ticks).hex()   # as Beam ships a DoFn's state to its workers
        workers = [subprocess.Popen([sys.executable, "-c", tick_three, ticks], cwd=REPO) for _ in range(3)]
        assert [w.wait(timeout=60) for w in workers] == [0, 0, 0]
        assert progress.done() == 9
        folder = progress.folder
    assert out.read_text().splitlines()[-1].startswith("done: 9/9 files (100%)")
    assert not os.path.exists(folder)
    Ticks(None).tick(5)   # a remote run's ticks do nothing


def test_one_folder_to_glob_rule(tmp_path):
    (tmp_path / "calls").mkdir()
    (tmp_path / "calls" / "a.wav").write_bytes(b"x")
    assert expand_input(str(tmp_path / "calls")) == f"{tmp_path}/calls/**"
    assert expand_input(str(tmp_path / "calls") + "/") == f"{tmp_path}/calls/**"
    assert expand_input(str(tmp_path / "calls" / "a.wav")) == f"{tmp_path}/calls/a.wav"
    assert expand_input(f"{tmp_path}/calls/*.wav") == f"{tmp_path}/calls/*.wav"
    assert expand_input(str(tmp_path / "typo")) == f"{tmp_path}/typo"   # matches nothing: reported
    assert expand_input("gs://bucket/archive") == "gs://bucket/archive/**"
    assert expand_input("gs://bucket/archive/call.flac") == "gs://bucket/archive/call.flac"


def test_balance_line():
    assert balance_line(5, {"scored": 4, "failed": 1}) == ("inputs 5 = scored 4 + failed 1", True)
    text, ok = balance_line(6, {"written": 4, "skipped": 1, "failed": 0})
    assert not ok and text.endswith("(MISMATCH: files were lost)")


def test_dead_letters_are_one_sorted_format():
    rows = [dead_letter("/b.wav", "decode", "silent", "no sound"),
            dead_letter("/a.wav", "parse", "ravdess-song", "song", kind="skipped")]
    lines = [json.loads(x) for x in to_jsonl(rows).splitlines()]
    assert [r["path"] for r in lines] == ["/a.wav", "/b.wav"]
    assert lines[0] == {"path": "/a.wav", "kind": "skipped", "stage": "parse", "error_type": "ravdess-song",
                        "message": "song"}


def test_file_probabilities_is_the_mean_and_refuses_no_windows():
    probs = np.array([[0.2, 0.8], [0.6, 0.4]], np.float32)
    assert np.allclose(file_probabilities(probs), [0.4, 0.6]) and file_probabilities(probs).dtype == np.float64
    with pytest.raises(ValueError):
        file_probabilities(np.zeros((0, 2)))
