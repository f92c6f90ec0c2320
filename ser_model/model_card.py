"""MODEL_CARD.md: what the model was trained on, how, and how well it does on held-out speakers."""

from __future__ import annotations

from typing import Mapping

from ser_model.crossval import reliability_table, score_table, speaker_evidence

LICENCES = {
    "cremad": "CREMA-D: Open Database License 1.0 / Database Contents License 1.0",
    "ravdess": "RAVDESS: CC BY-NC-SA 4.0 (non-commercial)",
    "tess": "TESS: CC BY-NC-ND 4.0 (non-commercial)",
    "savee": "SAVEE: free for research use (University of Surrey)",
}


TRAINED_ON = {"train": "trained on the train split",
              "train+val": "refit on the train and validation groups",
              "all": "refit on every development speaker (all splits)"}


def crossval_sections(evidence: list[Mapping], train_on: str, calibrated: bool) -> list[str]:
    """The card's first sections: figures on speakers (and corpora) the fold models never heard."""
    lines = []
    which = TRAINED_ON.get(train_on, TRAINED_ON["train"])
    for ev in evidence:
        first = ev["kind"] != "by_corpus"
        head = ("## On voices it never heard (speaker cross-validation)" if first else
                "## On a corpus it never heard (trained on the others)")
        lines += [head, "",
                  f"{ev['title']} ({ev['folds']} folds, {ev['epochs']} epochs a fold; `{ev['source']}`): each file "
                  "scored once, by a model of this recipe trained without its "
                  + ("speaker" if first else "corpus") + f". The shipped model itself was {which}; these "
                  "figures are the recipe's, measured on held-out " + ("voices." if first else "corpora."), "",
                  *score_table(ev["summary"], "corpus:", "corpus"), ""]
        if first:
            lines += [*score_table(ev["summary"], "gender:", "gender"), ""]
        p = ev["pooled"]
        lines += [f"Pooled over all {p['n']} files: UAR {p['uar']:.3f}, accuracy {p['accuracy']:.3f}, "
                  f"macro-F1 {p['macro_f1']:.3f}.", ""]
        if ev.get("speaker_normalised"):
            lines += ["With speaker normalisation (`ser score --group_by`: each file's outputs relative to "
                      "its speaker's other files, which assumes every speaker acts a similar mix of emotions, "
                      "as these corpora's do; see the README):", "",
                      *score_table(ev["speaker_normalised"], "corpus:", "corpus"), ""]
    speakers = speaker_evidence(evidence)
    if speakers and speakers["calibration"].get("ece_after_cross_fitted") is not None:
        c = speakers["calibration"]
        lines += ["## Calibration", "",
                  f"Expected calibration error over the cross-validation files: {c['ece_before']:.3f} as trained, "
                  f"{c['ece_after_cross_fitted']:.3f} after temperature scaling (each fold rescaled with a "
                  f"temperature fitted on the other folds). "
                  + (f"This bundle applies the temperature fitted on all folds, {c['temperature']:.3f}: a "
                     "reported confidence of 0.8 means right about 80% of the time on such speakers."
                     if calibrated else "This bundle does not apply it (trained without --calibration)."), "",
                  *reliability_table(c), ""]
        if c.get("speaker_norm"):
            g = c["speaker_norm"]
            lines += [f"Speaker-normalised outputs (`ser score --group_by`, speakers of at least {g['min_files']} "
                      f"files) have a calibration of their own: expected calibration error {g['ece_before']:.3f} "
                      f"before, {g['ece_after_cross_fitted']:.3f} after their temperature (fitted on the other "
                      "folds); " + (f"this bundle applies the one fitted on all folds, {g['temperature']:.3f}."
                                    if calibrated else "this bundle does not apply it."), ""]
    return lines


def augmentation_summary(aug: Mapping) -> str:
    """The training-time augmentation a recipe switched on, in words."""
    parts = ["SpecAugment masks, time shift and gain"]
    if aug.get("noise_p", 0) > 0:
        lo, hi = aug["noise_snr_db"]
        parts.append(f"stationary noise on {aug['noise_p']:.0%} of windows ({lo}-{hi} dB below the peak)")
    if aug.get("band_limit_p", 0) > 0:
        lo, hi = aug["band_limit_hz"]
        parts.append(f"low-pass at {lo}-{hi} Hz on {aug['band_limit_p']:.0%} of windows")
    if (aug.get("reverb_p") or 0) > 0:
        lo, hi = aug["reverb_rt60_s"]
        parts.append(f"reverberation (RT60 {lo}-{hi} s) on {aug['reverb_p']:.0%} of windows")
    if aug.get("vtlp"):
        parts.append("vocal-tract-length warp (factor {}-{})".format(*aug["vtlp"]))
    if aug.get("tempo"):
        parts.append("tempo change (rate {}-{})".format(*aug["tempo"]))
    if (aug.get("mixup_alpha") or 0) > 0:
        parts.append(f"mixup (alpha {aug['mixup_alpha']})")
    return ", ".join(parts)


