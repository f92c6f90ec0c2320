"""The model bundle: everything a predictor needs, in one folder.

    model.keras     Keras 3 model (normalisation statistics inside)
    labels.json     class names in output order, the label set, gender classes
    features.json   FeatureConfig, label set and train statistics of the shards it was trained on
    metrics.json    the evaluation report on the held-out test split
    MODEL_CARD.md   data, licences, split, recipe, measured figures

Nothing in the scorer or the app duplicates a constant from these files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ser_model import storage
from ser_model.features import FeatureConfig
from ser_model.vad import VadConfig
from ser_model.labels import LabelSet
from ser_model.records import GENDER_CLASSES

DEFAULT_BUNDLE = Path(__file__).resolve().parent / "bundled_model"
BUNDLE_ENV = "SER_MODEL"


@dataclass
class Bundle:
    path: Path | str         # a local folder, or the URL it was read from
    model: object            # keras.Model
    features: FeatureConfig
    label_set: LabelSet
    classes: tuple[str, ...]
    gender_classes: tuple[str, ...]
    stats: Mapping
    metrics: Mapping
    model_id: str
    temperature: float = 1.0   # calibration.json; 1.0 (no rescaling) for a bundle without one
    vad: VadConfig = VadConfig()   # voice activity for long recordings (older bundles: the defaults)

    @property
    def has_gender(self) -> bool:
        return bool(self.gender_classes)


def named_outputs(out) -> dict:
    """A model's predictions as ``{"emotion": ..., "gender": ...}`` (a one-output model gives a bare array)."""
    return out if isinstance(out, dict) else {"emotion": out}


def model_id_of(model_file: str | os.PathLike) -> str:
    digest = hashlib.sha256(storage.read_bytes(str(model_file))).hexdigest()[:12]
    return f"ser-{digest}"


def save_bundle(out_dir: str | os.PathLike, model, features: FeatureConfig, label_set: LabelSet, stats: Mapping,
                metrics: Mapping, model_card: str, calibration: Mapping | None = None) -> str:
    """Write a bundle atomically: built in a sibling temp folder, then renamed into place (a local
    folder); built locally and uploaded with ``model.keras`` last (a URL: readers look for it first)."""
    if storage.is_url(out_dir):
        with tempfile.TemporaryDirectory(prefix="ser-bundle-") as tmp:
            _write_bundle(Path(tmp) / "bundle", model, features, label_set, stats, metrics, model_card,
                          calibration)
            storage.publish_tree(str(Path(tmp) / "bundle"), str(out_dir), last="model.keras")
        return str(out_dir)
    return str(_write_bundle(Path(out_dir), model, features, label_set, stats, metrics, model_card, calibration))


def _write_bundle(out_dir: Path, model, features: FeatureConfig, label_set: LabelSet, stats: Mapping,
                  metrics: Mapping, model_card: str, calibration: Mapping | None) -> Path:
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out_dir.name + ".tmp-", dir=out_dir.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; a bundle is meant to be shared
    try:
        _inference_copy(model).save(tmp / "model.keras")
        outputs = list(model.output_names) if hasattr(model, "output_names") else ["emotion"]
        labels = {"classes": list(label_set.classes), "label_set": label_set.to_json(),
                  "gender_classes": list(GENDER_CLASSES) if "gender" in outputs else []}
        (tmp / "labels.json").write_text(json.dumps(labels, indent=1) + "\n")
        (tmp / "features.json").write_text(json.dumps(
            {"format": "ser-bundle-features/1", "features": features.to_json(),
             "label_set": label_set.to_json(), "stats": dict(stats),
             # Voice activity for long recordings (ser_model.vad); the scorer uses these settings.
             "vad": VadConfig().to_json()}, indent=1) + "\n")
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
        (tmp / "MODEL_CARD.md").write_text(model_card)
        if calibration:
            (tmp / "calibration.json").write_text(json.dumps(dict(calibration), indent=1) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _inference_copy(model):
    """The same network without optimizer state (Keras 3 saves it with a compiled model)."""
    import keras

    if getattr(model, "optimizer", None) is None:
        return model
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def resolve_bundle_path(path: str | os.PathLike | None = None) -> str:
    """An explicit path or URL, else $SER_MODEL, else the bundled default model."""
    chosen = str(path or os.environ.get(BUNDLE_ENV) or DEFAULT_BUNDLE)
    model = storage.join(chosen, "model.keras")
    if not storage.exists(model) or storage.isdir(model):
        raise FileNotFoundError(f"no model bundle at {chosen} (expected {model})")
    return chosen


def _read_json(folder: str, name: str) -> dict:
    return json.loads(storage.read_text(storage.join(folder, name)))


def vad_of(feats: Mapping) -> VadConfig:
    """The voice-activity settings in a bundle's features.json (bundles written before them: the defaults)."""
    return VadConfig(**(feats.get("vad") or {}))


def read_calibration(path: str | os.PathLike) -> dict:
    """A bundle's ``calibration.json`` (``{}`` without one), checked."""
    file = storage.join(str(path), "calibration.json")
    if not storage.exists(file):
        return {}
    calibration = json.loads(storage.read_text(file))
    if calibration.get("method") != "temperature" or not float(calibration.get("temperature", 0)) > 0:
        raise ValueError(f"{file}: expected a positive temperature (method: temperature)")
    if "group_temperature" in calibration and not float(calibration["group_temperature"]) > 0:
        raise ValueError(f"{file}: group_temperature must be positive")
    return calibration


def read_temperature(path: str | os.PathLike) -> float:
    """The emotion head's calibration temperature from ``calibration.json`` (1.0 without one)."""
    return float(read_calibration(path).get("temperature", 1.0))


def read_bundle_meta(path: str | os.PathLike | None = None) -> dict:
    """Classes, feature settings and model id of a bundle, without loading Keras."""
    path = resolve_bundle_path(path)
    labels, feats = _read_json(path, "labels.json"), _read_json(path, "features.json")
    calibration = read_calibration(path)   # read once: a bundle may be a URL
    FeatureConfig.from_dict(feats["features"])  # validate early
    return {"path": path, "classes": list(labels["classes"]),
            "gender_classes": list(labels.get("gender_classes", [])), "label_set": labels["label_set"],
            "features": feats["features"], "model_id": model_id_of(storage.join(path, "model.keras")),
            "temperature": float(calibration.get("temperature", 1.0)),
            # Speaker-normalised outputs' own temperature (ser_model.speaker_norm); None: not calibrated.
            "group_temperature": calibration.get("group_temperature"),
            "vad": vad_of(feats).to_json()}


def load_bundle(path: str | os.PathLike | None = None) -> Bundle:
    """The bundle at a local path or a URL (copied to this machine first: Keras reads local files)."""
    import keras

    source = resolve_bundle_path(path)
    with storage.local_copy(source) as local:
        local = Path(local)
        labels = json.loads((local / "labels.json").read_text())
        feats = json.loads((local / "features.json").read_text())
        metrics_file = local / "metrics.json"
        return Bundle(
            path=source if storage.is_url(source) else local,
            model=keras.models.load_model(local / "model.keras", compile=False),
            features=FeatureConfig.from_dict(feats["features"]),
            label_set=LabelSet.from_json(labels["label_set"]),
            classes=tuple(labels["classes"]),
            gender_classes=tuple(labels.get("gender_classes", [])),
            stats=feats["stats"],
            metrics=json.loads(metrics_file.read_text()) if metrics_file.exists() else {},
            model_id=model_id_of(local / "model.keras"),
            temperature=read_temperature(local),
            vad=vad_of(feats),
        )
