"""Which out-of-scope score a model uses, chosen on the validation splits only.

Candidates: the recipe's ``max_probability`` (1 - the highest calibrated class probability) and
``class_distance`` (``modelgate.models.class_distance``: the distance of the sentence embedding to
the nearest in-scope class centroid, fitted on the training embeddings, one candidate per
covariance shrinkage). ``auto`` keeps the candidate with the best validation OOD AUPRC; naming one
score fixes it. The report and the manifest name the score used and every candidate's validation
AUPRC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from sklearn.metrics import precision_recall_curve

from modelgate.evaluation.metrics import ood_auprc
from modelgate.models.class_distance import ClassDistance

MAX_PROBABILITY = "max_probability"
CLASS_DISTANCE = "class_distance"
OOD_SCORES = ("auto", MAX_PROBABILITY, CLASS_DISTANCE)


@dataclass
class OodScore:
    """One way of scoring out-of-scope; ``scorer`` is the fitted distance, None for max probability."""

    kind: str
    scorer: ClassDistance | None = None
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
) -> OodScore:
    """Fit the candidates that ``mode`` allows on ``train`` (embeddings, labels) and keep the best
    by OOD AUPRC on ``validation`` + ``oos_validation`` (embeddings, calibrated probabilities)."""
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
    rows = []
    for candidate in candidates:
        candidate.validation_auprc = _auprc(candidate.scores(*validation), candidate.scores(*oos_validation))
        rows.append({
            "ood_score": candidate.kind,
            "shrinkage": candidate.scorer.shrinkage if candidate.scorer else None,
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
