"""Training callbacks: validation UAR with early stopping, and resumable state."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import keras

from ser_model.evaluate import aggregate_files, predict_dataset, scores


class ResumableState(keras.callbacks.Callback):
    """Saves model + optimizer + progress every ``every_steps`` and at each epoch end.

    Run the same `ser train` command again after an interruption: training
    resumes at the epoch it was in (from that epoch's first step, with the
    weights and optimizer state of the last save). Files are replaced
    atomically, so a kill during a save leaves the previous state usable.
    """

    def __init__(self, directory: Path, every_steps: int):
        super().__init__()
        self.dir = Path(directory)
        self.every_steps = max(1, int(every_steps))
        self.epoch, self.best, self.best_epoch, self.wait = 0, -1.0, -1, 0
        self._current_epoch = 0
        self._steps = 0

    # --- persistence -------------------------------------------------------
    def load_model(self):
        """The saved model (compiled, optimizer state included), or None to start fresh."""
        meta = self.dir / "state.json"
        if not (meta.exists() and (self.dir / "model.keras").exists()):
            return None
        state = json.loads(meta.read_text())
        self.epoch, self.best = state["epoch"], state["best"]
        self.best_epoch, self.wait = state["best_epoch"], state["wait"]
        return keras.models.load_model(self.dir / "model.keras")

    def save(self, epoch: int) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / "model.tmp.keras"
        self.model.save(tmp)
        os.replace(tmp, self.dir / "model.keras")
        state = {"epoch": epoch, "best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}
        (self.dir / "state.tmp.json").write_text(json.dumps(state))
        os.replace(self.dir / "state.tmp.json", self.dir / "state.json")

    def clear(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- Keras hooks -------------------------------------------------------
    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._steps += 1
        if self._steps % self.every_steps == 0:
            self.save(self._current_epoch)

    def on_epoch_end(self, epoch, logs=None):
        self.save(epoch + 1)


class ValidationUAR(keras.callbacks.Callback):
    """Per-file UAR on the validation split after every epoch (``val_uar`` in the logs).

    Keeps the best model in ``best_path`` and stops after ``patience`` epochs
    without improvement; the counters live in the :class:`ResumableState`.
    """

    def __init__(self, val_ds, classes, patience: int, best_path: Path, state: ResumableState,
                 early_stopping: bool = True):
        super().__init__()
        self.val_ds, self.classes, self.patience = val_ds, tuple(classes), patience
        self.best_path, self.state, self.early_stopping = Path(best_path), state, early_stopping
        self.epochs_seen = 0

    def on_epoch_end(self, epoch, logs=None):
        probs, _, meta = predict_dataset(self.model, self.val_ds)
        file_probs, file_meta = aggregate_files(probs, meta)
        uar = scores(file_meta["label_id"], file_probs.argmax(1), self.classes)["uar"]
        self.epochs_seen += 1
        if logs is not None:
            logs["val_uar"] = uar
        improved = uar > self.state.best
        if improved:
            self.state.best, self.state.best_epoch, self.state.wait = uar, epoch, 0
        else:
            self.state.wait += 1
        # Refitting on train+val has no held-out validation to select on: keep the last epoch.
        if improved or not self.early_stopping:
            self.model.save(self.best_path)
        print(f"epoch {epoch + 1}: validation UAR {uar:.3f} (best {self.state.best:.3f} at epoch "
              f"{self.state.best_epoch + 1})", flush=True)
        if self.early_stopping and self.state.wait >= self.patience:
            print(f"early stopping: no better validation UAR for {self.patience} epochs", flush=True)
            self.model.stop_training = True
