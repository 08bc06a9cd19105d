"""The frozen-encoder embedding cache against a real SeaweedFS: a second embedding of the same
tokens by the same frozen encoder is read back (exactly the arrays first computed), anything that
changes the embeddings misses, a damaged entry is recomputed and replaced, a trainable encoder
never reads it, an entry written under TensorFlow is read under JAX, and the intent-ood and nli
stages embed each split once across training and evaluation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from fixtures_clinc import clinc_tiny_preset, write_clinc_config, write_clinc_mirror
from fixtures_snli import fixture_validation_config, fixture_words, write_snli_mirror
from modelgate.embedding_cache import (
    EMBEDDING_CACHE_PREFIX,
    ENTRY_FILE,
    Embedder,
    cached_embeddings,
    embedding_cache_key,
    embedding_key_parts,
    encoder_sha256,
)
from modelgate.models import EncoderClassifier, load_backbone, load_tokenizer
from modelgate.pipelines import intent_ood, nli
from modelgate.pipelines.stages import fetch_staged_model, load_tokens
from modelgate.preprocess import encode_texts
from tiny_preset import build_tiny_preset

REPO = Path(__file__).resolve().parents[1]
TEXTS = ["book a flight to the airport", "what is my account balance", "play a song", "hi",
         "set an alarm for tomorrow and a timer for the pizza in the oven please"] * 3


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    return str(build_tiny_preset(tmp_path_factory.mktemp("tiny-preset")))


@pytest.fixture(scope="module")
def arrays(preset):
    return encode_texts(load_tokenizer(preset), TEXTS, sequence_length=24)


def frozen(preset, freeze=True, **kwargs):
    return EncoderClassifier(load_backbone(preset, **kwargs), num_classes=3, head="softmax",
                             freeze_backbone=freeze)


class FirstTokenPooling(keras.layers.Layer):
    """Another pooling mode: the first ([CLS]) token's vector."""

    def call(self, sequence_output, padding_mask):
        return sequence_output[:, 0]


class FirstTokenClassifier(EncoderClassifier):
    def _make_layers(self):
        super()._make_layers()
        self.pooling = FirstTokenPooling(name="pooling")


def cache_objects(store) -> list[str]:
    return sorted(store.list_keys(f"{EMBEDDING_CACHE_PREFIX}/"))


def counted(compute):
    calls = []

    def wrapped():
        calls.append(1)
        return compute()

    return wrapped, calls


def test_second_embedding_reads_the_arrays_the_first_computed(object_store, preset, arrays):
    first = Embedder(frozen(preset), object_store)
    computed = first(arrays)
    # Exactly what evaluation computed before the cache existed.
    np.testing.assert_array_equal(computed, first.model.predict_embeddings(arrays, batch_size=128))
    assert (first.rows_computed, first.rows_read) == (len(TEXTS), 0)

    again = Embedder(frozen(preset), object_store)  # another model object, as another process loads
    read = again(arrays)
    assert (again.rows_computed, again.rows_read) == (0, len(TEXTS))
    assert read.dtype == computed.dtype and read.shape == (len(TEXTS), again.model.encoder_dim)
    np.testing.assert_array_equal(read, computed)
    assert "0 rows computed, 15 read from the cache" in again.summary("evaluation")

    parts = embedding_key_parts(again.model, again.encoder, arrays)
    compute, calls = counted(lambda: np.zeros((len(TEXTS), again.model.encoder_dim), np.float32))
    np.testing.assert_array_equal(cached_embeddings(object_store, parts, compute), computed)
    assert calls == []


def test_other_weights_dtype_pooling_or_texts_miss(object_store, preset, arrays, tmp_path):
    model = frozen(preset)
    base = embedding_key_parts(model, encoder_sha256(model.backbone), arrays)

    other_preset = str(build_tiny_preset(tmp_path / "other", seed=1))
    other = frozen(other_preset)
    assert encoder_sha256(other.backbone) != base["encoder"]
    nudged = frozen(preset)
    weights = nudged.backbone.get_weights()
    weights[-1] = weights[-1] + np.float32(1e-6)
    nudged.backbone.set_weights(weights)
    assert encoder_sha256(nudged.backbone) != base["encoder"]
    assert encoder_sha256(frozen(preset, dtype="bfloat16").backbone) != base["encoder"]

    repooled = FirstTokenClassifier(load_backbone(preset), num_classes=3, head="softmax", freeze_backbone=True)
    assert embedding_key_parts(repooled, base["encoder"], arrays)["pooling"] != base["pooling"]

    fewer = {name: a[:-1] for name, a in arrays.items()}
    swapped = dict(arrays, segment_ids=np.ones_like(arrays["segment_ids"]))
    changed = [embedding_key_parts(model, base["encoder"], fewer),
               embedding_key_parts(model, base["encoder"], swapped)]
    assert all(parts["tokens"] != base["tokens"] for parts in changed)
    assert len({embedding_cache_key(p) for p in [base, *changed]}) == 3

    Embedder(model, object_store)(arrays)
    for variant in (other, nudged):
        embed = Embedder(variant, object_store)
        embed(arrays)
        assert (embed.rows_computed, embed.rows_read) == (len(TEXTS), 0)


