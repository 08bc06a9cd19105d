"""toxicity: SetFit's contrastive stage, run before the classification training of an encoder.

The classifier's encoder is first tuned as a siamese network on pairs of training comments
(``modelgate.training.contrastive_pairs``): the cosine of two comments' mean-pooled embeddings is
regressed (MSE) on 1 when their labels agree and 0 when they differ, which is SetFit's
CosineSimilarityLoss. The siamese model (``modelgate.models.siamese``, the job-similarity one, in
its cosine mode) wraps the classifier's own backbone object, so the LoRA factors it tunes are the
ones the classification training then starts from; the head is not touched. It is trained by the
job-similarity loop (``train_similarity``: MSE, Adam with gradient-norm clipping), without
validation data, so every configured epoch runs. Off unless ``train.contrastive.pairs_per_comment``
is set.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
from pydantic import Field, field_validator

from modelgate.config import Section
from modelgate.models.siamese import SentenceEncoder, SiameseSimilarity, pair_inputs
from modelgate.pipelines import toxicity_models as tm
from modelgate.training.contrastive_pairs import contrastive_pairs
from modelgate.training.similarity import SimilarityTrainSettings, train_similarity
from modelgate.training.trainer import EpochLog, TrainResult

HISTORY_KEY = "contrastive_loss"  # in the training history: the stage's loss per epoch


class ContrastiveConfig(Section):
    pairs_per_comment: int = Field(
        0, ge=0, description="pairs each training comment is in, half with a comment of its label "
                             "(target cosine 1), half with one of the other label (target 0); even; 0 = off")
    epochs: int = Field(1, ge=1, description="passes over the pairs")
    learning_rate: float = Field(1.0e-3, gt=0.0, description="Adam on the LoRA factors, gradient norm clipped at 1")
    batch_size: int = Field(16, ge=1, description="pairs per batch")
    length_bucketing: bool = Field(
        True, description="batches of pairs of similar lengths, each as wide as its longest comment")

    @field_validator("pairs_per_comment")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError("must be even: each round pairs every comment with one comment of its "
                             "label and one of the other")
        return value


class ContrastiveEpochLog(EpochLog):
    """One line per contrastive epoch: pairs, loss, seconds."""

    def __init__(self, epochs: int, pairs: int):
        super().__init__(epochs)
        self.pairs = pairs

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.started
        loss = float((logs or {}).get("loss", float("nan")))
        print(f"contrastive epoch {epoch + 1}/{self.epochs} ({seconds:.0f} s): {self.pairs} pairs, "
              f"loss={loss:.4f}", flush=True)


def check_family(settings: ContrastiveConfig, family: str) -> None:
    """Refuse the stage for a causal LM: it tunes a sentence encoder's pooled embeddings."""
    if settings.pairs_per_comment and family != tm.ENCODER:
        raise ValueError(
            f"train.contrastive.pairs_per_comment is {settings.pairs_per_comment}, but the model is a "
            f"{family}: the contrastive stage tunes encoders only; set it to 0"
        )


def tune_encoder(settings: ContrastiveConfig, model, x: dict[str, np.ndarray], y: np.ndarray,
                 seed: int) -> TrainResult | None:
    """Tune ``model``'s backbone (an ``EncoderClassifier``'s, in place) on pairs of the comments
    ``x`` with labels ``y``; None when the stage is off."""
    if not settings.pairs_per_comment:
        return None
    pairs = contrastive_pairs(y, settings.pairs_per_comment, seed)
    # Mean pooling, as the classifier pools: the embedding tuned is the one its head will read.
    encoder = SentenceEncoder(model.backbone, pooling="mean", name="contrastive_encoder")
    siamese = SiameseSimilarity(encoder, similarity="cosine", name="contrastive_siamese")
    sides = [{name: x[name][rows] for name in encoder.input_names} for rows in (pairs.left, pairs.right)]
    loop = SimilarityTrainSettings(epochs=settings.epochs, batch_size=settings.batch_size,
                                   learning_rate=settings.learning_rate, seed=seed,
                                   length_bucketing=settings.length_bucketing)
    return train_similarity(siamese, pair_inputs(*sides, encoder.input_names), pairs.targets, None, None, loop,
                            callbacks=[ContrastiveEpochLog(settings.epochs, len(pairs))])


def with_stage_history(result: TrainResult, stage: TrainResult | None) -> TrainResult:
    """The classification result, its history carrying the stage's per-epoch loss when it ran."""
    if stage is None:
        return result
    return dataclasses.replace(result, history={**result.history, HISTORY_KEY: list(stage.history["loss"])})
