"""Percentile-bootstrap confidence intervals and the metric bundles the pipelines report.

Rows are resampled jointly (every array is indexed by the same resample), optionally within strata
so each resample keeps the strata sizes: OOD metrics stratify by in-domain vs out-of-scope so every
resample holds both classes. Evaluators reduce (N, C) probabilities to per-row scalars before
resampling, so one resample costs a few 1-D gathers, not a copy of the probability matrix.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator, NamedTuple

import numpy as np

from modelgate.evaluation import metrics as m

DEFAULT_RESAMPLES = 1000
DEFAULT_CONFIDENCE = 0.95


class Interval(NamedTuple):
    low: float
    high: float


def resample_indices(
    n: int, n_resamples: int, seed: int = 0, stratify=None
) -> Iterator[np.ndarray]:
    """Yield ``n_resamples`` arrays of n row indices drawn with replacement, within strata if given.

    One resample at a time keeps memory at O(n) however many rows and resamples there are.
    """
    if n < 1:
        raise ValueError("cannot bootstrap zero rows")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    rng = np.random.default_rng(seed)
    if stratify is None:
        strata = [np.arange(n)]
    else:
        groups = np.asarray(stratify)
        if groups.shape != (n,):
            raise ValueError(
                f"stratify must have one entry per row ({n}), got shape {groups.shape}"
            )
        strata = [np.flatnonzero(groups == value) for value in np.unique(groups)]
    for _ in range(n_resamples):
        yield np.concatenate([rows[rng.integers(0, len(rows), size=len(rows))] for rows in strata])


def resample_counts(
    n: int, n_resamples: int, seed: int = 0, stratify=None, block: int = 128
) -> Iterator[np.ndarray]:
    """The resamples of resample_indices as (<=block, n) row-multiplicity matrices."""
    rows: list[np.ndarray] = []
    for indices in resample_indices(n, n_resamples, seed, stratify):
        rows.append(np.bincount(indices, minlength=n))
        if len(rows) == block:
            yield np.stack(rows)
            rows = []
    if rows:
        yield np.stack(rows)


def bootstrap_distribution(
    metric_fn: Callable[..., float],
    *arrays,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    stratify=None,
) -> np.ndarray:
    """The metric on each of ``n_resamples`` row resamples of ``arrays`` (shape (n_resamples,))."""
    if not arrays:
        raise ValueError("bootstrap needs at least one array to resample")
    arrays = tuple(np.asarray(a) for a in arrays)
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"arrays to resample differ in length: {[len(a) for a in arrays]}")
    indices = resample_indices(n, n_resamples, seed, stratify)
    out = np.empty(n_resamples, dtype=np.float64)
    for i, rows in enumerate(indices):
        out[i] = metric_fn(*(a[rows] for a in arrays))
    return out


def percentile_interval(distribution, confidence: float = DEFAULT_CONFIDENCE) -> Interval:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    values = np.asarray(distribution, dtype=np.float64)
    finite = values[np.isfinite(values)]
    # A metric undefined on most resamples (e.g. one class drawn) has no meaningful interval.
    if finite.size < 0.5 * values.size or finite.size == 0:
        raise ValueError(
            f"metric was undefined on {values.size - finite.size} of {values.size} resamples; "
            "stratify the bootstrap so every resample holds every class"
        )
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return Interval(float(low), float(high))


def bootstrap_interval(
    metric_fn: Callable[..., float],
    *arrays,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
    stratify=None,
) -> Interval:
    """Percentile-bootstrap interval of ``metric_fn(*arrays)``, resampling rows jointly."""
    distribution = bootstrap_distribution(
        metric_fn, *arrays, n_resamples=n_resamples, seed=seed, stratify=stratify
    )
    return percentile_interval(distribution, confidence)


@dataclass(frozen=True)
class MetricValue:
    """One reported metric: point estimate, bootstrap interval (None if not computed), rows used."""

    name: str
    value: float
    low: float | None = None
    high: float | None = None
    n: int = 0
    higher_is_better: bool = True

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    def to_dict(self) -> dict[str, Any]:
        # NaN is not JSON; it becomes null and comes back as NaN.
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in asdict(self).items()
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MetricValue":
        missing = {"name", "value"} - set(data)
        if missing:
            raise ValueError(f"metric entry {data!r} lacks {sorted(missing)}")
        value = data["value"]
        return cls(
            name=str(data["name"]),
            value=float("nan") if value is None else float(value),
            low=None if data.get("low") is None else float(data["low"]),
            high=None if data.get("high") is None else float(data["high"]),
            n=int(data.get("n", 0)),
            higher_is_better=bool(data.get("higher_is_better", True)),
        )


def metrics_to_dict(values: dict[str, MetricValue]) -> dict[str, dict[str, Any]]:
    return {name: value.to_dict() for name, value in values.items()}


def metrics_from_dict(data: dict[str, dict[str, Any]]) -> dict[str, MetricValue]:
    return {name: MetricValue.from_dict({"name": name, **entry}) for name, entry in data.items()}


def metric_value(
    name: str,
    metric_fn: Callable[..., float],
    *arrays,
    higher_is_better: bool = True,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
    stratify=None,
) -> MetricValue:
    """Point estimate on all rows plus its bootstrap interval (none when ``n_resamples=0``)."""
    value = float(metric_fn(*arrays))
    low = high = None
    if n_resamples > 0:
        low, high = bootstrap_interval(
            metric_fn, *arrays, n_resamples=n_resamples, confidence=confidence, seed=seed,
            stratify=stratify,
        )
    return MetricValue(name, value, low, high, len(arrays[0]), higher_is_better)


# -- metric bundles of the pipelines ---------------------------------------------------------
def _interval_value(
    name: str, value: float, distribution: np.ndarray | None, n: int, confidence: float,
    higher_is_better: bool = True,
) -> MetricValue:
    low = high = None
    if distribution is not None:
        low, high = percentile_interval(distribution, confidence)
    return MetricValue(name, float(value), low, high, n, higher_is_better)


def evaluate_ood_classifier(
    probs_in,
    labels_in,
    probs_ood,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
    n_bins: int = m.DEFAULT_ECE_BINS,
    ood_scores: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, MetricValue]:
    """accuracy and ECE on the in-domain rows; OOD AUPRC/AUROC/AP on in-domain + out-of-scope.

    The OOD score is 1 - max probability unless ``ood_scores`` gives (in-domain, out-of-scope)
    scores of another kind (higher = more out of scope).

    The OOD resamples are stratified (in-domain and out-of-scope rows drawn separately), so each
    holds both classes. Every resample's metrics come from one weighted pass (see
    metrics.weighted_ranking_metrics); the values equal bootstrap_distribution with the same seed.
    """
    confidences, correct = m.confidence_and_correct(probs_in, labels_in)
    is_ood, scores = m.ood_labels_and_scores(probs_in, probs_ood)
    if ood_scores is not None:
        scores_in, scores_ood = (np.asarray(s, dtype=np.float64) for s in ood_scores)
        if (len(scores_in), len(scores_ood)) != (len(probs_in), len(probs_ood)):
            raise ValueError("ood_scores must have one score per in-domain and per out-of-scope row")
        scores = np.r_[scores_in, scores_ood]
    n_in, n_all = len(correct), len(is_ood)
    in_domain: dict[str, list[np.ndarray]] = {"accuracy": [], "ece": []}
    ranking: dict[str, list[np.ndarray]] = {"auprc": [], "roc_auc": [], "average_precision": []}
    if n_resamples > 0:
        for counts in resample_counts(n_in, n_resamples, seed):
            in_domain["accuracy"].append(counts @ correct / n_in)
            in_domain["ece"].append(m.weighted_ece(confidences, correct, counts, n_bins))
        for counts in resample_counts(n_all, n_resamples, seed, stratify=is_ood):
            for key, values in m.weighted_ranking_metrics(is_ood, scores, counts).items():
                ranking[key].append(values)

    def dist(parts: list[np.ndarray]) -> np.ndarray | None:
        return np.concatenate(parts) if parts else None

    return {
        "accuracy": _interval_value(
            "accuracy", correct.mean(), dist(in_domain["accuracy"]), n_in, confidence
        ),
        "ece": _interval_value(
            "ece", m.ece_from_confidence(confidences, correct, n_bins), dist(in_domain["ece"]),
            n_in, confidence, higher_is_better=False,
        ),
        "ood_auprc": _interval_value(
            "ood_auprc", m.ood_auprc(is_ood, scores), dist(ranking["auprc"]), n_all, confidence
        ),
        "ood_auroc": _interval_value(
            "ood_auroc", m.ood_auroc(is_ood, scores), dist(ranking["roc_auc"]), n_all, confidence
        ),
        "ood_average_precision": _interval_value(
            "ood_average_precision", m.ood_average_precision(is_ood, scores),
            dist(ranking["average_precision"]), n_all, confidence,
        ),
    }


def evaluate_binary_classifier(
    y_true,
    positive_probs,
    threshold: float = 0.5,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> dict[str, MetricValue]:
    """F1 (positive class 1, predicted when prob >= threshold), ROC-AUC and accuracy."""
    y_true = np.asarray(y_true).astype(np.int64)
    positive_probs = np.asarray(positive_probs, dtype=np.float64)
    predicted = (positive_probs >= threshold).astype(np.int64)
    # Stratified by class so every resample has positives and negatives for ROC-AUC.
    options = {
        "n_resamples": n_resamples, "confidence": confidence, "seed": seed, "stratify": y_true
    }
    return {
        "f1": metric_value("f1", m.binary_f1, y_true, predicted, **options),
        "roc_auc": metric_value("roc_auc", m.roc_auc, y_true, positive_probs, **options),
        "accuracy": metric_value("accuracy", m.accuracy, y_true, predicted, **options),
    }


def evaluate_multiclass_classifier(
    probs,
    labels,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
    n_bins: int = m.DEFAULT_ECE_BINS,
) -> dict[str, MetricValue]:
    """accuracy, macro F1 and ECE of a (N, C) probability matrix."""
    probs = np.asarray(probs, dtype=np.float64)
    confidences, correct = m.confidence_and_correct(probs, labels)
    predicted = probs.argmax(axis=1)
    labels = np.asarray(labels)
    num_classes = probs.shape[1]
    options = {"n_resamples": n_resamples, "confidence": confidence, "seed": seed}
    return {
        "accuracy": metric_value("accuracy", np.mean, correct, **options),
        "macro_f1": metric_value(
            "macro_f1", lambda y, p: m.macro_f1(y, p, num_classes), labels, predicted, **options
        ),
        "ece": metric_value(
            "ece", lambda c, k: m.ece_from_confidence(c, k, n_bins), confidences, correct,
            higher_is_better=False, **options,
        ),
    }


def evaluate_correlation(
    predicted,
    gold,
    prefix: str = "",
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> dict[str, MetricValue]:
    """Pearson and Spearman correlation of predicted vs gold scores (e.g. cosine vs STS-B gold)."""
    options = {"n_resamples": n_resamples, "confidence": confidence, "seed": seed}
    return {
        f"{prefix}{name}": metric_value(f"{prefix}{name}", fn, predicted, gold, **options)
        for name, fn in (("pearson", m.pearson), ("spearman", m.spearman))
    }


def evaluate_per_class(
    labels,
    predicted,
    class_names,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> dict[str, MetricValue]:
    """``precision_NAME``, ``recall_NAME`` and ``f1_NAME`` for every class, with intervals.

    One confusion matrix per resample gives all three metrics of every class, so the cost does
    not grow with the number of metrics. ``n`` of each metric is the total row count.
    """
    labels = np.asarray(labels).astype(np.int64)
    predicted = np.asarray(predicted).astype(np.int64)
    k = len(class_names)
    point = m.per_class_precision_recall_f1(labels, predicted, k)
    parts: dict[str, list[np.ndarray]] = {"precision": [], "recall": [], "f1": []}
    if n_resamples > 0:
        for rows in resample_indices(len(labels), n_resamples, seed):
            resampled = m.per_class_precision_recall_f1(labels[rows], predicted[rows], k)
            for key in parts:
                parts[key].append(resampled[key])
    out = {}
    for key, samples in parts.items():
        distribution = np.stack(samples) if samples else None  # (n_resamples, k)
        for index, name in enumerate(class_names):
            metric = f"{key}_{name}"
            out[metric] = _interval_value(
                metric, point[key][index],
                None if distribution is None else distribution[:, index], len(labels), confidence,
            )
    return out
