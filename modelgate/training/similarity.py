"""Fine-tuning a similarity regressor (the siamese encoder): MSE on targets in [0, 1], Adam with
gradient-norm clipping, early stopping on validation loss, TensorBoard logs, S3 checkpoints.

Like ``train_classifier`` it runs one ``fit`` per epoch with the epoch's order drawn from
(seed, epoch), so a run resumed from its checkpoint sees the same batches. Early stopping is done
here rather than by ``keras.callbacks.EarlyStopping`` because that callback forgets its state at
every ``fit``; the per-epoch validation losses are kept beside the checkpoints (``history.json``)
so a resumed run stops where an uninterrupted one would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np

from modelgate.training.distribution import DISTRIBUTIONS, DataPlan, training_distribution
from modelgate.training.trainer import (
    TrainResult,
    _num_examples,
    _TrainClock,
    _validation_share,
    describe_device,
    epoch_fit_data,
    set_seed,
)

if TYPE_CHECKING:  # only a type here: the checkpointer (and its S3 client) is the caller's
    from modelgate.training.checkpoint import S3Checkpointer

HISTORY_FILE = "history.json"


@dataclass
class SimilarityTrainSettings:
    """The siamese recipe: Adam lr 1e-5, clipnorm 1.0, MSE, early stopping patience 3 / 0.001."""

    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-5
    clipnorm: float | None = 1.0
    patience: int = 3
    min_delta: float = 0.001
    seed: int = 42
    verbose: int = 0
    distribution: str | None = None  # as TrainSettings.distribution
    length_bucketing: bool = False  # pairs of similar lengths per batch, cut to the longer text's width

    def __post_init__(self):
        if self.distribution is not None and self.distribution not in DISTRIBUTIONS:
            raise ValueError(
                f"invalid similarity training settings: distribution must be one of "
                f"{', '.join(DISTRIBUTIONS)}, got {self.distribution!r}"
            )
        if self.epochs < 1 or self.batch_size < 1 or not self.learning_rate > 0 or self.patience < 1:
            raise ValueError(
                f"invalid similarity training settings: epochs={self.epochs}, batch_size="
                f"{self.batch_size}, learning_rate={self.learning_rate}, patience={self.patience} "
                "(epochs, batch_size, patience >= 1 and learning_rate > 0)"
            )


@dataclass
class EarlyStop:
    """Keras EarlyStopping's rule on val_loss (mode min), replayable from the loss history."""

    patience: int
    min_delta: float

    def should_stop(self, losses: list[float]) -> bool:
        best, wait = math.inf, 0
        for loss in losses:
            if loss < best - self.min_delta:
                best, wait = loss, 0
            else:
                wait += 1
                if wait >= self.patience:
                    return True
        return False


def compile_regressor(model, settings: SimilarityTrainSettings) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=settings.learning_rate, clipnorm=settings.clipnorm),
        loss=keras.losses.MeanSquaredError(),
        metrics=[keras.metrics.MeanAbsoluteError(name="mae")],
    )


def _tensorboard(log_dir: Path | None) -> list:
    """A TensorBoard callback when a log dir is given and TensorFlow (its writer) is installed."""
    if log_dir is None:
        return []
    try:  # imported here: TensorFlow and TensorBoard are optional (the writer only), not needed to train
        import tensorboard  # noqa: F401
        import tensorflow  # noqa: F401
    except ImportError:
        print("tensorflow/tensorboard are not installed: no TensorBoard logs for this run", flush=True)
        return []
    return [keras.callbacks.TensorBoard(log_dir=str(log_dir), write_graph=False, update_freq="epoch")]


def _resumed_losses(checkpointer: S3Checkpointer | None, resumed: int | None) -> list[float]:
    """The validation losses of the epochs a resumed run has already done (for early stopping)."""
    if not resumed or checkpointer is None:
        return []
    recorded = checkpointer.read_json(HISTORY_FILE)
    return list(recorded["val_loss"])[:resumed] if recorded else []


def _fit_until_stopped(model, x_train, y_train: np.ndarray, validation, settings: SimilarityTrainSettings,
                       plan: DataPlan, start: int, losses: list[float], epoch_callbacks: list,
                       checkpointer: S3Checkpointer | None) -> tuple[int, dict[str, list[float]]]:
    """One fit per epoch from ``start`` until the epochs run out or early stopping; returns
    (the epoch reached, the merged history)."""
    rule = EarlyStop(settings.patience, settings.min_delta)
    history: dict[str, list[float]] = {}
    epoch = start
    while epoch < settings.epochs and not rule.should_stop(losses):
        order = np.random.default_rng([settings.seed, epoch]).permutation(len(y_train))
        order = plan.epoch_rows(order, settings.batch_size)
        data = epoch_fit_data(x_train, y_train, order, plan.local_batch_size(settings.batch_size),
                              settings.length_bucketing, (settings.seed, epoch))
        fitted = model.fit(
            **data, validation_data=validation, epochs=epoch + 1, initial_epoch=epoch,
            shuffle=False, callbacks=epoch_callbacks, verbose=settings.verbose,
        )
        for name, values in fitted.history.items():
            history.setdefault(name, []).extend(float(v) for v in values)
        if validation is not None:  # without validation data every epoch runs
            losses.append(float(fitted.history["val_loss"][-1]))
            if checkpointer is not None:
                checkpointer.write_json(HISTORY_FILE, {"val_loss": losses})
        epoch += 1
    history["stopped_early"] = [1.0 if rule.should_stop(losses) else 0.0]
    return epoch, history


def train_similarity(
    model,
    x_train,
    y_train,
    x_val,
    y_val,
    settings: SimilarityTrainSettings,
    checkpointer: S3Checkpointer | None = None,
    log_dir: Path | None = None,
    callbacks: list | None = None,
) -> TrainResult:
    """Fit ``model`` (token-array dict -> similarity) to targets; stop early on validation loss
    (with ``x_val`` None, every epoch runs). ``settings.distribution`` may split every batch over
    several devices (``training.distribution``)."""
    set_seed(settings.seed)
    count = _num_examples(x_train)
    y_train = np.asarray(y_train, dtype="float32")
    if count == 0:
        raise ValueError("x_train is empty: nothing to train on")
    if len(y_train) != count:
        raise ValueError(f"x_train has {count} pairs but y_train has {len(y_train)} targets")
    with training_distribution(settings.distribution, model) as plan:
        plan.check(settings.batch_size, settings.length_bucketing)
        compile_regressor(model, settings)
        resumed = checkpointer.restore(model) if checkpointer is not None else None
        losses = _resumed_losses(checkpointer, resumed)
        clock = _TrainClock()
        epoch_callbacks = [clock, *_tensorboard(log_dir), *(callbacks or [])]
        if checkpointer is not None:
            epoch_callbacks.append(checkpointer)
        validation = _validation_share(x_val, np.asarray(y_val, dtype="float32"), plan)
        start = resumed or 0
        epoch, history = _fit_until_stopped(model, x_train, y_train, validation, settings, plan, start,
                                            losses, epoch_callbacks, checkpointer)
    epochs_run = epoch - start
    trained = plan.usable(count, settings.batch_size) * epochs_run
    return TrainResult(
        epochs_run=epochs_run,
        resumed_from_epoch=resumed,
        history=history,
        seconds=clock.seconds,
        examples_per_second=(trained / clock.seconds) if clock.seconds > 0 else 0.0,
        device=describe_device()["device"],
        seed=settings.seed,
        devices=plan.devices,
    )
