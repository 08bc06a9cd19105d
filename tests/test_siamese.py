"""The siamese encoder on a tiny random backbone: angular similarity, one shared set of weights, a
registered encoder that loads in safe mode and embeds the same, and the training loop's early
stopping, TensorBoard logs and resume from S3 checkpoints."""

from __future__ import annotations

import math

import numpy as np
import pytest
from keras import ops

from modelgate.models.siamese import (
    SentenceEncoder,
    SiameseSimilarity,
    angular_from_cosine,
    angular_similarity,
    cosine_matrix_np,
    cosine_similarity_np,
    pair_inputs,
    unit_rows,
)
from modelgate.training.similarity import EarlyStop, SimilarityTrainSettings, train_similarity
from tiny_preset import build_tiny_preset

WORDS = ["software", "engineer", "developer", "nurse", "doctor", "teacher", "cook", "driver"]


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    return build_tiny_preset(tmp_path_factory.mktemp("preset") / "tiny-bert")


def test_angular_similarity_values():
    vectors = ops.convert_to_tensor(np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]], dtype="float32"))
    others = ops.convert_to_tensor(np.array([[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]], dtype="float32"))
    got = ops.convert_to_numpy(angular_similarity(vectors, others))
    assert got == pytest.approx([1.0, 0.5, 0.0], abs=1e-3)
    cosine = np.array([1.0, 0.5, 0.0, -0.5, -1.0])
    assert angular_from_cosine(cosine) == pytest.approx(1 - np.arccos(cosine) / math.pi)


def test_numpy_cosines_match_and_keep_zero_vectors_finite():
    vectors = np.array([[3.0, 4.0], [0.0, 2.0], [0.0, 0.0]])
    unit = unit_rows(vectors)
    assert unit == pytest.approx(np.array([[0.6, 0.8], [0.0, 1.0], [0.0, 0.0]]))
    matrix = cosine_matrix_np(vectors)
    assert matrix == pytest.approx(np.array([[1.0, 0.8, 0.0], [0.8, 1.0, 0.0], [0.0, 0.0, 0.0]]))
    assert cosine_similarity_np(vectors, vectors[[1, 0, 2]]) == pytest.approx([0.8, 0.8, 0.0])


