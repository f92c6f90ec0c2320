"""The Streamlit app: one recording in (upload, microphone or example), its emotion out.

    ser app [--port 8501]        or        streamlit run app.py

Settings (environment): SER_MODEL (bundle folder; default: the bundled model),
SER_APP_MAX_MB (upload size limit, default 20), SER_APP_MAX_SECONDS (default 600).
Uploads are processed in memory and never written anywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "cremad" / "AudioWAV"
AUDIO_TYPES = ["wav", "flac", "ogg", "opus", "mp3", "aiff", "aif"]
EMOJI = {"neutral": "😐", "calm": "😌", "happy": "😊", "sad": "😢", "angry": "😠", "fearful": "😨",
         "disgust": "🤢", "surprised": "😮"}


def settings() -> dict:
    return {"model": os.environ.get("SER_MODEL") or None,
            "max_mb": float(os.environ.get("SER_APP_MAX_MB", "20")),
            "max_seconds": float(os.environ.get("SER_APP_MAX_SECONDS", "600"))}


def main() -> None:
    import streamlit as st

    from ser_model.analysis import InputError, analyse

    st.set_page_config(page_title="Speech emotion recognition", page_icon="🎙️", layout="wide")
    cfg = settings()

    @st.cache_resource(show_spinner="Loading the model ...")
    def predictor_for(path):  # once per server process, shared by every session
        from ser_model.predict import Predictor

        return Predictor(path)

    st.title("Speech emotion recognition")
    try:
        predictor = predictor_for(cfg["model"])
    except FileNotFoundError as err:
        st.error(f"No model: {err}")
        return
    sidebar_model_card(st, predictor.bundle)

    source = st.radio("Recording", ["Upload a file", "Record with the microphone", "Bundled example"],
                      horizontal=True, key="source")
    data, name = None, None
    if source == "Upload a file":
        up = st.file_uploader(f"Audio file ({', '.join(AUDIO_TYPES)}; up to {cfg['max_mb']:g} MB)",
                              type=AUDIO_TYPES, key="upload")
        if up is not None:
            data, name = up.getvalue(), up.name
    elif source == "Record with the microphone":
        rec = st.audio_input("Record a few seconds of speech", key="mic")
        if rec is not None:
            data, name = rec.getvalue(), "recording.wav"
    else:
        examples = sorted(p.name for p in EXAMPLES.glob("*.opus"))
        choice = st.selectbox("Example (CREMA-D, ODbL)", examples, key="example")
        if choice:
            data, name = (EXAMPLES / choice).read_bytes(), choice
    if data is None:
        st.info("Choose a recording to analyse.")
        return

    try:
        with st.spinner("Analysing ..."):
            result = analyse(data, predictor, int(cfg["max_mb"] * 2**20), cfg["max_seconds"])
    except InputError as err:
        st.error(f"{name}: {err}")
        return
    st.audio(data)
    show_result(st, result, predictor.bundle.gender_classes, predictor.cfg.window_seconds)


def sidebar_model_card(st, bundle) -> None:
    """The model's figures on voices it never heard: speaker cross-validation when the bundle has it
    (its recipe's folds), then leave-one-corpus-out, else the feature run's test split."""
    from ser_model.crossval import corpus_evidence, speaker_evidence

    speakers = speaker_evidence(bundle.metrics.get("crossval", []))
    corpora = corpus_evidence(bundle.metrics.get("crossval", []))
    metrics = bundle.metrics.get("file", {})
    with st.sidebar:
        st.header("Model")
        st.caption(f"`{bundle.model_id}` · {len(bundle.classes)} classes: {', '.join(bundle.classes)}")
        if speakers:
            pooled = speakers["pooled"]
            st.markdown(f"On speakers it never heard ({speakers['folds']}-fold speaker cross-validation of "
                        f"its recipe): **UAR {pooled['uar']:.2f}**, accuracy {pooled['accuracy']:.2f} "
                        f"({pooled['n']} files).")
            rows = [{"corpus": g.split(":", 1)[1], "files": v["files"], "UAR": round(v["uar"]["mean"], 2),
                     "± sd": round(v["uar"]["std"], 2)}
                    for g, v in speakers["summary"].items() if g.startswith("corpus:")]
            st.dataframe(rows, hide_index=True)
            if corpora:
                held_out = [f"{g.split(':', 1)[1]} {v['uar']['mean']:.2f}"
                            for g, v in corpora["summary"].items() if g.startswith("corpus:")]
                st.markdown("On a corpus it never heard (trained on the others), UAR: " + ", ".join(held_out) + ".")
            ece = speakers["calibration"].get("ece_after_cross_fitted")
            if bundle.temperature != 1.0 and ece is not None:
                st.caption(f"Confidences are calibrated (expected calibration error {ece:.2f} on those speakers).")
        elif metrics:
            st.markdown(f"Held-out test split: **UAR {metrics['uar']:.2f}**, accuracy "
                        f"{metrics['accuracy']:.2f} ({metrics['n']} test files; TESS and SAVEE test "
                        "speakers were heard in training).")
            rows = [{"corpus": c, "files": s["n"], "UAR": round(s["uar"], 2)}
                    for c, s in metrics.get("per_corpus", {}).items()]
            st.dataframe(rows, hide_index=True)
        st.caption("Trained on acted emotional speech; expect less on natural speech. "
                   "See MODEL_CARD.md in the bundle.")


def show_result(st, result, gender_classes, window_seconds: float) -> None:
    import pandas as pd

    pred = result.prediction
    st.subheader(f"{EMOJI.get(pred.label, '')} {pred.label}")
    cols = st.columns(4)
    cols[0].metric("Emotion", pred.label, f"{pred.confidence:.0%} confidence", delta_color="off", delta_arrow="off")
    top_valence = max(result.valence, key=result.valence.get)
    cols[1].metric("Valence", top_valence, f"{result.valence[top_valence]:.0%}", delta_color="off", delta_arrow="off")
    if pred.gender_probs is not None:
        g = gender_classes[int(np.argmax(pred.gender_probs))]
        cols[2].metric("Speaker gender (guess)", g, f"{np.max(pred.gender_probs):.0%}", delta_color="off", delta_arrow="off")
    cols[3].metric("Length", f"{pred.duration_s:.1f} s", f"{len(pred.starts_s)} window(s)", delta_color="off", delta_arrow="off")

    left, right = st.columns(2)
    probs = pd.DataFrame({"emotion": pred.classes, "probability": pred.probs})
    left.markdown("**Class probabilities**")
    left.bar_chart(probs, x="emotion", y="probability", height=260, sort=False)
    right.markdown("**Probabilities (polar)**")
    right.pyplot(polar_figure(pred.classes, pred.probs))
    st.markdown("**Positive / neutral / negative** (happy and surprised positive; neutral and calm "
                "neutral; sad, angry, fearful and disgust negative)")
    st.bar_chart(pd.DataFrame({"valence": list(result.valence), "probability": list(result.valence.values())}),
                 x="valence", y="probability", height=180, horizontal=True, sort=False)
    st.markdown("**Waveform**")
    st.pyplot(waveform_figure(result.wave, result.rate))
    a, b = st.columns(2)
    a.markdown("**Log-mel spectrogram** (first window, as the model sees it)")
    a.pyplot(image_figure(result.logmel, "mel band", "dB"))
    b.markdown("**MFCC** (first window, standardised with the training statistics, as the model sees it)")
    b.pyplot(image_figure(result.mfcc_standardised, "coefficient", "z"))
    if len(pred.starts_s) > 1:
        st.markdown("**Emotion over time** (each window's probabilities at its centre"
                    + ("; shaded: the speech that was scored, labelled with its emotion)" if pred.segments
                       else ")"))
        st.pyplot(timeline_figure(pred, window_seconds))


def timeline_figure(pred, window_seconds: float):
    """Class probabilities over time in seconds; speech segments shaded and labelled (long recordings)."""
    import matplotlib.pyplot as plt

    centres = np.asarray(pred.starts_s) + window_seconds / 2
    fig, ax = plt.subplots(figsize=(9, 2.8), dpi=100)
    for i, name in enumerate(pred.classes):
        ax.plot(centres, pred.window_probs[:, i], marker="o", markersize=3, linewidth=1.2, label=name)
    for (start, end), probs in zip(pred.segments or [], pred.segment_probs or []):
        ax.axvspan(start, end, color="0.85", zorder=0)
        if probs is not None:
            ax.text((start + end) / 2, 1.02, pred.classes[int(np.argmax(probs))], ha="center", va="bottom",
                    fontsize=7, rotation=90 if end - start < 0.04 * pred.duration_s else 0)
    ax.set_xlim(0, pred.duration_s)
    ax.set_ylim(0, 1)
    ax.set_xlabel("seconds")
    ax.set_ylabel("probability")
    ax.legend(fontsize=7, ncol=len(pred.classes), loc="upper center", bbox_to_anchor=(0.5, -0.28), frameon=False)
    fig.tight_layout()
    return fig


def polar_figure(classes, probs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    angles = np.linspace(0, 2 * np.pi, len(classes), endpoint=False)
    fig = plt.figure(figsize=(3.6, 3.6), dpi=100)
    ax = fig.add_subplot(projection="polar")
    ax.bar(angles, probs, width=2 * np.pi / len(classes) * 0.8, alpha=0.75, color="tab:blue")
    ax.set_xticks(angles, classes, fontsize=8)
    ax.set_yticklabels([])
    fig.tight_layout()
    return fig


def waveform_figure(wave, rate):
    import matplotlib.pyplot as plt

    from ser_model.analysis import envelope

    low, high = envelope(wave)
    t = np.linspace(0, len(wave) / rate, len(low))
    fig, ax = plt.subplots(figsize=(9, 1.8), dpi=100)
    ax.fill_between(t, low, high, color="tab:blue", linewidth=0)
    ax.set_xlabel("seconds")
    ax.set_xlim(0, len(wave) / rate)
    fig.tight_layout()
    return fig


def image_figure(matrix, ylabel, unit):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 2.6), dpi=100)
    im = ax.imshow(matrix, origin="lower", aspect="auto", cmap="magma")
    ax.set_xlabel("frame")
    ax.set_ylabel(ylabel)
    fig.colorbar(im, ax=ax, label=unit)
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()
