"""Long recordings: decoded range by range (by seeking), cut into units of work that any number of
workers can share, and put back together window by window."""

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from ser_model import audio, streaming
from ser_model.features import FeatureConfig
from ser_model.vad import VadConfig
from tests import audiogen
from tests.archivegen import RATE, make_archive
from tests.conftest import REPO, ser

CFG = FeatureConfig()
EXAMPLES = sorted((REPO / "examples/cremad/AudioWAV").glob("*.opus"))


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """A 150 s archive-like recording at 16 kHz and at 22.05 kHz, as FLAC files, and the 16 kHz one's
    samples as a whole read gives them."""
    wave, _ = make_archive(EXAMPLES, 150, seed=7)
    root = tmp_path_factory.mktemp("long")
    sf.write(root / "at16k.flac", wave, RATE, format="FLAC")
    sf.write(root / "at22k.flac", audio.resample(wave, RATE, 22050), 22050, format="FLAC")
    return root, sf.read(root / "at16k.flac", dtype="float32")[0]


def windows_of(path: Path, vad=None) -> streaming.Recording:
    with open(path, "rb") as f:
        rec = streaming.open_windows(f, CFG, vad=vad)
        return streaming.Recording(rec.duration_s, rec.long, list(rec.windows), rec.segments)


def test_a_range_read_by_seeking_equals_that_part_of_the_whole_recording(recording):
    root, wave = recording
    whole22 = audio.resample(sf.read(root / "at22k.flac", dtype="float32")[0], 22050, RATE)
    with sf.SoundFile(root / "at16k.flac") as f16, sf.SoundFile(root / "at22k.flac") as f22:
        for start, end in [(0, 5000), (1_000_003, 1_048_000), (len(wave) - 3000, len(wave) + 500)]:
            assert np.array_equal(streaming.read_range(f16, start, end, RATE), wave[start:end])
            part = streaming.read_range(f22, start, end, RATE)
            assert len(part) == len(whole22[start:end])
            assert np.abs(part - whole22[start:end]).max() < 1e-4


@pytest.mark.parametrize("vad", [None, VadConfig()], ids=["every-hop", "speech-only"])
def test_long_recording_windows_are_the_recordings_own_samples(recording, vad):
    """Each window is cut from the right place: equal to the same span of the fully decoded recording
    (an earlier streamed reader shifted every window after a long stretch without speech)."""
    root, wave = recording
    rec = windows_of(root / "at16k.flac", vad)
    assert rec.long and len(rec.windows) > 20
    plan = {w.index: w for w in streaming.window_plan(len(wave), CFG, rec.segments)}
    for win in rec.windows:
        spec = plan[win.index]
        assert win.start_s == spec.start / RATE and win.segment == spec.segment
        expected = audio.fit_length(wave[spec.start:spec.start + spec.length], CFG.window_samples)
        assert np.array_equal(win.samples, audio.normalize(expected, CFG.normalize, CFG.normalize_target_db))
    if vad is not None:
        assert [w.index for w in rec.windows] == sorted(plan)   # no window of speech is silent here
        assert rec.segments[-1][0] > 100   # speech near the end, after many gaps, is windowed too


def test_a_chunk_decodes_only_the_audio_near_its_windows():
    spec = [streaming.WindowSpec(0, 0, 48000), streaming.WindowSpec(1, 24000, 48000),
            streaming.WindowSpec(2, 3_000_000, 10000, 1)]
    assert streaming.read_spans(spec, gap=48000) == [(0, 72000), (3_000_000, 3_010_000)]


def test_voice_activity_found_piece_by_piece_agrees_with_one_pass(recording):
    from ser_model.vad import speech_seconds, speech_segments

    _, wave = recording
    cfg = VadConfig()
    one_pass, pieces = speech_segments(wave, cfg, piece_s=1e9), speech_segments(wave, cfg, piece_s=20.0)
    assert len(one_pass) > 10
    assert abs(speech_seconds(pieces) - speech_seconds(one_pass)) < 0.05 * speech_seconds(one_pass)
    assert all(any(min(a[1], b[1]) > max(a[0], b[0]) for b in pieces) for a in one_pass)


