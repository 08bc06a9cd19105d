"""The models and the training loops under the JAX and torch backends (tokens made beforehand).

Each backend runs in its own process, because Keras picks its backend once, at import.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tiny_preset import build_tiny_preset

REPO = Path(__file__).resolve().parents[1]

BACKEND_SCRIPT = r"""
import json, sys
import numpy as np
import keras
from keras import ops
from modelgate.models import CovarianceResetCallback, EncoderClassifier, RandomFeatureGaussianProcess, load_backbone
from modelgate.training import TrainSettings, describe_device, set_seed, train_classifier

preset, tokens, workdir = sys.argv[1:4]
report = {"backend": keras.backend.backend(), "device": describe_device()}

# 1. A tiny SNGP classifier trains through train_classifier.
data = np.load(tokens)
x = {k: data[k] for k in ("token_ids", "padding_mask", "segment_ids")}
set_seed(5)
model = EncoderClassifier(load_backbone(preset), num_classes=4, num_inducing=64, dropout=0.0)
result = train_classifier(model, x, data["labels"], None, None,
                          TrainSettings(epochs=6, batch_size=8, learning_rate=1e-2, seed=5))
report["loss"] = result.history["loss"]
report["iterations"] = int(ops.convert_to_numpy(model.optimizer.iterations))

# 2. The same model saved and loaded in safe mode predicts the same.
model.save(f"{workdir}/model.keras")
loaded = keras.models.load_model(f"{workdir}/model.keras", safe_mode=True)
report["reload_max_abs_diff"] = float(np.abs(ops.convert_to_numpy(model(x)) - ops.convert_to_numpy(loaded(x))).max())

# 3. The covariance reset reaches the variables the backend's trainer uses.
class Probe(keras.callbacks.Callback):
    def __init__(self, layer):
        super().__init__(); self.layer, self.begin, self.end = layer, [], []
    def on_epoch_begin(self, epoch, logs=None):
        self.begin.append(ops.convert_to_numpy(self.layer.precision).copy())
    def on_epoch_end(self, epoch, logs=None):
        self.end.append(ops.convert_to_numpy(self.layer.precision).copy())

set_seed(6)
gp = RandomFeatureGaussianProcess(3, num_inducing=32, ridge_penalty=1.0)
head = keras.Sequential([keras.Input((4,)), gp])
head.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
rng = np.random.default_rng(6)
features, labels = rng.normal(size=(48, 4)).astype("float32"), rng.integers(0, 3, 48)
probe = Probe(gp)
head.fit(features, labels, batch_size=16, epochs=2, verbose=0, callbacks=[CovarianceResetCallback(), probe])
phi = ops.convert_to_numpy(gp.random_features(features))
prior, one_pass = np.eye(32), phi.T @ phi
report["precision_changed_in_epoch_1"] = bool(not np.allclose(probe.end[0], prior))
report["reset_at_epoch_2_begin_err"] = float(np.abs(probe.begin[1] - prior).max())
report["after_2_epochs_err"] = float(np.abs(ops.convert_to_numpy(gp.precision) - (prior + one_pass)).max())

# 4. The USE multilingual backbone in the siamese model: trains, round-trips, ignores padding.
from modelgate.models import SentenceEncoder, SiameseSimilarity, USEMultilingualBackbone
from modelgate.models.siamese import pair_inputs
from modelgate.training.similarity import SimilarityTrainSettings, compile_regressor

