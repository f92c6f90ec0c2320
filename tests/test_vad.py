"""Voice activity detection on a recording like an archive's: real speech between music, noise, tones."""

import subprocess
import sys

import numpy as np
import pytest

from ser_model.vad import VadConfig, frames_to_segments, speech_seconds, speech_segments
from tests.archivegen import RATE, make_archive, non_speech
from tests.conftest import REPO

CLIPS = sorted((REPO / "examples/cremad/AudioWAV").glob("*.opus"))


@pytest.fixture(scope="module")
def archive():
    return make_archive(CLIPS, 80, seed=3)


def overlap(a, b):
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


@pytest.mark.parametrize("detector", ["silero", "webrtc"])
def test_every_clip_is_found_and_speech_lies_in_the_clips(archive, detector):
    wave, truth = archive
    clips = [(s - 1.0, e + 1.0) for s, e in truth]   # the clip around its loud part
    segments = speech_segments(wave, VadConfig(detector, aggressiveness=3))
    assert all(any(overlap(t, s) > 0.3 for s in segments) for t in truth)
    outside = speech_seconds(segments) - sum(overlap(s, c) for s in segments for c in clips)
    # Silero ignores music, noise and tones; WebRTC's energy-and-spectrum model takes some of them.
    assert outside < (2.0 if detector == "silero" else 0.5 * (len(wave) / RATE - speech_seconds(truth)))


def test_silero_finds_no_speech_in_music_noise_tones_and_silence():
    rng = np.random.default_rng(0)
    wave = np.concatenate([non_speech(kind, 8.0, rng) for kind in ("music", "noise", "tone", "silence")] * 2)
    assert speech_seconds(speech_segments(wave, VadConfig("silero"))) < 1.0


def test_pieces_depend_on_the_recording_and_tile_its_frames():
    from ser_model.vad import FRAME_SAMPLES, piece_spans

    cfg = VadConfig("silero")
    frame = FRAME_SAMPLES["silero"]
    spans = piece_spans(150 * RATE + 100, cfg, piece_s=60.0)
    assert [start for _, start, _ in spans] == [0, 1875 * frame, 3750 * frame]
    assert all(end == nxt for (_, _, end), (_, nxt, _) in zip(spans, spans[1:]))
    assert spans[-1][2] == (150 * RATE + 100) // frame * frame   # a last partial frame is no frame
    assert spans[0][0] == 0 and all(start - read_from == 62 * frame for read_from, start, _ in spans[1:])   # ~2 s


def test_frames_to_segments_bridges_pauses_drops_blips_and_pads():
    cfg = VadConfig(min_speech_s=0.25, min_silence_s=0.3, pad_s=0.1)
    frame = 0.1
    flags = np.array([0, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1, 1], bool)
    # 0.1-0.4 and 0.6-0.8 merge (0.2 s pause); 1.2-1.3 is a blip; 1.7-2.1 is padded to the end (2.1).
    assert frames_to_segments(flags, frame, cfg) == [(0.0, 0.9), (1.6, 2.1)]
    assert frames_to_segments(np.zeros(10, bool), frame, cfg) == []


def test_unknown_detector_is_refused():
    with pytest.raises(ValueError, match="detector"):
        VadConfig("energy")


def test_silero_runs_in_a_process_that_imported_tensorflow_first():
    """Scoring workers load TensorFlow before the VAD: that order once crashed the process."""
    code = ("import tensorflow, numpy as np\n"
            "from ser_model.vad import VadConfig, speech_segments\n"
            "print(speech_segments(np.zeros(16000, np.float32), VadConfig('silero')))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("[]")


@pytest.mark.parametrize("name", ["silero", "webrtc"])
def test_a_reset_detector_hears_as_a_new_one(archive, name):
    from ser_model.vad import detector

    wave, _ = archive
    cfg = VadConfig(name)
    used = detector(cfg)
    used.frames(wave[: 20 * RATE] + 0.01)   # some state, and a partial frame left over
    used.frames(wave[: 1001])
    used.reset()
    assert np.array_equal(used.frames(wave[20 * RATE: 30 * RATE]), detector(cfg).frames(wave[20 * RATE: 30 * RATE]))
