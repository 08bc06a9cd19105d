"""The out-of-scope score: the class-distance and nearest-neighbour scorers and the choice on
validation."""

from __future__ import annotations

import numpy as np
import pytest

from modelgate.evaluation.bootstrap import evaluate_ood_classifier
from modelgate.evaluation.ood import (
    CLASS_DISTANCE,
    MAX_PROBABILITY,
    NEAREST_NEIGHBOR,
    ood_threshold_from_validation,
    select_ood_score,
)
from modelgate.models.class_distance import ClassDistance
from modelgate.models.nearest_neighbor import NearestNeighborDistance


CENTERS = np.random.default_rng(42).normal(size=(5, 16)) * 3


def _clusters(seed: int = 0, per_class: int = 40):
    """Points around the same five class centres; the seed draws the noise."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(CENTERS)), per_class)
    return CENTERS, labels, CENTERS[labels] + rng.normal(size=(len(labels), CENTERS.shape[1]))


def test_distance_is_the_nearest_centroid_under_the_shrunk_covariance():
    centers, labels, x = _clusters()
    scorer = ClassDistance.fit(x, labels, shrinkage=1.0, normalize=False)
    # Shrinkage 1: the covariance is a scaled identity, so the score is the squared Euclidean
    # distance to the nearest centroid divided by that scale.
    centroids = np.stack([x[labels == c].mean(axis=0) for c in range(5)])
    residual = x - centroids[labels]
    scale = np.trace(residual.T @ residual / len(x)) / x.shape[1]
    expected = ((x[:, None, :] - centroids[None]) ** 2).sum(-1).min(1) / (scale * (1 + 1e-6))
    np.testing.assert_allclose(scorer.score(x), expected, rtol=1e-6)


def test_unshrunk_distance_is_the_mahalanobis_distance_with_one_shared_covariance():
    _, labels, x = _clusters(seed=1)
    scorer = ClassDistance.fit(x, labels, shrinkage=0.0, normalize=False)
    centroids = np.stack([x[labels == c].mean(axis=0) for c in range(5)])
    residual = x - centroids[labels]
    covariance = residual.T @ residual / len(x)
    precision = np.linalg.inv(covariance + 1e-6 * np.trace(covariance) / x.shape[1] * np.eye(x.shape[1]))
    diff = x[:3, None, :] - centroids[None]
    expected = np.einsum("ncd,de,nce->nc", diff, precision, diff).min(1)
    np.testing.assert_allclose(scorer.score(x[:3]), expected, rtol=1e-6)


def test_far_points_score_higher_and_the_scorer_round_trips_through_its_arrays():
    _, labels, x = _clusters(seed=2)
    scorer = ClassDistance.fit(x, labels, shrinkage=0.5)
    far = np.random.default_rng(3).normal(size=(30, 16)) * 10
    assert np.median(scorer.score(far)) > np.percentile(scorer.score(x), 95)
    again = ClassDistance.from_arrays(scorer.get_config(), scorer.arrays())
    np.testing.assert_allclose(again.score(far), scorer.score(far))
    with pytest.raises(ValueError, match="do not match"):
        ClassDistance.from_arrays({**scorer.get_config(), "classes": 4}, scorer.arrays())


def test_bad_inputs_are_refused_with_what_is_wrong():
    _, labels, x = _clusters()
    with pytest.raises(ValueError, match="shrinkage must be in"):
        ClassDistance.fit(x, labels, shrinkage=1.5)
    with pytest.raises(ValueError, match=r"embeddings \[N, dim\] and labels \[N\]"):
        ClassDistance.fit(x, labels[:-1])


def test_nearest_neighbour_distance_is_one_minus_the_mean_of_the_k_best_cosines():
    _, _, x = _clusters(seed=11)
    queries = np.random.default_rng(12).normal(size=(7, 16))
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    cosines = unit(queries) @ unit(x).T
    for k in (1, 3):
        scorer = NearestNeighborDistance.fit(x, k=k)
        expected = 1.0 - np.sort(cosines, axis=1)[:, -k:].mean(axis=1)
        np.testing.assert_allclose(scorer.score(queries), expected, atol=2e-3)  # float16 references
    # A training point is its own nearest neighbour; an embedding's length does not matter.
    np.testing.assert_allclose(NearestNeighborDistance.fit(x).score(3.0 * x[:5]), 0.0, atol=2e-3)


def test_nearest_neighbour_scorer_round_trips_and_refuses_bad_inputs():
    _, _, x = _clusters(seed=13)
    scorer = NearestNeighborDistance.fit(x, k=2)
    far = np.random.default_rng(14).normal(size=(30, 16)) * 10
    assert np.median(scorer.score(far)) > np.percentile(scorer.score(x), 95)
    again = NearestNeighborDistance.from_arrays(scorer.get_config(), scorer.arrays())
    np.testing.assert_array_equal(again.score(far), scorer.score(far))
    assert scorer.arrays()["references"].dtype == np.float16
    with pytest.raises(ValueError, match="do not match"):
        NearestNeighborDistance.from_arrays({**scorer.get_config(), "dim": 8}, scorer.arrays())
    with pytest.raises(ValueError, match=r"k must be in \[1, 200\]"):
        NearestNeighborDistance.fit(x, k=0)
    with pytest.raises(ValueError, match=r"embeddings \[N, dim\]"):
        NearestNeighborDistance.fit(x[0])


def test_auto_weighs_nearest_neighbours_and_keeps_them_when_classes_are_not_one_cluster():
    # Every class is two far-apart clusters: its centroid lies between them, where no query is, so
    # out-of-scope points placed there are near a centroid but far from every training query.
    rng = np.random.default_rng(15)
    halves = rng.normal(size=(10, 16)) * 6
    labels = np.repeat(np.arange(5), 2 * 40)
    x = np.concatenate([halves[i] + rng.normal(size=(40, 16)) for i in range(10)])
    val = np.concatenate([halves[i] + rng.normal(size=(8, 16)) for i in range(10)])
    between = np.stack([(halves[2 * c] + halves[2 * c + 1]) / 2 for c in range(5)])
    oos = np.repeat(between, 4, axis=0) + 0.3 * rng.normal(size=(20, 16))
    chosen = select_ood_score("auto", [0.0, 1.0], True, (x, labels), (val, _probs(len(val), True, 16)),
                              (oos, _probs(20, True, 17)), neighbors=[1, 5])
    assert chosen.kind == NEAREST_NEIGHBOR
    assert [(c["ood_score"], c["k"]) for c in chosen.candidates][-2:] == [(NEAREST_NEIGHBOR, 1), (NEAREST_NEIGHBOR, 5)]
    assert chosen.inference()["ood_scorer"]["k"] in (1, 5) and "nearest training" in chosen.describe()
    with pytest.raises(ValueError, match="at least one k"):
        select_ood_score(NEAREST_NEIGHBOR, [], True, (x, labels), (val, None), (oos, None))


def _probs(rows: int, confident: bool, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(rows, 5)) * (8.0 if confident else 0.1)
    exp = np.exp(logits - logits.max(1, keepdims=True))
    return exp / exp.sum(1, keepdims=True)


def test_auto_keeps_the_score_that_separates_validation_best():
    _, labels, x = _clusters(seed=4)
    _, val_labels, val = _clusters(seed=5, per_class=10)
    oos = np.random.default_rng(6).normal(size=(20, 16)) * 10
    # Probabilities that say nothing (confident everywhere): distance must win on validation.
    chosen = select_ood_score(
        "auto", [0.0, 1.0], True, (x, labels), (val, _probs(len(val), True, 7)), (oos, _probs(20, True, 8))
    )
    assert chosen.kind == CLASS_DISTANCE
    assert [c["ood_score"] for c in chosen.candidates] == [MAX_PROBABILITY, CLASS_DISTANCE, CLASS_DISTANCE]
    assert round(chosen.validation_auprc, 4) == max(c["validation_ood_auprc"] for c in chosen.candidates)
    assert chosen.inference()["ood_scorer"]["shrinkage"] in (0.0, 1.0)
    # Probabilities that do separate, and embeddings that do not: max probability wins.
    chosen = select_ood_score(
        "auto", [1.0], True, (x, labels), (val, _probs(len(val), True, 9)), (val[:20], _probs(20, False, 10))
    )
    assert chosen.kind == MAX_PROBABILITY and chosen.inference() == {"ood_score": MAX_PROBABILITY}


def test_a_named_score_is_kept_and_an_unknown_one_refused():
    _, labels, x = _clusters()
    val = (x[:50], _probs(50, True, 1))
    chosen = select_ood_score(MAX_PROBABILITY, [], True, (None, None), val, val)
    assert chosen.kind == MAX_PROBABILITY and len(chosen.candidates) == 1
    with pytest.raises(ValueError, match="ood_score must be one of"):
        select_ood_score("energy", [0.0], True, (x, labels), val, val)
    with pytest.raises(ValueError, match="at least one shrinkage"):
        select_ood_score(CLASS_DISTANCE, [], True, (x, labels), val, val)


def test_the_threshold_maximises_validation_f1_and_metrics_use_the_given_scores():
    in_scope, out_of_scope = np.array([0.1, 0.2, 0.3, 0.9]), np.array([0.8, 0.95, 1.0])
    assert ood_threshold_from_validation(in_scope, out_of_scope) == pytest.approx(0.8)
    probs_in, probs_ood = _probs(4, True, 1), _probs(3, True, 2)
    labels = probs_in.argmax(1)
    metrics = evaluate_ood_classifier(probs_in, labels, probs_ood, n_resamples=0,
                                      ood_scores=(np.zeros(4), np.ones(3)))
    assert metrics["ood_auroc"].value == pytest.approx(1.0)
    with pytest.raises(ValueError, match="one score per"):
        evaluate_ood_classifier(probs_in, labels, probs_ood, n_resamples=0, ood_scores=(np.zeros(3), np.ones(3)))