set_seed(7)
use = USEMultilingualBackbone(vocabulary_size=60, embedding_dim=8, ngram_width=4, dan_hidden_dim=8, output_dim=8)
encoder = SentenceEncoder(use)
siamese = SiameseSimilarity(encoder)
compile_regressor(siamese, SimilarityTrainSettings(learning_rate=1e-2))
ids = rng.integers(3, 60, size=(64, 6)); ids[:, 0], ids[:, -1] = 1, 2
side = lambda a: {"token_ids": a.astype("int32"), "padding_mask": np.ones_like(a, dtype="int32")}
left, right = side(ids[:32]), side(ids[32:])
target = rng.uniform(0.2, 0.9, 32).astype("float32")
history = siamese.fit(pair_inputs(left, right, encoder.input_names), target, batch_size=8, epochs=8, verbose=0)
report["use_loss"] = [float(v) for v in history.history["loss"]]
encoder.save(f"{workdir}/use.keras")
reloaded = keras.models.load_model(f"{workdir}/use.keras", safe_mode=True)
report["use_reload_max_abs_diff"] = float(np.abs(encoder.embed_arrays(left) - reloaded.embed_arrays(left)).max())
padded = {"token_ids": np.pad(left["token_ids"], ((0, 0), (0, 4)), constant_values=5),
          "padding_mask": np.pad(left["padding_mask"], ((0, 0), (0, 4)))}
report["use_padding_max_abs_diff"] = float(np.abs(encoder.embed_arrays(left) - encoder.embed_arrays(padded)).max())

# 5. Angular similarity keeps finite gradients at a zero embedding (a plain norm's are NaN there).
from modelgate.models.siamese import angular_similarity
zero_left = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]], dtype="float32")
zero_right = np.array([[1.0, 0.0, 0.0], [1.0, 2.0, 2.5]], dtype="float32")
if keras.backend.backend() == "jax":
    import jax
    grad = jax.grad(lambda l: ((angular_similarity(l, zero_right) - 0.9) ** 2).sum())(zero_left)
else:
    import torch
    leaf = torch.tensor(zero_left, requires_grad=True)
    ((angular_similarity(leaf, torch.tensor(zero_right)) - 0.9) ** 2).sum().backward()
    grad = leaf.grad
report["angular_grad_at_zero"] = np.asarray(ops.convert_to_numpy(grad)).tolist()
print("REPORT " + json.dumps(report))
"""


@pytest.fixture(scope="module")
def backend_inputs(tmp_path_factory):
    from modelgate.models import load_tokenizer
    from modelgate.preprocess import encode_texts

    root = tmp_path_factory.mktemp("backends")
    preset = build_tiny_preset(root / "preset")
    texts = ["book a flight", "book a hotel room", "what is my balance", "check my credit card",
             "play a song", "play my playlist", "set an alarm", "set a timer"] * 4
    labels = np.array([0, 0, 1, 1, 2, 2, 3, 3] * 4)
    tokens = root / "tokens.npz"
    np.savez(tokens, labels=labels, **encode_texts(load_tokenizer(str(preset)), texts, sequence_length=8))
    script = root / "backend_check.py"
    script.write_text(BACKEND_SCRIPT)
    return preset, tokens, script


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_model_trains_saves_and_resets_covariance_under_backend(backend, backend_inputs, tmp_path):
    if importlib.util.find_spec(backend) is None:
        pytest.fail(f"{backend} is not installed in this environment; it is a pinned dependency")
    preset, tokens, script = backend_inputs
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2",
           "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, str(script), str(preset), str(tokens), str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("REPORT ")]
    assert done.returncode == 0 and lines, (done.stdout + done.stderr)[-4000:]
    report = json.loads(lines[-1][len("REPORT "):])

    assert report["backend"] == backend and report["device"] == {"backend": backend, "device": "CPU"}
    assert report["iterations"] == 6 * 4  # 32 examples, batch 8, 6 epochs
    assert report["loss"][-1] < 0.8 * report["loss"][0], report["loss"]
    assert report["reload_max_abs_diff"] < 1e-6
    assert report["precision_changed_in_epoch_1"]
    assert report["reset_at_epoch_2_begin_err"] == 0.0
    assert report["after_2_epochs_err"] < 1e-3, "precision must hold the last epoch only"
    assert report["use_loss"][-1] < 0.8 * report["use_loss"][0], report["use_loss"]
    assert report["use_reload_max_abs_diff"] < 1e-6
    assert report["use_padding_max_abs_diff"] < 1e-5
    assert np.isfinite(report["angular_grad_at_zero"]).all(), report["angular_grad_at_zero"]
