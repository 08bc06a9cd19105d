"""Per-epoch checkpoints in object storage, so a crashed or killed training run resumes.

Layout under ``prefix`` (the caller derives it from config + data hashes)::

    prefix/epoch-0001/checkpoint.weights.h5   model weights AND optimizer state (Adam moments,
                                              iteration count, so the LR schedule continues)
    prefix/epoch-0001/rng.npz                 random-generator states (dropout continues exactly)
    prefix/epoch-0001/state.json              {"epoch": 1, "logs": ..., "files": {name: sha256}}
    prefix/latest.json                        {"epoch": 1, "path": "prefix/epoch-0001"}

``latest.json`` is written last: a crash during an upload leaves the previous pointer (and so the
previous complete checkpoint) in place.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import keras
import numpy as np

from modelgate.storage import NotFound, ObjectStore, StorageError, sha256_file
from modelgate.training.distribution import process_index

WEIGHTS_FILE = "checkpoint.weights.h5"
RNG_FILE = "rng.npz"
STATE_FILE = "state.json"
LATEST_FILE = "latest.json"


def _seed_states(model) -> list:
    """The state variables of every random-seed generator (dropout masks) in the model."""
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


class S3Checkpointer(keras.callbacks.Callback):
    """Keras callback: save a complete checkpoint at the end of every epoch; restore the latest.

    Args:
        store: the ObjectStore to write to.
        prefix: key prefix of this run, e.g. ``runs/intent-ood/<hash>/checkpoints``.
        keep_last: how many epoch checkpoints to keep (older ones are deleted after the pointer
            moved); None keeps all.
    """

    def __init__(self, store: ObjectStore, prefix: str, keep_last: int | None = 2):
        super().__init__()
        prefix = prefix.strip("/")
        if not prefix:
            raise ValueError("S3Checkpointer needs a non-empty key prefix")
        if keep_last is not None and keep_last < 1:
            raise ValueError(f"S3Checkpointer: keep_last must be >= 1 or None, got {keep_last}")
        self.store = store
        self.prefix = prefix
        self.keep_last = keep_last

    def epoch_prefix(self, epoch: int) -> str:
        return f"{self.prefix}/epoch-{epoch:04d}"

    @property
    def latest_key(self) -> str:
        return f"{self.prefix}/{LATEST_FILE}"

    # -- saving --------------------------------------------------------------------------------
    def on_epoch_end(self, epoch, logs=None):
        # In a multi-host run every process holds the same replicated state: process 0 writes it.
        if process_index() == 0:
            self.save(self.model, epochs_done=epoch + 1, logs=logs)

    def save(self, model, epochs_done: int, logs=None) -> str:
        """Upload a checkpoint of ``model`` after ``epochs_done`` epochs; returns its key prefix."""
        target = self.epoch_prefix(epochs_done)
        with tempfile.TemporaryDirectory(prefix="modelgate-ckpt-") as tmp:
            tmp = Path(tmp)
            model.save_weights(tmp / WEIGHTS_FILE)
            seeds = _seed_states(model)
            np.savez(tmp / RNG_FILE, **{f"{i:04d}": np.asarray(v.numpy()) for i, v in enumerate(seeds)})
            files = {}
            for name in (WEIGHTS_FILE, RNG_FILE):
                files[name] = self.store.upload_file(tmp / name, f"{target}/{name}")
        optimizer = getattr(model, "optimizer", None)
        state = {
            "epoch": int(epochs_done),
            "optimizer_iterations": int(optimizer.iterations.numpy()) if optimizer is not None else None,
            "logs": {k: float(v) for k, v in (logs or {}).items() if np.ndim(v) == 0},
            "seed_state_paths": [v.path for v in seeds],
            "files": files,
            "saved_at": time.time(),
        }
        self.store.put_json(f"{target}/{STATE_FILE}", state)
        # Last: the pointer moves only once everything it points at is complete.
        self.store.put_json(self.latest_key, {"epoch": int(epochs_done), "path": target})
        self._prune(epochs_done)
        return target

    def _prune(self, epochs_done: int) -> None:
        if self.keep_last is None:
            return
        for epoch in range(1, epochs_done - self.keep_last + 1):
            self.store.delete_prefix(self.epoch_prefix(epoch) + "/")

    # -- run files beside the checkpoints (e.g. the loss history early stopping replays) ----------
    def write_json(self, name: str, value) -> None:
        if process_index() == 0:  # one writer in a multi-host run
            self.store.put_json(f"{self.prefix}/{name}", value)

    def read_json(self, name: str):
        """The JSON file ``name`` beside the checkpoints, or None when there is none."""
        try:
            return self.store.get_json(f"{self.prefix}/{name}")
        except NotFound:
            return None

    # -- restoring -----------------------------------------------------------------------------
    def latest(self) -> dict | None:
        """The latest pointer ({"epoch", "path"}) or None when this run has no checkpoint."""
        try:
            return self.store.get_json(self.latest_key)
        except NotFound:
            return None

    def restore(self, model) -> int | None:
        """Load the latest checkpoint into a compiled model; returns the epochs already done.

        Returns None when there is no checkpoint. The optimizer is built first, so its slots
        (moments, iteration count) are restored too, not silently skipped.
        """
        pointer = self.latest()
        if pointer is None:
            return None
        path = pointer["path"]
        state = self.store.get_json(f"{path}/{STATE_FILE}")
        optimizer = getattr(model, "optimizer", None)
        if optimizer is None:
            raise ValueError(f"restore from {self.store.uri(path)} needs a compiled model (no optimizer)")
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        with tempfile.TemporaryDirectory(prefix="modelgate-ckpt-") as tmp:
            tmp = Path(tmp)
            for name, expected in state["files"].items():
                local = self.store.download_file(f"{path}/{name}", tmp / name)
                actual = sha256_file(local)
                if actual != expected:
                    raise StorageError(
                        f"checkpoint file {self.store.uri(f'{path}/{name}')} is corrupted: "
                        f"sha256 {actual} != recorded {expected}"
                    )
            model.load_weights(tmp / WEIGHTS_FILE)
            seeds = _seed_states(model)
            with np.load(tmp / RNG_FILE, allow_pickle=False) as archive:
                if len(archive.files) != len(seeds):
                    raise ValueError(
                        f"checkpoint {self.store.uri(path)} holds {len(archive.files)} random-seed "
                        f"states but the model has {len(seeds)}: it belongs to a different model"
                    )
                for index, variable in enumerate(seeds):
                    variable.assign(archive[f"{index:04d}"])
        restored = int(optimizer.iterations.numpy())
        recorded = state.get("optimizer_iterations")
        if recorded is not None and restored != recorded:
            raise ValueError(
                f"checkpoint {self.store.uri(path)} recorded {recorded} optimizer steps but "
                f"{restored} were restored: the optimizer state did not load"
            )
        return int(state["epoch"])

