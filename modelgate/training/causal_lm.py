"""Tuning a causal LM on prompt texts: next-token cross-entropy on the completion (or every token).

The prompt format and label-token scoring live with the model (``modelgate.models.causal_lm``);
this is the loop that tunes it, beside the classifier's and the siamese encoder's loops. It returns
the classifier loop's ``TrainResult``, so a pipeline records either the same way.
"""

from __future__ import annotations

import math
import time

import keras
import numpy as np

from modelgate.training.distribution import training_distribution
from modelgate.training.optimizer import TrainSettings, build_optimizer
from modelgate.training.trainer import TrainResult, describe_device, set_seed

LOSS_ON = ("completion", "all")


def _inputs_targets_weights(arrays: dict[str, np.ndarray], loss_on: str):
    """Inputs are every position but the last, targets every position but the first; the weights
    count the completion (label + end token) or every non-padding token."""
    ids, mask = arrays["token_ids"], arrays["padding_mask"]
    x = {"token_ids": ids[:, :-1], "padding_mask": mask[:, :-1]}
    counted = arrays["completion_mask"] if loss_on == "completion" else mask
    return x, ids[:, 1:], counted[:, 1:].astype("float32")


def fit_causal_lm(
    model, arrays: dict[str, np.ndarray], settings: TrainSettings, callbacks=(), loss_on: str = "completion"
) -> TrainResult:
    """Tune ``model`` on training texts (``encode_prompts`` with labels): next-token cross-entropy,
    AdamW with warmup and linear decay (``TrainSettings``).

    ``loss_on="completion"`` counts only the label and end tokens: every gradient step then goes
    to answering, not to re-learning the fixed instructions. ``"all"`` counts every non-padding
    token, as plain causal-LM fine-tuning on the training texts does. There are no checkpoints
    (``resumed_from_epoch`` is always None): Keras merges LoRA factors into the kernels when it
    saves weights, so a checkpoint could not restore them.
    """
    if loss_on not in LOSS_ON:
        raise ValueError(f"loss_on must be one of {LOSS_ON}, got {loss_on!r}")
    set_seed(settings.seed)
    count = len(arrays["token_ids"])
    if count == 0:
        raise ValueError("no training texts: nothing to train on")
    x, y, weights = _inputs_targets_weights(arrays, loss_on)
    history: dict[str, list[float]] = {}
    with training_distribution(settings.distribution, model) as plan:
        plan.check(settings.batch_size)
        count = plan.usable(count, settings.batch_size)
        model.compile(
            optimizer=build_optimizer(math.ceil(count / settings.batch_size) * settings.epochs, settings),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="token_accuracy")],
        )
        started = time.perf_counter()
        for epoch in range(settings.epochs):
            # Order depends on (seed, epoch) only, as in the classifier's loop.
            order = np.random.default_rng([settings.seed, epoch]).permutation(len(y))
            order = plan.epoch_rows(order, settings.batch_size)
            fitted = model.fit(
                {k: v[order] for k, v in x.items()}, y[order], sample_weight=weights[order],
                batch_size=plan.local_batch_size(settings.batch_size), epochs=epoch + 1,
                initial_epoch=epoch, shuffle=False, callbacks=list(callbacks), verbose=settings.verbose,
            )
            for name, values in fitted.history.items():
                history.setdefault(name, []).extend(float(v) for v in values)
        seconds = time.perf_counter() - started
    device = describe_device()
    return TrainResult(
        epochs_run=settings.epochs,
        resumed_from_epoch=None,
        history=history,
        seconds=seconds,
        examples_per_second=count * settings.epochs / seconds if seconds else 0.0,
        device=device["device"],
        backend=device["backend"],
        seed=settings.seed,
        devices=plan.devices,
    )
