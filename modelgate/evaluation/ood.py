"""Which out-of-scope score a model uses, chosen on the validation splits only.

Candidates: the recipe's ``max_probability`` (1 - the highest calibrated class probability),
``class_distance`` (``modelgate.models.class_distance``: the distance of the sentence embedding to
the nearest in-scope class centroid, fitted on the training embeddings, one candidate per
covariance shrinkage) and ``nearest_neighbor`` (``modelgate.models.nearest_neighbor``: the cosine
distance to the k nearest training embeddings, one candidate per k). ``auto`` keeps the candidate
with the best validation OOD AUPRC; naming one score fixes it. The report and the manifest name the
score used and every candidate's validation AUPRC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from sklearn.metrics import precision_recall_curve

from modelgate.evaluation.metrics import ood_auprc
from modelgate.models.class_distance import ClassDistance
from modelgate.models.nearest_neighbor import NearestNeighborDistance

MAX_PROBABILITY = "max_probability"
CLASS_DISTANCE = "class_distance"
NEAREST_NEIGHBOR = "nearest_neighbor"
OOD_SCORES = ("auto", MAX_PROBABILITY, CLASS_DISTANCE, NEAREST_NEIGHBOR)
SCORERS = {CLASS_DISTANCE: ClassDistance, NEAREST_NEIGHBOR: NearestNeighborDistance}


@dataclass
class OodScore:
    """One way of scoring out-of-scope; ``scorer`` is the fitted distance, None for max probability."""

    kind: str
    scorer: ClassDistance | NearestNeighborDistance | None = None
    validation_auprc: float | None = None
    candidates: list[dict[str, Any]] = field(default_factory=list)  # every candidate, on validation

    def scores(self, embeddings: np.ndarray, probs: np.ndarray) -> np.ndarray:
        """Higher = more likely out of scope."""
        if self.scorer is None:
            return 1.0 - np.asarray(probs).max(axis=1)
        return self.scorer.score(embeddings)

    def describe(self) -> str:
        if self.scorer is None:
            return "max_probability: 1 - the highest calibrated class probability"
        config = self.scorer.get_config()
        if self.kind == NEAREST_NEIGHBOR:
            return (f"nearest_neighbor: 1 - the mean cosine of the pooled embedding to its {config['k']} "
                    f"nearest training embeddings")
        space = "L2-normalised pooled embedding" if config["normalize"] else "pooled embedding"
        return (
            f"class_distance: squared distance of the {space} to the nearest class centroid, "
            f"shared covariance shrunk {config['shrinkage']:g} towards the identity"
        )

    def inference(self) -> dict[str, Any]:
        """What ``inference.json`` records for a predictor."""
        return {"ood_score": self.kind, **({"ood_scorer": self.scorer.get_config()} if self.scorer else {})}


def _auprc(in_scope: np.ndarray, out_of_scope: np.ndarray) -> float:
    is_ood = np.r_[np.zeros(len(in_scope), dtype=np.int64), np.ones(len(out_of_scope), dtype=np.int64)]
    return float(ood_auprc(is_ood, np.r_[in_scope, out_of_scope]))


def select_ood_score(
    mode: str,
    shrinkages: Sequence[float],
    normalize: bool,
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    oos_validation: tuple[np.ndarray, np.ndarray],
    neighbors: Sequence[int] = (),
) -> OodScore:
    """Fit the candidates that ``mode`` allows on ``train`` (embeddings, labels) and keep the best
    by OOD AUPRC on ``validation`` + ``oos_validation`` (embeddings, calibrated probabilities).
    ``shrinkages`` and ``neighbors`` give one class-distance / nearest-neighbour candidate each."""
    if mode not in OOD_SCORES:
        raise ValueError(f"ood_score must be one of {OOD_SCORES}, got {mode!r}")
    candidates: list[OodScore] = []
    if mode in ("auto", MAX_PROBABILITY):
        candidates.append(OodScore(MAX_PROBABILITY))
    if mode in ("auto", CLASS_DISTANCE):
        if not shrinkages:
            raise ValueError("class_distance needs at least one shrinkage to try")
        candidates += [
            OodScore(CLASS_DISTANCE, ClassDistance.fit(*train, shrinkage=s, normalize=normalize))
            for s in shrinkages
        ]
    if mode == NEAREST_NEIGHBOR and not neighbors:
        raise ValueError("nearest_neighbor needs at least one k (neighbours averaged) to try")
    if mode in ("auto", NEAREST_NEIGHBOR):
        candidates += [OodScore(NEAREST_NEIGHBOR, NearestNeighborDistance.fit(train[0], k)) for k in neighbors]
    rows = []
    for candidate in candidates:
        candidate.validation_auprc = _auprc(candidate.scores(*validation), candidate.scores(*oos_validation))
        rows.append({
            "ood_score": candidate.kind,
            "shrinkage": candidate.scorer.shrinkage if candidate.kind == CLASS_DISTANCE else None,
            "k": candidate.scorer.k if candidate.kind == NEAREST_NEIGHBOR else None,
            "validation_ood_auprc": round(candidate.validation_auprc, 4),
        })
    best = max(candidates, key=lambda c: c.validation_auprc)
    best.candidates = rows
    return best


def ood_threshold_from_validation(in_scope: np.ndarray, out_of_scope: np.ndarray) -> float:
    """The score above which a query is flagged out of scope: the one that maximises OOS F1 on
    the validation splits."""
    scores = np.concatenate([in_scope, out_of_scope])
    is_ood = np.concatenate([np.zeros(len(in_scope)), np.ones(len(out_of_scope))])
    precision, recall, thresholds = precision_recall_curve(is_ood, scores)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[int(np.argmax(f1[:-1]))])
