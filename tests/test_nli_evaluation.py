"""Per-class precision/recall/F1 with bootstrap intervals, and the nli config's recipe defaults."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support

from modelgate.evaluation.bootstrap import bootstrap_interval, evaluate_per_class
from modelgate.evaluation.metrics import per_class_precision_recall_f1


def test_per_class_metrics_match_sklearn_and_carry_intervals():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=300)
    predicted = np.where(rng.random(300) < 0.7, labels, rng.integers(0, 3, size=300))
    names = ["entailment", "neutral", "contradiction"]
    metrics = evaluate_per_class(labels, predicted, names, n_resamples=200, seed=3)
    assert set(metrics) == {f"{m}_{n}" for m in ("precision", "recall", "f1") for n in names}
    precision, recall, f1, _ = precision_recall_fscore_support(labels, predicted, labels=[0, 1, 2], zero_division=0)
    for i, name in enumerate(names):
        for key, expected in (("precision", precision), ("recall", recall), ("f1", f1)):
            value = metrics[f"{key}_{name}"]
            assert value.value == pytest.approx(expected[i])
            assert value.low < value.value < value.high and value.n == 300
    # The one-pass intervals equal the generic bootstrap of the same metric with the same seed.
    generic = bootstrap_interval(
        lambda y, p: per_class_precision_recall_f1(y, p, 3)["recall"][1], labels, predicted,
        n_resamples=200, seed=3,
    )
    assert (metrics["recall_neutral"].low, metrics["recall_neutral"].high) == pytest.approx(tuple(generic))
    no_intervals = evaluate_per_class(labels, predicted, names, n_resamples=0)
    assert no_intervals["f1_neutral"].low is None


def test_config_holds_the_recipe_and_a_quick_profile():
    from modelgate.flows import FLOWS
    from modelgate.config import ConfigError
    from modelgate.pipelines import get_pipeline
    from modelgate.pipelines.nli import PIPELINE

    load_config = PIPELINE.load_config
    cfg = load_config()
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.train.learning_rate, cfg.train.warmup_fraction) == (
        2, 16, 3e-5, 0.2)
    assert cfg.model.preset == "all-mpnet-base-v2" and cfg.train.backend == "jax" and cfg.train.length_bucketing
    assert cfg.model.head == "softmax" and cfg.data.train_fraction == 0.2
    # The recipe's schedule on MiniLM stays a profile; the quick profile keeps MiniLM too.
    minilm = load_config("minilm")
    assert (minilm.model.preset, minilm.train.epochs, minilm.train.learning_rate) == ("all-minilm-l6-v2", 3, 1e-4)
    assert minilm.train.backend == "inherit" and not minilm.train.length_bucketing
    assert [(t.metric, t.min) for t in cfg.gate.thresholds] == [("accuracy", 0.78)]
    quick = load_config("quick")
    assert quick.model.freeze_backbone and quick.data.max_train_rows == 4000
    assert quick.model.preset == "all-minilm-l6-v2" and quick.train.backend == "inherit"
    assert load_config(overrides=["data.train_fraction=0.5"]).data.train_fraction == 0.5
    with pytest.raises(ConfigError, match="train_fraction"):
        load_config(overrides=["data.train_fraction=1.5"])
    with pytest.raises(ConfigError, match="sentence_chars"):
        load_config(overrides=["validation.sentence_chars=[10, 1]"])
    assert get_pipeline("nli") is PIPELINE and PIPELINE.name == "nli"
    assert FLOWS["nli"].name == "nli"