def test_angular_similarity_gradient_is_finite_at_a_zero_embedding():
    import tensorflow as tf

    left = tf.Variable([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    right = tf.constant([[1.0, 0.0, 0.0], [1.0, 2.0, 2.5]])
    with tf.GradientTape() as tape:
        similarity = angular_similarity(left, right)
        loss = tf.reduce_sum((similarity - 0.9) ** 2)
    gradient = tape.gradient(loss, left).numpy()
    assert np.isfinite(gradient).all(), gradient
    assert similarity.numpy()[0] == pytest.approx(0.5)  # a zero vector is orthogonal to everything
    assert np.abs(gradient[1]).sum() > 0


def _arrays(preset, texts, length=8):
    from modelgate.models import load_tokenizer
    from modelgate.preprocess import encode_texts

    return encode_texts(load_tokenizer(str(preset)), texts, length)


def test_siamese_shares_one_encoder_and_the_encoder_round_trips(preset, tmp_path):
    from modelgate.artifacts import load_model_dir, save_model_dir
    from modelgate.models import load_backbone, load_tokenizer

    encoder = SentenceEncoder(load_backbone(str(preset)))
    model = SiameseSimilarity(encoder)
    assert len(model.weights) == len(encoder.weights)  # both sides use the same variables
    left = _arrays(preset, ["software engineer", "nurse"])
    right = _arrays(preset, ["software developer", "nurse"])
    out = ops.convert_to_numpy(model(pair_inputs(left, right, encoder.input_names)))
    emb_l, emb_r = encoder.embed_arrays(left), encoder.embed_arrays(right)
    cosine = np.sum(emb_l * emb_r, 1) / np.linalg.norm(emb_l, axis=1) / np.linalg.norm(emb_r, axis=1)
    assert out == pytest.approx(angular_from_cosine(cosine), abs=1e-3)  # training clips cos just inside 1
    assert out[1] == pytest.approx(1.0, abs=1e-3)  # the same title on both sides

    save_model_dir(tmp_path / "m", encoder, load_tokenizer(str(preset)), [], {"sequence_length": 8})
    loaded = load_model_dir(tmp_path / "m")  # safe mode
    assert isinstance(loaded.model, SentenceEncoder)
    assert loaded.model.embed_arrays(left) == pytest.approx(emb_l, abs=1e-5)


def test_early_stop_rule_matches_keras_semantics():
    rule = EarlyStop(patience=3, min_delta=0.001)
    assert not rule.should_stop([1.0, 0.9, 0.8])
    assert rule.should_stop([1.0, 0.9995, 0.9992, 0.9991])  # three epochs without a 0.001 gain
    assert not rule.should_stop([1.0, 0.9995, 0.9992, 0.98])


def _training_data(preset, count=48, seed=0):
    rng = np.random.default_rng(seed)
    left = [f"{WORDS[i % 8]} {WORDS[(i * 3) % 8]}" for i in range(count)]
    same = rng.random(count) < 0.5
    right = [text if s else f"{WORDS[(i + 4) % 8]} {WORDS[(i + 5) % 8]}" for i, (text, s) in enumerate(zip(left, same))]
    return _arrays(preset, left), _arrays(preset, right), np.where(same, 1.0, 0.1).astype("float32")


def test_training_stops_early_logs_to_tensorboard_and_resumes(preset, tmp_path, object_store):
    from modelgate.models import load_backbone
    from modelgate.training import S3Checkpointer

    left, right, y = _training_data(preset)

    def build():
        encoder = SentenceEncoder(load_backbone(str(preset)))
        return SiameseSimilarity(encoder), encoder.input_names

    model, names = build()
    x = pair_inputs(left, right, names)
    settings = SimilarityTrainSettings(epochs=2, batch_size=16, learning_rate=1e-3, seed=3)
    checkpointer = S3Checkpointer(object_store, "runs/test/checkpoints")
    first = train_similarity(model, x, y, x, y, settings, checkpointer=checkpointer, log_dir=tmp_path / "tb")
    assert first.epochs_run == 2 and first.resumed_from_epoch is None
    assert first.history["loss"][1] < first.history["loss"][0]
    assert any("tfevents" in p.name for p in (tmp_path / "tb").rglob("*"))

    # The same run with more epochs continues after epoch 2; a min_delta nothing reaches stops it
    # after `patience` epochs without gain, counting the epochs before the resume.
    model, _ = build()
    more = SimilarityTrainSettings(epochs=6, batch_size=16, learning_rate=1e-3, seed=3, patience=2, min_delta=10.0)
    resumed = train_similarity(model, x, y, x, y, more, checkpointer=checkpointer)
    assert resumed.resumed_from_epoch == 2
    assert resumed.epochs_run == 1 and resumed.history["stopped_early"] == [1.0]
    assert object_store.get_json("runs/test/checkpoints/history.json")["val_loss"].__len__() == 3


def test_length_bucketed_training_learns_in_batches_cut_to_the_longer_title(preset, monkeypatch):
    from modelgate.models import load_backbone
    from modelgate.training.batches import LengthBucketedBatches

    words = [f"{WORDS[i % 8]} {WORDS[(i * 3) % 8]}" for i in range(48)]
    left = _arrays(preset, [w if i % 3 else f"{w} {w} {w} {w} {w}" for i, w in enumerate(words)], length=24)
    right = _arrays(preset, words[::-1], length=24)
    y = np.where(np.arange(48) % 2 == 0, 1.0, 0.1).astype("float32")
    encoder = SentenceEncoder(load_backbone(str(preset)))
    model = SiameseSimilarity(encoder)
    x = pair_inputs(left, right, encoder.input_names)
    widths = []
    batch = LengthBucketedBatches.__getitem__

    def recorded(self, index):
        inputs, targets = batch(self, index)
        widths.append(inputs["left_token_ids"].shape[1])
        return inputs, targets

    monkeypatch.setattr(LengthBucketedBatches, "__getitem__", recorded)
    settings = SimilarityTrainSettings(epochs=3, batch_size=8, learning_rate=1e-3, seed=1, length_bucketing=True)
    result = train_similarity(model, x, y, None, None, settings)
    assert result.epochs_run == 3 and result.history["loss"][-1] < result.history["loss"][0]
    assert len(widths) >= 3 * 6 and set(widths) == {8, 16}  # short pairs run at 8 of the 24 tokens