def test_damaged_entry_is_recomputed_and_replaced(object_store, preset, arrays):
    model = frozen(preset)
    parts = embedding_key_parts(model, encoder_sha256(model.backbone), arrays)
    truth = model.predict_embeddings(arrays)
    cached_embeddings(object_store, parts, lambda: truth)
    prefix = f"{EMBEDDING_CACHE_PREFIX}/{embedding_cache_key(parts)}"
    [array_key] = [k for k in cache_objects(object_store) if k.endswith(".npy")]
    data = object_store.get_bytes(array_key)

    flipped = bytearray(data)
    flipped[-3] ^= 0x40  # same length, one float changed: only the sha256 tells
    damages = {
        "truncated": lambda: object_store.put_bytes(array_key, data[: len(data) // 2]),
        "altered": lambda: object_store.put_bytes(array_key, bytes(flipped)),
        "missing": lambda: object_store.delete(array_key),
        "unreadable entry": lambda: object_store.put_bytes(f"{prefix}/{ENTRY_FILE}", b"{not json"),
    }
    for what, damage in damages.items():
        damage()
        compute, calls = counted(lambda: truth)
        np.testing.assert_array_equal(cached_embeddings(object_store, parts, compute), truth)
        assert calls == [1], what
        # Replaced: the next read trusts the entry again.
        compute, calls = counted(lambda: truth)
        np.testing.assert_array_equal(cached_embeddings(object_store, parts, compute), truth)
        assert calls == [], what

    # An entry whose array has another shape than the key expects is not used either.
    wrong = embedding_key_parts(model, parts["encoder"], arrays) | {"width": parts["width"] + 1}
    cached_embeddings(object_store, wrong, lambda: np.zeros((len(TEXTS), parts["width"] + 1), np.float32))
    entry = object_store.get_json(f"{EMBEDDING_CACHE_PREFIX}/{embedding_cache_key(wrong)}/{ENTRY_FILE}")
    object_store.put_json(f"{EMBEDDING_CACHE_PREFIX}/{embedding_cache_key(parts)}/{ENTRY_FILE}",
                          {**entry, "key": embedding_cache_key(parts)})
    compute, calls = counted(lambda: truth)
    np.testing.assert_array_equal(cached_embeddings(object_store, parts, compute), truth)
    assert calls == [1]


def test_trainable_encoder_never_reads_a_frozen_entry(object_store, preset, arrays):
    model = frozen(preset)
    parts = embedding_key_parts(model, encoder_sha256(model.backbone), arrays)
    # A planted entry under the frozen key: whoever reads it gets zeros.
    cached_embeddings(object_store, parts, lambda: np.zeros((len(TEXTS), model.encoder_dim), np.float32))
    assert not Embedder(model, object_store)(arrays).any()
    before = cache_objects(object_store)

    trainable = frozen(preset, freeze=False)  # the same weights, as a fine-tuning run starts
    embed = Embedder(trainable, object_store)
    embeddings = embed(arrays)
    np.testing.assert_array_equal(embeddings, trainable.predict_embeddings(arrays))
    assert embeddings.any() and (embed.rows_computed, embed.rows_read) == (len(TEXTS), 0)
    assert cache_objects(object_store) == before  # and it stores nothing


CHILD = """
import sys, numpy as np, keras
from modelgate.embedding_cache import Embedder
from modelgate.models import EncoderClassifier, load_backbone
from modelgate.storage import ObjectStore
preset, tokens, out = sys.argv[1:]
model = EncoderClassifier(load_backbone(preset), num_classes=3, head="softmax", freeze_backbone=True)
with np.load(tokens) as archive:
    arrays = {name: archive[name] for name in archive.files}
embed = Embedder(model, ObjectStore.from_settings())
np.savez(out, cached=embed(arrays), own=model.predict_embeddings(arrays))
print(keras.config.backend(), embed.rows_computed, embed.rows_read)
"""


def test_an_entry_written_under_tensorflow_is_read_under_jax(modelgate_env, object_store, preset, arrays, tmp_path):
    embed = Embedder(frozen(preset), object_store)
    written = embed(arrays)
    np.savez(tmp_path / "tokens.npz", **arrays)
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run([sys.executable, "-c", CHILD, preset, str(tmp_path / "tokens.npz"), str(tmp_path / "out.npz")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-3:] == ["jax", "0", str(len(TEXTS))]
    with np.load(tmp_path / "out.npz") as out:
        np.testing.assert_array_equal(out["cached"], written)
        # JAX's own embeddings agree up to float rounding: the cache does not change the numbers.
        np.testing.assert_allclose(out["own"], written, rtol=1e-4, atol=1e-5)


def test_intent_ood_stages_embed_each_split_once(modelgate_env, object_store, tmp_path, capsys):
    config = write_clinc_config(tmp_path, write_clinc_mirror(tmp_path / "mirror"), clinc_tiny_preset(tmp_path))
    pipeline = intent_ood.PIPELINE
    cfg = pipeline.load_config("default", config, ["model.freeze_backbone=true",
                                                   "train.supervised_contrastive_weight=0"])
    validated = pipeline.validate(cfg, object_store, pipeline.ingest(cfg, object_store), "embed-test")
    features = pipeline.preprocess(cfg, object_store, validated)
    rows = features.rows  # train 30, validation 10, oos_validation 2, test 15, oos_test 5
    evaluated = rows["oos_validation"] + rows["test"] + rows["oos_test"]

    trained = pipeline.train(cfg, object_store, features)
    reused = rows["train"] + rows["validation"]
    assert f"training embeddings (frozen encoder, cached): {reused} rows computed, 0 read" in capsys.readouterr().out
    first = intent_ood.compute_evaluation(cfg, object_store, trained, features, "embed-test-1")
    assert (f"evaluation embeddings (frozen encoder, cached): {evaluated} rows computed, {reused} read "
            "from the cache") in capsys.readouterr().out

    # Everything embedded again by evaluation itself, as before the cache: the same evaluation up
    # to float rounding (TensorFlow's last bits can differ between the training's predict calls
    # and the evaluation's).
    object_store.delete_prefix(f"{EMBEDDING_CACHE_PREFIX}/")
    again = intent_ood.compute_evaluation(cfg, object_store, trained, features, "embed-test-2")
    assert f"{evaluated + reused} rows computed, 0 read" in capsys.readouterr().out
    assert again.metrics.keys() == first.metrics.keys()
    for name, metric in first.metrics.items():
        for field in ("value", "low", "high"):
            assert again.metrics[name][field] == pytest.approx(metric[field], rel=1e-5, abs=1e-6), (name, field)
    assert again.details["ood_score"] == first.details["ood_score"]
    frozen_entries = cache_objects(object_store)

    tuned_cfg = pipeline.load_config("default", config, ["model.freeze_backbone=false", "train.epochs=1"])
    tuned = pipeline.train(tuned_cfg, object_store, features)
    intent_ood.compute_evaluation(tuned_cfg, object_store, tuned, features, "embed-test-3")
    assert (f"evaluation embeddings (trainable encoder, not cached): {evaluated + reused} rows computed, "
            "0 read") in capsys.readouterr().out
    assert cache_objects(object_store) == frozen_entries


def test_nli_evaluation_reads_the_frozen_validation_embeddings_training_stored(
        modelgate_env, object_store, tmp_path, capsys):
    preset = build_tiny_preset(tmp_path / "tiny-bert", extra_words=fixture_words())
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"source": str(write_snli_mirror(tmp_path / "mirror")), "offline_validation_fraction": 0.2},
        "model": {"preset": str(preset), "sequence_length": 24, "freeze_backbone": True},
        "train": {"epochs": 2, "batch_size": 8, "learning_rate": 1.0e-3},
        "evaluate": {"bootstrap_samples": 100},
        "validation": {k: {s: list(b) for s, b in v.items()} for k, v in fixture_validation_config().items()},
    }))
    pipeline = nli.PIPELINE
    cfg = pipeline.load_config("default", str(config), [])
    validated = pipeline.validate(cfg, object_store, pipeline.ingest(cfg, object_store), "nli-embed-test")
    features = pipeline.preprocess(cfg, object_store, validated)
    trained = pipeline.train(cfg, object_store, features)
    rows = features.rows
    assert f"{rows['train'] + rows['validation']} rows computed, 0 read" in capsys.readouterr().out
    evaluation = nli.compute_evaluation(cfg, object_store, trained, features, "nli-embed-test")
    assert (f"evaluation embeddings (frozen encoder, cached): {rows['test']} rows computed, "
            f"{rows['validation']} read from the cache") in capsys.readouterr().out
    assert 0.0 <= evaluation.metrics["accuracy"]["value"] <= 1.0

    # The head on the cached embeddings gives the full model's logits, up to float rounding.
    model = fetch_staged_model(object_store, trained, tmp_path / "model").model
    tokens = load_tokens(object_store, features, "test")
    from_cache = model.logits_and_variance_from_embeddings(Embedder(model, object_store)(tokens))
    for cached, full in zip(from_cache, model.predict_logits_and_variance(tokens, batch_size=128)):
        np.testing.assert_allclose(cached, full, rtol=1e-4, atol=1e-5)
