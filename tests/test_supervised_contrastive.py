"""The supervised contrastive loss and the classifier that adds it to cross-entropy in training."""

from __future__ import annotations

import numpy as np
import pytest

import keras  # noqa: E402

from modelgate.models import EncoderClassifier, load_backbone, load_tokenizer  # noqa: E402
from modelgate.models.supervised_contrastive import supervised_contrastive_loss  # noqa: E402
from modelgate.pipelines.intent_ood import PIPELINE as INTENT_OOD  # noqa: E402
from modelgate.pipelines.nli import PIPELINE as NLI  # noqa: E402
from modelgate.config import ConfigError  # noqa: E402
from modelgate.preprocess import encode_texts  # noqa: E402
from modelgate.training import TrainSettings, set_seed, train_classifier  # noqa: E402
from tiny_preset import build_tiny_preset  # noqa: E402

INTENTS = {
    0: ["book a flight to the airport", "book a hotel room", "cancel my train ticket"],
    1: ["what is my account balance", "check my credit card payment", "transfer money to my bank"],
    2: ["play a song", "turn up the volume", "play my music playlist"],
    3: ["what is the weather today", "set an alarm for tomorrow", "set a timer"],
}


def reference_loss(embeddings: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Khosla et al.'s L_out written out anchor by anchor."""
    z = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    losses = []
    for i in range(len(z)):
        positives = [p for p in range(len(z)) if p != i and labels[p] == labels[i]]
        if not positives:
            continue
        others = [a for a in range(len(z)) if a != i]
        log_denominator = np.log(np.sum(np.exp(z[i] @ z[others].T / temperature)))
        losses.append(-np.mean([z[i] @ z[p] / temperature - log_denominator for p in positives]))
    return float(np.mean(losses)) if losses else 0.0


@pytest.fixture(scope="module")
def tiny_preset_dir(tmp_path_factory):
    return str(build_tiny_preset(tmp_path_factory.mktemp("tiny-preset")))


@pytest.fixture(scope="module")
def intent_data(tiny_preset_dir):
    texts = [t for label in INTENTS for t in INTENTS[label]]
    longer = [f"{t} and then please also {t} right now" for t in texts]
    labels = np.array([label for label in INTENTS for _ in INTENTS[label]] * 2)
    return encode_texts(load_tokenizer(tiny_preset_dir), texts + longer, sequence_length=24), labels


@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_loss_matches_the_definition_and_skips_anchors_without_positives(temperature):
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(9, 5)).astype("float32")
    labels = np.array([0, 0, 1, 1, 1, 2, 3, 3, 4])  # classes 2 and 4 have one row: no positives
    loss = float(keras.ops.convert_to_numpy(supervised_contrastive_loss(embeddings, labels, temperature)))
    assert loss == pytest.approx(reference_loss(embeddings, labels, temperature), rel=1e-4)
    no_pairs = supervised_contrastive_loss(embeddings[:4], np.arange(4), temperature)
    assert float(keras.ops.convert_to_numpy(no_pairs)) == 0.0


def test_loss_is_lower_when_classes_form_clusters():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(4), 4)
    centres = rng.normal(size=(4, 16)) * 5
    clustered = (centres[labels] + rng.normal(size=(16, 16))).astype("float32")
    shuffled = clustered[rng.permutation(16)]
    low = float(keras.ops.convert_to_numpy(supervised_contrastive_loss(clustered, labels)))
    high = float(keras.ops.convert_to_numpy(supervised_contrastive_loss(shuffled, labels)))
    assert low < high - 1.0
    with pytest.raises(ValueError, match="temperature must be > 0"):
        supervised_contrastive_loss(clustered, labels, temperature=0.0)


def _trained(tiny_preset_dir, intent_data, weight: float, start=None):
    """(model, history) after one epoch at a negligible rate: the loss is the starting weights'."""
    x, y = intent_data
    set_seed(0)
    model = EncoderClassifier(load_backbone(tiny_preset_dir), num_classes=4, head="softmax",
                              dropout=0.0, contrastive_weight=weight, contrastive_temperature=0.2)
    if start is not None:
        model.set_weights(start)
    settings = TrainSettings(epochs=1, batch_size=len(y), learning_rate=1e-9, warmup_fraction=0.0,
                             seed=0, length_bucketing=True)
    result = train_classifier(model, {**x, "labels": y}, y, cfg=settings)
    return model, result.history


def test_training_adds_the_weighted_contrastive_loss_of_the_pooled_embeddings(tiny_preset_dir, intent_data):
    x, y = intent_data
    plain, plain_history = _trained(tiny_preset_dir, intent_data, 0.0)
    weighted, history = _trained(tiny_preset_dir, intent_data, 0.5, start=plain.get_weights())
    # One batch of every row (length bucketing, cut to its longest), the encoder's own dropout on.
    pooled = keras.ops.convert_to_numpy(plain.embed(x, training=False))
    expected = 0.5 * reference_loss(pooled, y, 0.2)
    assert expected > 0.1
    assert history["loss"][0] - plain_history["loss"][0] == pytest.approx(expected, rel=0.1)
    with pytest.raises(ValueError, match="'labels'"):
        weighted(x, training=True)
    # Prediction takes no labels and adds nothing.
    np.testing.assert_allclose(weighted.predict(x, verbose=0), plain.predict(x, verbose=0), atol=1e-4)


def test_config_round_trip_and_refusals(tiny_preset_dir):
    model = EncoderClassifier(load_backbone(tiny_preset_dir), num_classes=4, contrastive_weight=0.3,
                              contrastive_temperature=0.05)
    config = model.get_config()
    assert (config["contrastive_weight"], config["contrastive_temperature"]) == (0.3, 0.05)
    with pytest.raises(ValueError, match="frozen encoder"):
        EncoderClassifier(load_backbone(tiny_preset_dir), num_classes=4, freeze_backbone=True,
                          contrastive_weight=0.5)
    with pytest.raises(ValueError, match="contrastive_weight must be >= 0"):
        EncoderClassifier(load_backbone(tiny_preset_dir), num_classes=4, contrastive_weight=-1.0)


@pytest.mark.parametrize("pipeline", [INTENT_OOD, NLI])
def test_both_classifier_pipelines_take_the_setting_and_refuse_a_negative_weight(pipeline):
    cfg = pipeline.load_config(overrides=["train.supervised_contrastive_weight=0.5",
                                          "train.supervised_contrastive_temperature=0.2"])
    assert (cfg.train.supervised_contrastive_weight, cfg.train.supervised_contrastive_temperature) == (0.5, 0.2)
    with pytest.raises(ConfigError, match="supervised_contrastive_weight"):
        pipeline.load_config(overrides=["train.supervised_contrastive_weight=-1"])
    with pytest.raises(ConfigError, match="nothing to train"):
        pipeline.load_config(overrides=["model.freeze_backbone=true", "train.supervised_contrastive_weight=0.5"])
    # Each quick profile freezes its encoder, and so trains without the loss.
    quick = pipeline.load_config("quick")
    assert quick.model.freeze_backbone and quick.train.supervised_contrastive_weight == 0.0