def model_card(rep: Mapping, fdir, cfg: Mapping, calibrated: bool = False) -> str:
    manifest = fdir.manifest
    corpora = sorted(manifest.get("corpus_split", {}))
    t, m = cfg["training"], cfg["model"]
    tr = rep.get("training", {})
    train_on = tr.get("train_on", "train")
    refit = train_on != "train"          # a fixed epoch count, no model selection
    evidence = rep.get("crossval") or []
    lines = [
        "# Model card: speech emotion recognition (fused DenseNet + MFCC-CNN)", "",
        *crossval_sections(evidence, train_on, calibrated),
        "## Intended use",
        "Research and archive exploration of *acted* emotional speech. Predictions on natural, "
        "conversational or noisy speech are far less reliable than the figures on this card; do not use "
        "them for decisions about individuals.", "",
        "## Labels",
        f"Label set `{fdir.label_set.name}`: {', '.join(fdir.label_set.classes)}"
        + (f" (folded: {fdir.label_set.fold})" if fdir.label_set.fold else "") + ".", "",
        "## Training data and licences",
        *[f"- {LICENCES.get(c, c)}: " + ", ".join(f"{s} {n}" for s, n in sorted(
            manifest['corpus_split'][c].items())) + " files" for c in corpora],
        "",
        "Because of the non-commercial corpus licences, this model is for research use only.", "",
        "## Split",
        "Speaker-independent where the corpus allows (RAVDESS, CREMA-D by speaker); TESS by spoken "
        "word and SAVEE by sentence (too few speakers). Groups per split are listed in the feature "
        "run's manifest.json. " + SPLIT_USE[train_on], "",
        "## Recipe",
        f"- backbone {m['backbone']} (weights: {m.get('weights') or 'from scratch'}), log-mel pooled "
        f"{m.get('mel_pool')}, per-window normalisation {m.get('window_norm') or 'none'}, MFCC CNN {m['mfcc_filters']}, dropout {m['dropout']}, "
        f"gender head {bool(m.get('gender_head'))}" + (
            f", speaker adversary (gradient reversal, scale {m['speaker_adversary']}; dropped from the shipped model)"
            if (m.get("speaker_adversary") or 0) > 0 else ""),
        f"- {t['epochs']} epochs{'' if refit else ' max'}, batch {t['batch_size']}, AdamW lr {t['learning_rate']} cosine, "
        f"label smoothing {t['label_smoothing']}, class weighting {t['class_weighting']}"
        + (f", final weights a moving average (EMA {t['ema_momentum']})" if t.get("ema_momentum") else ""),
        f"- augmentation: {augmentation_summary(cfg.get('augment', {}))}",
        f"- trained on {tr.get('device', '?')}; epochs run {tr.get('epochs_run', '?')}, " + (
            "final weights (the validation speakers were trained on, so there is no model selection)"
            if refit else f"best epoch {tr.get('best_epoch', '?')}"), "",
        *held_out_split_section(rep, bool(evidence)),
    ]
    return "\n".join(lines) + "\n"


SPLIT_USE = {
    "train": "Trained on the train split, model selected on validation UAR.",
    "train+val": "The model was refit on the train and validation groups; no test group (speaker, TESS "
                 "word, SAVEE sentence) was seen.",
    "all": "The model was refit on every group of every split, test included, so it has no held-out "
           "split of its own: the cross-validation figures above are its recipe's figures on new voices.",
}


def held_out_split_section(rep: Mapping, after_crossval: bool) -> list[str]:
    """The feature run's test split, for a model that did not train on it."""
    f = rep.get("file")
    if not f:
        return []
    return [
        (f"## Also measured: the feature run's test split ({f['n']} files)" if after_crossval else
         f"## Measured on the held-out test split ({f['n']} files)"),
        f"Per file (window probabilities averaged): **UAR {f['uar']:.3f}**, accuracy {f['accuracy']:.3f}, "
        f"macro-F1 {f['macro_f1']:.3f}.", "",
        "| corpus | files | UAR | accuracy |", "|---|---|---|---|",
        *[f"| {c} | {s['n']} | {s['uar']:.3f} | {s['accuracy']:.3f} |" for c, s in f["per_corpus"].items()],
        "",
        f"Mean of the per-corpus UARs: {sum(s['uar'] for s in f['per_corpus'].values()) / len(f['per_corpus']):.3f}. "
        "Read the pooled figure with care: TESS (two speakers, split by word, so its test speakers were "
        "seen in training) is easy and scores near 1.0, and SAVEE's test speakers (split by sentence) "
        "were seen too, while CREMA-D, the largest and hardest corpus, and RAVDESS are the honest "
        "figures of how the model does on voices it never heard. The female/male gap below comes "
        "largely from TESS (female only) and SAVEE (male only).",
        "", "| gender | files | UAR | accuracy |", "|---|---|---|---|",
        *[f"| {g} | {s['n']} | {s['uar']:.3f} | {s['accuracy']:.3f} |" for g, s in f["per_gender"].items()],
        "", "Per-class recall: " + ", ".join(f"{c} {r:.2f}" for c, r in f["recall"].items()) + ".", "",
        "Full figures, confusion matrix included, are in metrics.json.",
    ]