@pytest.fixture(scope="module")
def mixed_archive(recording, tmp_path_factory):
    """Many short clips and two long recordings (one at another rate, in stereo)."""
    root, wave = recording
    archive = tmp_path_factory.mktemp("mixed")
    for i in range(40):
        audiogen.write(archive / f"clips/{i:02d}.wav", seconds=1.0 + (i % 3), pitch=120 + 7 * i, seed=i)
    (archive / "long").mkdir()
    sf.write(archive / "long/interview.flac", wave, RATE, format="FLAC")
    stereo = np.stack([wave[: 130 * RATE], 0.5 * wave[: 130 * RATE]], axis=1)
    sf.write(archive / "long/call.wav", audio.resample(stereo, RATE, 44100), 44100)
    return archive


@pytest.mark.parametrize("vad,mode", [("long", "multi_processing"), ("off", "multi_processing"),
                                      ("long", "multi_threading")])
def test_one_worker_and_two_give_the_same_windows_and_lose_none(mixed_archive, tiny_bundle, tmp_path, vad, mode):
    runs = {}
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}"
        proc = ser("score", "--model", tiny_bundle[0], "--input", mixed_archive, "--output", out, "--windows",
                   "--vad", vad, "--direct_num_workers", workers, "--direct_running_mode", mode)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "inputs 42 = scored 42 + failed 0" in proc.stdout
        runs[workers] = (pq.read_table(f"{out}.files.parquet").to_pylist(),
                         sorted(pq.read_table(f"{out}.windows.parquet").to_pylist(),
                                key=lambda r: (r["path"], r["window_index"])))
    (files1, windows1), (files2, windows2) = runs["1"], runs["2"]
    assert [(w["path"], w["window_index"], w["start_s"], w["segment"]) for w in windows1] == \
        [(w["path"], w["window_index"], w["start_s"], w["segment"]) for w in windows2]
    probs = [[v for k, v in w.items() if k.startswith("p_")] for w in (*windows1, *windows2)]
    assert np.allclose(probs[:len(windows1)], probs[len(windows1):], atol=1e-6)
    assert [(f["path"], f["n_windows"], f["label"]) for f in files1] == \
        [(f["path"], f["n_windows"], f["label"]) for f in files2]
    # Every window of each long recording is there, as the single-process reader cuts them.
    for name in ("interview.flac", "call.wav"):
        rec = windows_of(mixed_archive / "long" / name, VadConfig() if vad == "long" else None)
        assert [w["window_index"] for w in windows2 if w["path"].endswith(name)] == [w.index for w in rec.windows]


def job(*globs):
    """What ``holds_a_long_recording`` and ``tune_local`` read of a score job: inputs and features."""
    from dataclasses import asdict
    from types import SimpleNamespace

    return SimpleNamespace(inputs=[(g, g) for g in globs], bundle={"features": asdict(CFG)})


def test_a_run_with_a_long_recording_keeps_every_worker(recording, tmp_path):
    """A few short files start no more workers than files; a long recording among them is shared."""
    from pipelines.score import holds_a_long_recording

    root, _ = recording
    audiogen.write(tmp_path / "short.wav", seconds=2.0)
    (tmp_path / "broken.wav").write_bytes(b"RIFF....")
    assert not holds_a_long_recording(job(f"{tmp_path}/*.wav"))
    assert holds_a_long_recording(job(f"{tmp_path}/*.wav", f"{root}/at16k.flac"))


def test_a_long_recording_among_few_files_is_shared_by_threads_of_one_process(recording, tmp_path):
    """Every worker as a thread of one process (one TensorFlow, one model) unless the user chose."""
    from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions

    from pipelines.score import ScoreCommand

    root, _ = recording
    audiogen.write(tmp_path / "short.wav", seconds=2.0)

    def tuned(argv, *globs, n_files):
        options = PipelineOptions(["--direct_num_workers", "4", "--direct_running_mode", "multi_processing"])
        ScoreCommand().tune_local(options, argv, job(*globs), n_files)
        direct = options.view_as(DirectOptions)
        return direct.direct_num_workers, direct.direct_running_mode

    long_and_short = (f"{tmp_path}/*.wav", f"{root}/at16k.flac")
    assert tuned([], *long_and_short, n_files=2) == (4, "multi_threading")
    assert tuned(["--direct_running_mode=multi_processing"], *long_and_short, n_files=2) == (4, "multi_processing")
    assert tuned([], f"{tmp_path}/*.wav", n_files=1) == (1, "multi_processing")   # short files: processes
    assert tuned([], *long_and_short, n_files=9) == (4, "multi_processing")       # many files: processes
