"""Fine-tuning loop: seeded, resumable from S3 checkpoints, reports its device and throughput."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import keras
import numpy as np

from modelgate.models.gaussian_process import CovarianceResetCallback, gp_layers
from modelgate.training.batches import LengthBucketedBatches, has_padding_masks
from modelgate.training.distribution import DataPlan, training_distribution
from modelgate.training.optimizer import TrainSettings, build_optimizer

if TYPE_CHECKING:  # only a type here: the checkpointer (and its S3 client) is the caller's
    from modelgate.training.checkpoint import S3Checkpointer


@dataclass
class TrainResult:
    epochs_run: int  # epochs trained by this call (not counting resumed ones)
    resumed_from_epoch: int | None  # epochs already done in the checkpoint, None if fresh
    history: dict[str, list[float]]  # per-epoch metrics of the epochs this call ran
    seconds: float  # training time of those epochs (validation excluded)
    examples_per_second: float
    device: str
    backend: str = field(default_factory=lambda: keras.backend.backend())
    seed: int | None = None
    devices: int = 1  # devices each batch was split over (data-parallel training)


def describe_device() -> dict[str, str]:
    """{"backend": ..., "device": "GPU (name)" or "CPU"} as the active Keras backend sees it."""
    backend = keras.backend.backend()
    gpu_name = None
    # Only the active backend's package is imported (the others may not even be installed).
    if backend == "jax":
        import jax

        gpus = [d for d in jax.devices() if d.platform == "gpu"]
        gpu_name = gpus[0].device_kind if gpus else None
    elif backend == "torch":
        import torch

        gpu_name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    elif backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        gpu_name = gpus[0].name if gpus else None
    return {"backend": backend, "device": f"GPU ({gpu_name})" if gpu_name else "CPU"}


def set_seed(seed: int) -> None:
    """Seed Python, numpy and the backend. Call before building a model to fix its initial weights."""
    keras.utils.set_random_seed(int(seed))


# Validation computes no gradients, so it runs in bigger batches than training: fewer steps, and an
# SNGP head solves its D x D posterior precision once per batch (a 3000-row validation split in
# batches of 64 spent more time in those solves than the frozen-encoder head spent training).
VALIDATION_BATCH_SIZE = 256


class _TrainClock(keras.callbacks.Callback):
    """Time spent in training batches only: validation runs inside the epoch, after on_test_begin."""

    def __init__(self):
        super().__init__()
        self.seconds = 0.0
        self._started = None

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def _stop(self):
        if self._started is not None:
            self.seconds += time.perf_counter() - self._started
            self._started = None

    def on_test_begin(self, logs=None):
        self._stop()

    def on_epoch_end(self, epoch, logs=None):
        self._stop()


class EpochLog(keras.callbacks.Callback):
    """Prints one line per epoch (Prefect turns prints into run logs): progress people can follow."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs
        self.started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.started
        values = ", ".join(f"{k}={float(v):.4f}" for k, v in sorted((logs or {}).items()))
        print(f"epoch {epoch + 1}/{self.epochs} ({seconds:.0f} s): {values}", flush=True)


def compile_classifier(model, total_steps: int, cfg: TrainSettings) -> None:
    model.compile(
        optimizer=build_optimizer(total_steps, cfg),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )


def _num_examples(x) -> int:
    if isinstance(x, dict):
        lengths = {len(v) for v in x.values()}
        if len(lengths) != 1:
            raise ValueError(f"input arrays have different lengths: {sorted(lengths)}")
        return lengths.pop()
    return len(x)


def _take(x, index):
    return {k: v[index] for k, v in x.items()} if isinstance(x, dict) else x[index]


def epoch_fit_data(x, y: np.ndarray, order: np.ndarray, batch_size: int, length_bucketing: bool,
                   seed: tuple[int, ...]) -> dict:
    """``model.fit``'s data arguments for one epoch in ``order``: length-bucketed batches when asked
    and ``x`` is token arrays with padding masks (a frozen encoder's cached embeddings are not),
    else the arrays reordered."""
    if length_bucketing and has_padding_masks(x):
        return {"x": LengthBucketedBatches(x, y, order, batch_size, seed=seed).fit_input()}
    return {"x": _take(x, order), "y": y[order], "batch_size": batch_size}


def _checked_labels(x_train, y_train) -> tuple[int, np.ndarray]:
    """(number of examples, labels as an array), refusing mismatched or empty training data."""
    count = _num_examples(x_train)
    y_train = np.asarray(y_train)
    if len(y_train) != count:
        raise ValueError(f"x_train has {count} examples but y_train has {len(y_train)} labels")
    if count == 0:
        raise ValueError("x_train is empty: nothing to train on")
    return count, y_train


