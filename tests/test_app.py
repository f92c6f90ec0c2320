"""The Streamlit app's logic paths with Streamlit's AppTest (a real script run, no browser)."""

import io

import numpy as np
import pytest
import soundfile as sf
from streamlit.testing.v1 import AppTest

from ser_model.analysis import InputError, analyse, envelope
from ser_model.labels import valence_summary
from ser_model.predict import Predictor
from tests import audiogen
from tests.conftest import REPO

EXAMPLE = sorted((REPO / "examples/cremad/AudioWAV").glob("*.opus"))[0]


@pytest.fixture
def app(tiny_bundle, monkeypatch):
    monkeypatch.setenv("SER_MODEL", str(tiny_bundle[0]))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception
    return at


def wav_bytes(seconds, rate=16000, pitch=220.0):
    buf = io.BytesIO()
    sf.write(buf, audiogen.voice(seconds, rate, pitch), rate, format="WAV")
    return buf.getvalue()


def shown_texts(at):
    return " ".join([m.value for m in at.markdown] + [s.value for s in at.subheader])


def test_bundled_example_is_analysed(app, tiny_bundle):
    app.radio(key="source").set_value("Bundled example").run()
    assert not app.exception and not app.error
    assert app.selectbox(key="example").value == EXAMPLE.name
    labels = [m.label for m in app.metric]
    assert labels[:2] == ["Emotion", "Valence"] and "Speaker gender (guess)" in labels
    emotion = app.metric[0].value
    assert emotion in Predictor(str(tiny_bundle[0])).bundle.classes
    assert emotion in app.subheader[0].value
    assert "Class probabilities" in shown_texts(app) and "Log-mel spectrogram" in shown_texts(app)


def test_upload_is_analysed_and_long_files_get_a_timeline(app):
    app.file_uploader(key="upload").upload("speech.wav", wav_bytes(7.0), "audio/wav").run()
    assert not app.exception and not app.error
    assert "Emotion over time" in shown_texts(app)
    assert app.metric[3].value == "7.6 s"  # 7 s of voice framed by 0.3 s of silence


@pytest.mark.parametrize("content,message", [
    (b"this is not audio" * 100, "not an audio file"),
    (b"", "empty"),
    (None, "silent"),
])
def test_bad_uploads_show_a_message_not_a_traceback(app, content, message):
    if content is None:
        buf = io.BytesIO()
        sf.write(buf, np.zeros(32000, np.float32), 16000, format="WAV")
        content = buf.getvalue()
    app.file_uploader(key="upload").upload("bad.wav", content, "audio/wav").run()
    assert not app.exception
    assert app.error and message in app.error[0].value


def test_size_limit_is_a_clear_message(tiny_bundle, monkeypatch):
    monkeypatch.setenv("SER_MODEL", str(tiny_bundle[0]))
    monkeypatch.setenv("SER_APP_MAX_MB", "0.01")
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    at.file_uploader(key="upload").upload("big.wav", wav_bytes(2.0), "audio/wav").run()
    assert at.error and "the limit is 0 MB" in at.error[0].value


def test_analyse_refuses_short_and_long_recordings(tiny_bundle):
    predictor = Predictor(str(tiny_bundle[0]))
    with pytest.raises(InputError, match="too short"):
        analyse(wav_bytes(0.05, pitch=300), predictor, 2**20, 600)
    with pytest.raises(InputError, match="too long"):
        analyse(wav_bytes(5.0), predictor, 2**20, 3.0)


def test_valence_mapping_sums_to_one():
    classes = ("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised")
    v = valence_summary([0.1, 0.2, 0.1, 0.1, 0.1, 0.1, 0.3], classes)
    assert v == pytest.approx({"positive": 0.5, "neutral": 0.1, "negative": 0.4})


def test_envelope_keeps_the_extremes():
    wave = np.sin(np.linspace(0, 100, 10000))
    low, high = envelope(wave, points=100)
    assert len(low) == 100 and np.isclose(high.max(), wave.max()) and np.isclose(low.min(), wave.min())


def test_microphone_recording_is_analysed(app):
    app.radio(key="source").set_value("Record with the microphone").run()
    app.audio_input(key="mic").upload("recording.wav", wav_bytes(2.0, rate=48000)).run()
    assert not app.exception and not app.error
    assert [m.label for m in app.metric][0] == "Emotion"
    assert app.metric[3].value == "2.6 s"


def test_long_upload_timeline_is_in_seconds_with_speech_shaded(app, tiny_bundle):
    """A few minutes of archive-like audio: the timeline's x-axis is seconds, each scored speech
    segment is shaded and labelled."""
    import matplotlib.patches

    from ser_cli.webapp import timeline_figure
    from tests.archivegen import make_archive

    wave, _ = make_archive(sorted((REPO / "examples/cremad/AudioWAV").glob("*.opus")), 75, seed=2)
    buf = io.BytesIO()
    sf.write(buf, wave, 16000, format="FLAC")
    app.file_uploader(key="upload").upload("interview.flac", buf.getvalue(), "audio/flac").run()
    assert not app.exception and not app.error
    assert "shaded: the speech that was scored" in shown_texts(app)
    pred = Predictor(str(tiny_bundle[0])).predict_fileobj(io.BytesIO(buf.getvalue()))
    fig = timeline_figure(pred, 3.0)
    ax = fig.axes[0]
    assert ax.get_xlim() == (0, pytest.approx(len(wave) / 16000)) and ax.get_xlabel() == "seconds"
    shaded = [p for p in ax.patches if isinstance(p, matplotlib.patches.Rectangle)]
    assert len(shaded) == len(pred.segments) > 0
    assert {t.get_text() for t in ax.texts} <= set(pred.classes) and len(ax.texts) >= 1


def test_segment_probabilities_average_the_windows_inside_each_segment():
    from ser_model.aggregate import segment_probabilities

    probs = np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8]])
    out = segment_probabilities([0, 0, 1], probs, 3)
    assert np.allclose(out[0], [0.8, 0.2]) and np.allclose(out[1], [0.2, 0.8]) and out[2] is None