def _resume(model, checkpointer: S3Checkpointer | None, cfg: TrainSettings) -> tuple[int | None, int]:
    """(epochs found in the checkpoint or None, the epoch to start from), weights restored."""
    resumed = checkpointer.restore(model) if checkpointer is not None else None
    start_epoch = resumed or 0
    if start_epoch > cfg.epochs:
        raise ValueError(
            f"checkpoint at {checkpointer.prefix} has {start_epoch} epochs, more than the "
            f"{cfg.epochs} configured: the run key should differ when the config does"
        )
    return resumed, start_epoch


def _epoch_callbacks(model, clock: _TrainClock, callbacks: list | None,
                     checkpointer: S3Checkpointer | None) -> list:
    """The GP covariance reset first (SNGP heads), the clock, the caller's, the checkpointer last."""
    epoch_callbacks = [clock, *(callbacks or [])]
    if gp_layers(model):
        epoch_callbacks.insert(0, CovarianceResetCallback())
    if checkpointer is not None:
        epoch_callbacks.append(checkpointer)
    return epoch_callbacks


def _validation_share(x_val, y_val, plan: DataPlan):
    """(x, y) this process validates on (all of it on one device), or None without validation."""
    if x_val is None:
        return None
    y_val = np.asarray(y_val)
    if plan.devices == 1:
        return x_val, y_val
    rows = plan.validation_rows(len(y_val))
    return _take(x_val, rows), y_val[rows]


def _fit_epochs(model, x_train, y_train: np.ndarray, validation, cfg: TrainSettings, seed: int,
                start_epoch: int, epoch_callbacks: list, plan: DataPlan) -> dict[str, list[float]]:
    """Fit one epoch at a time from ``start_epoch``; returns the merged history."""
    count = len(y_train)
    batch_size = plan.local_batch_size(cfg.batch_size)
    history: dict[str, list[float]] = {}
    for epoch in range(start_epoch, cfg.epochs):
        # Order depends on (seed, epoch) only, so a resumed epoch sees the same batches.
        order = plan.epoch_rows(np.random.default_rng([seed, epoch]).permutation(count), cfg.batch_size)
        fitted = model.fit(
            **epoch_fit_data(x_train, y_train, order, batch_size, cfg.length_bucketing, (seed, epoch)),
            shuffle=False,
            validation_data=validation,
            validation_batch_size=plan.local_batch_size(max(cfg.batch_size, VALIDATION_BATCH_SIZE)),
            epochs=epoch + 1,
            initial_epoch=epoch,
            callbacks=epoch_callbacks,
            verbose=cfg.verbose,
        )
        for name, values in fitted.history.items():
            history.setdefault(name, []).extend(float(v) for v in values)
    return history


def train_classifier(
    model,
    x_train,
    y_train,
    x_val=None,
    y_val=None,
    cfg: TrainSettings | None = None,
    checkpointer: S3Checkpointer | None = None,
    seed: int | None = None,
    callbacks: list | None = None,
) -> TrainResult:
    """Fine-tune ``model`` on token arrays with sparse categorical cross-entropy from logits.

    Each epoch's data order comes from (seed, epoch), and the checkpoint carries weights, optimizer
    state and dropout generator states, so a run resumed from ``checkpointer`` continues exactly
    where the interrupted one stopped (``resumed_from_epoch`` = epochs found in the checkpoint).
    ``cfg.distribution`` may split every batch over several devices (``training.distribution``).
    """
    cfg = cfg or TrainSettings()
    seed = cfg.seed if seed is None else int(seed)
    set_seed(seed)
    count, y_train = _checked_labels(x_train, y_train)
    with training_distribution(cfg.distribution, model) as plan:
        plan.check(cfg.batch_size, cfg.length_bucketing)
        validation = _validation_share(x_val, y_val, plan)
        steps_per_epoch = math.ceil(plan.usable(count, cfg.batch_size) / cfg.batch_size)
        compile_classifier(model, steps_per_epoch * cfg.epochs, cfg)
        resumed, start_epoch = _resume(model, checkpointer, cfg)

        clock = _TrainClock()
        epoch_callbacks = _epoch_callbacks(model, clock, callbacks, checkpointer)
        history = _fit_epochs(model, x_train, y_train, validation, cfg, seed, start_epoch,
                              epoch_callbacks, plan)

    count = plan.usable(count, cfg.batch_size)
    epochs_run = cfg.epochs - start_epoch
    seconds = clock.seconds
    return TrainResult(
        epochs_run=epochs_run,
        resumed_from_epoch=resumed,
        history=history,
        seconds=seconds,
        examples_per_second=(count * epochs_run / seconds) if seconds > 0 else 0.0,
        device=describe_device()["device"],
        seed=seed,
        devices=plan.devices,
    )
