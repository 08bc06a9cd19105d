"""Tokenization to arrays (and its S3 cache), the optimizer, training, checkpoints and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import keras  # noqa: E402

from modelgate.models import EncoderClassifier, load_backbone, load_tokenizer, tokenizer_id  # noqa: E402
from modelgate.preprocess import (  # noqa: E402
    TOKEN_CACHE_PREFIX,
    cached_encode,
    encode_pairs,
    encode_texts,
    texts_sha256,
)
from modelgate.training import (  # noqa: E402
    S3Checkpointer,
    TrainSettings,
    WarmupLinearDecay,
    build_optimizer,
    set_seed,
    train_classifier,
)
from modelgate.models.padding import predict_by_length, token_lengths  # noqa: E402
from modelgate.training.batches import LengthBucketedBatches  # noqa: E402
from tiny_preset import build_tiny_preset  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
INTENTS = {
    0: ["book a flight to the airport", "book a hotel room", "cancel my train ticket"],
    1: ["what is my account balance", "check my credit card payment", "transfer money to my bank"],
    2: ["play a song", "turn up the volume", "play my music playlist"],
    3: ["what is the weather today", "set an alarm for tomorrow", "set a timer"],
}


@pytest.fixture(scope="module")
def tiny_preset_dir(tmp_path_factory):
    return str(build_tiny_preset(tmp_path_factory.mktemp("tiny-preset")))


@pytest.fixture(scope="module")
def tokenizer(tiny_preset_dir):
    return load_tokenizer(tiny_preset_dir)


@pytest.fixture(scope="module")
def intent_data(tokenizer):
    texts = [t for label in INTENTS for t in INTENTS[label]] * 4
    labels = np.array([label for label in INTENTS for _ in INTENTS[label]] * 4)
    return encode_texts(tokenizer, texts, sequence_length=10), labels


# -- preprocess -------------------------------------------------------------------------------
def test_encode_texts_packs_cls_text_sep_into_int32_arrays(tokenizer):
    arrays = encode_texts(tokenizer, ["book a flight", "hello"], sequence_length=8)
    assert set(arrays) == {"token_ids", "padding_mask", "segment_ids"}
    assert all(a.dtype == np.int32 and a.shape == (2, 8) for a in arrays.values())
    cls_id, sep_id, pad_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]"), tokenizer.token_to_id("[PAD]")
    expected = [cls_id, *[tokenizer.token_to_id(w) for w in ("book", "a", "flight")], sep_id, pad_id, pad_id, pad_id]
    assert arrays["token_ids"][0].tolist() == expected
    assert arrays["padding_mask"].sum(axis=1).tolist() == [5, 3]
    assert not arrays["segment_ids"].any()


def test_encode_texts_truncates_and_batching_does_not_change_the_result(tokenizer):
    texts = ["please book a hotel room and a flight and a car for my trip tomorrow"] + ["hi"] * 40
    whole = encode_texts(tokenizer, texts, sequence_length=6)
    batched = encode_texts(tokenizer, texts, sequence_length=6, batch_size=7)
    for key in whole:
        np.testing.assert_array_equal(whole[key], batched[key])
    assert whole["token_ids"][0, -1] == tokenizer.token_to_id("[SEP]") and whole["padding_mask"][0].all()


def test_encode_pairs_marks_the_second_segment(tokenizer):
    arrays = encode_pairs(tokenizer, ["a man is sitting"], ["a person sitting"], sequence_length=12)
    ids, segments = arrays["token_ids"][0], arrays["segment_ids"][0]
    sep = tokenizer.token_to_id("[SEP]")
    assert ids[0] == tokenizer.token_to_id("[CLS]") and ids.tolist().count(sep) == 2
    first_sep = ids.tolist().index(sep)
    assert not segments[: first_sep + 1].any() and segments[first_sep + 1 : first_sep + 4].all()
    with pytest.raises(ValueError, match="2 first texts but 1 second"):
        encode_pairs(tokenizer, ["a", "b"], ["c"], sequence_length=8)


def test_cached_encode_stores_once_and_reuses(object_store, tokenizer):
    texts = ["play a song", "set a timer", "book a flight"]
    calls = []

    def compute():
        calls.append(1)
        return encode_texts(tokenizer, texts, 8)

    digest, tok_id = texts_sha256(texts), tokenizer_id(tokenizer)
    first = cached_encode(object_store, digest, tok_id, 8, compute)
    second = cached_encode(object_store, digest, tok_id, 8, compute)
    assert len(calls) == 1, "the second call must come from the cache"
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
        assert second[key].dtype == np.int32
    assert len(list(object_store.list_keys(f"{TOKEN_CACHE_PREFIX}/"))) == 1
    cached_encode(object_store, digest, tok_id, 9, lambda: encode_texts(tokenizer, texts, 9))
    cached_encode(object_store, texts_sha256(texts[:2]), tok_id, 8, lambda: encode_texts(tokenizer, texts[:2], 8))
    assert len(list(object_store.list_keys(f"{TOKEN_CACHE_PREFIX}/"))) == 3  # length and content are in the key


# -- optimizer --------------------------------------------------------------------------------
def test_schedule_warms_up_then_decays_linearly_to_zero():
    schedule = WarmupLinearDecay(1e-3, warmup_steps=10, total_steps=100)
    values = {s: float(schedule(s)) for s in (0, 5, 10, 55, 100, 130)}
    assert values[0] == 0.0 and values[100] == 0.0 and values[130] == 0.0
    assert values[5] == pytest.approx(5e-4) and values[10] == pytest.approx(1e-3) and values[55] == pytest.approx(5e-4)
    optimizer = build_optimizer(200, TrainSettings(learning_rate=2e-5, warmup_fraction=0.1))
    config = optimizer.get_config()["learning_rate"]["config"]
    assert config == {"peak_learning_rate": 2e-5, "warmup_steps": 20, "total_steps": 200}
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert float(restored(55)) == pytest.approx(5e-4)


def test_weight_decay_skips_layernorm_and_bias(tiny_preset_dir):
    model = EncoderClassifier(load_backbone(tiny_preset_dir), num_classes=3, head="softmax")
    optimizer = build_optimizer(10, TrainSettings(learning_rate=0.1, weight_decay=0.5, warmup_fraction=0.1))
    variables = model.trainable_variables
    before = [v.numpy().copy() for v in variables]
    zeros = [np.zeros(v.shape, dtype="float32") for v in variables]
    for _ in range(2):  # step 0 has learning rate 0 (warmup); step 1 decays
        optimizer.apply(zeros, variables)
    exempt = {"bias", "gamma", "beta"}
    assert {v.name for v in variables} >= exempt | {"kernel", "embeddings"}
    for variable, old in zip(variables, before):
        if variable.name in exempt:
            np.testing.assert_array_equal(variable.numpy(), old, err_msg=variable.path)
        else:  # zero gradients: only decay moves it, by a factor 1 - lr * wd
            np.testing.assert_allclose(variable.numpy(), old * (1 - 0.1 * 0.5), rtol=1e-5, err_msg=variable.path)


def test_settings_refuse_nonsense():
    with pytest.raises(ValueError, match="epochs must be >= 1.*warmup_fraction"):
        TrainSettings(epochs=0, warmup_fraction=1.5)


# -- training ---------------------------------------------------------------------------------
def test_train_classifier_learns_and_reports(tiny_preset_dir, intent_data):
    x, y = intent_data
    set_seed(3)
    model = EncoderClassifier(load_backbone(tiny_preset_dir), num_classes=4, num_inducing=64, dropout=0.0)
    cfg = TrainSettings(epochs=4, batch_size=8, learning_rate=3e-3, warmup_fraction=0.1, seed=3)
    result = train_classifier(model, x, y, x, y, cfg)
    assert result.epochs_run == 4 and result.resumed_from_epoch is None
    assert len(result.history["loss"]) == 4 and len(result.history["val_accuracy"]) == 4
    assert result.history["loss"][-1] < 0.8 * result.history["loss"][0]
    assert result.history["val_accuracy"][-1] > 0.5  # chance is 0.25
    assert result.device == "CPU" and result.backend == keras.backend.backend()
    assert result.seconds > 0 and result.examples_per_second > 0
    assert int(model.optimizer.iterations.numpy()) == 4 * 6  # 48 examples / batch 8


# -- checkpoints and resume -------------------------------------------------------------------
TRAIN_SCRIPT = r"""
import json, os, sys, time
import numpy as np, keras
from modelgate.models import EncoderClassifier, load_backbone
from modelgate.storage import ObjectStore
from modelgate.training import S3Checkpointer, TrainSettings, set_seed, train_classifier

preset, tokens, prefix, out = sys.argv[1:5]
pause_at = int(os.environ.get("PAUSE_AT_EPOCH", "0"))

class PauseAtEpoch(keras.callbacks.Callback):
    # Holds the process still after the previous epoch's checkpoint, so the kill lands mid-run.
    def on_epoch_begin(self, epoch, logs=None):
        if pause_at and epoch >= pause_at:
            time.sleep(600)

data = np.load(tokens)
x = {k: data[k] for k in ("token_ids", "padding_mask", "segment_ids")}
set_seed(11)
model = EncoderClassifier(load_backbone(preset), num_classes=4, num_inducing=32, dropout=0.2)
checkpointer = S3Checkpointer(ObjectStore.from_settings(), prefix, keep_last=None)
cfg = TrainSettings(epochs=3, batch_size=8, learning_rate=2e-3, seed=11)
result = train_classifier(model, x, data["labels"], None, None, cfg, checkpointer=checkpointer, callbacks=[PauseAtEpoch()])
np.savez(out + ".npz", *[keras.ops.convert_to_numpy(v) for v in model.variables])
json.dump({"epochs_run": result.epochs_run, "resumed_from_epoch": result.resumed_from_epoch,
           "iterations": int(model.optimizer.iterations.numpy()), "loss": result.history.get("loss", [])},
          open(out, "w"))
"""


def _child_env(s3_server, store):
    env = dict(os.environ)
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "MODELGATE_S3_ENDPOINT": s3_server.endpoint,
            "MODELGATE_BUCKET": store.bucket,
            "AWS_ACCESS_KEY_ID": s3_server.credentials.access_key,
            "AWS_SECRET_ACCESS_KEY": s3_server.credentials.secret_key,
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
    )
    return env


def _run_training(script, args, env, **kwargs):
    return subprocess.Popen(
        [sys.executable, str(script), *map(str, args)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def _finish(process, timeout=300):
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output[-3000:]


@pytest.mark.slow
def test_training_killed_after_epoch_one_resumes_and_matches_an_uninterrupted_run(
    tmp_path, tiny_preset_dir, intent_data, s3_server, object_store
):
    x, y = intent_data
    tokens = tmp_path / "tokens.npz"
    np.savez(tokens, labels=y, **x)
    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT)
    env = _child_env(s3_server, object_store)
    checkpointer = S3Checkpointer(object_store, "runs/test/resume", keep_last=None)

    killed = _run_training(script, [tiny_preset_dir, tokens, checkpointer.prefix, tmp_path / "killed.json"], {**env, "PAUSE_AT_EPOCH": "1"})
    try:
        deadline = time.monotonic() + 240
        while (checkpointer.latest() or {}).get("epoch") != 1:
            assert killed.poll() is None, killed.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "no epoch-1 checkpoint within 240 s"
            time.sleep(0.5)
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.communicate(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed.json").exists()
    state = object_store.get_json(f"{checkpointer.epoch_prefix(1)}/state.json")
    assert state["epoch"] == 1 and state["optimizer_iterations"] == 6

    resumed = _run_training(script, [tiny_preset_dir, tokens, checkpointer.prefix, tmp_path / "resumed.json"], env)
    _finish(resumed)
    straight = _run_training(script, [tiny_preset_dir, tokens, "runs/test/straight", tmp_path / "straight.json"], env)
    _finish(straight)

    resumed_result = json.loads((tmp_path / "resumed.json").read_text())
    straight_result = json.loads((tmp_path / "straight.json").read_text())
    assert resumed_result["resumed_from_epoch"] == 1 and resumed_result["epochs_run"] == 2
    assert straight_result["resumed_from_epoch"] is None and straight_result["epochs_run"] == 3
    assert resumed_result["iterations"] == straight_result["iterations"] == 18
    assert checkpointer.latest() == {"epoch": 3, "path": checkpointer.epoch_prefix(3)}
    np.testing.assert_allclose(resumed_result["loss"], straight_result["loss"][1:], rtol=1e-5)
    resumed_vars = np.load(str(tmp_path / "resumed.json") + ".npz")
    straight_vars = np.load(str(tmp_path / "straight.json") + ".npz")
    assert resumed_vars.files == straight_vars.files
    for name in straight_vars.files:  # weights, u, precision, dropout seed states
        np.testing.assert_allclose(resumed_vars[name], straight_vars[name], rtol=1e-5, atol=1e-6)


def test_restore_without_checkpoint_returns_none_and_keep_last_prunes(tiny_preset_dir, object_store):
    model = EncoderClassifier(load_backbone(tiny_preset_dir), num_classes=2, head="softmax")
    model.compile(optimizer=build_optimizer(10), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    checkpointer = S3Checkpointer(object_store, "runs/x/ckpt", keep_last=1)
    assert checkpointer.restore(model) is None
    checkpointer.save(model, epochs_done=1)
    checkpointer.save(model, epochs_done=2)
    assert list(object_store.list_keys("runs/x/ckpt/epoch-0001/")) == []
    assert len(list(object_store.list_keys("runs/x/ckpt/epoch-0002/"))) == 3
    object_store.put_bytes("runs/x/ckpt/epoch-0002/rng.npz", b"tampered")
    with pytest.raises(Exception, match="corrupted"):
        checkpointer.restore(model)


# -- frozen encoder: embed once, train the head -----------------------------------------------
def test_frozen_encoder_trains_only_the_head_on_cached_embeddings(tiny_preset_dir, intent_data):
    x, y = intent_data
    model = EncoderClassifier(load_backbone(tiny_preset_dir), num_classes=4, head="sngp",
                              freeze_backbone=True, num_inducing=32)
    backbone_before = [np.array(w) for w in model.backbone.get_weights()]
    head_before = [np.array(w) for w in model.hidden.get_weights()]

    embeddings = model.embedding_model().predict(x, verbose=0)
    assert embeddings.shape == (len(y), model.encoder_dim)
    head = model.head_model()
    result = train_classifier(head, embeddings, y, cfg=TrainSettings(epochs=3, batch_size=8, learning_rate=1e-2))

    assert result.epochs_run == 3
    for before, after in zip(backbone_before, model.backbone.get_weights()):
        np.testing.assert_array_equal(before, after)
    assert any(not np.allclose(b, a) for b, a in zip(head_before, model.hidden.get_weights()))
    # The full model uses the trained head: same (mean-field) logits as head(embedding).
    np.testing.assert_allclose(model.predict(x, verbose=0), head.predict(embeddings, verbose=0), atol=1e-5)


def test_head_rate_moves_the_head_faster_and_leaves_the_encoder_at_the_base_rate(tiny_preset_dir, intent_data):
    """Discriminative rates: with the encoder's rate at zero-ish and the head's 1000x, only the head
    moves; the multiplier reaches exactly the head's variables."""
    x, y = intent_data

    def trained(multiplier: float):
        set_seed(0)
        model = EncoderClassifier(load_backbone(tiny_preset_dir), num_classes=4, head="softmax", dropout=0.0)
        before = [np.array(v.numpy()) for v in model.trainable_weights]
        settings = TrainSettings(epochs=1, batch_size=8, learning_rate=1e-7, warmup_fraction=0.0, seed=0,
                                 weight_decay=0.0, head_layers=EncoderClassifier.HEAD_LAYERS,
                                 head_learning_rate_multiplier=multiplier)
        train_classifier(model, x, y, cfg=settings)
        # Keyed by position and path without the model's own (numbered) name: both models are built
        # the same way, so position i is the same variable in each.
        return {(i, w.path.split("/", 1)[1]): float(np.abs(np.array(w.numpy()) - before[i]).max())
                for i, w in enumerate(model.trainable_weights)}

    plain, fast = trained(1.0), trained(1e5)
    head = [key for key in fast if set(key[1].split("/")) & set(EncoderClassifier.HEAD_LAYERS)]
    encoder = [p for p in fast if p not in head]
    assert head and encoder
    assert min(fast[p] for p in head) > 100 * max(plain[p] for p in head)
    assert max(fast[p] for p in encoder) < 1e-4  # the encoder still moves at 1e-7


def test_length_bucketing_trims_batches_and_sees_every_row_once(tiny_preset_dir, tokenizer):
    texts = ["hi", "book a flight to the airport tomorrow morning please", "set a timer", "play",
             "what is my account balance today", "turn up the volume of the music a lot"] * 20
    x = encode_texts(tokenizer, texts, sequence_length=32)
    y = np.arange(len(texts)) % 4
    order = np.random.default_rng(0).permutation(len(texts))
    batches = LengthBucketedBatches(x, y, order, batch_size=8, seed=(0, 0), window=4)
    seen = np.concatenate(batches.batches)
    assert sorted(seen.tolist()) == list(range(len(texts)))
    lengths = token_lengths(x["padding_mask"])
    for index in range(len(batches)):
        inputs, labels = batches[index]
        rows = batches.batches[index]
        width = inputs["token_ids"].shape[1]
        assert width % 8 == 0 and width >= lengths[rows].max() and width <= 32
        np.testing.assert_array_equal(inputs["token_ids"], x["token_ids"][rows, :width])
        np.testing.assert_array_equal(labels, y[rows])
    assert batches.padded_fraction() < 1.0 - lengths.sum() / (len(texts) * 32)
    # The same (seed, epoch) gives the same batches.
    again = LengthBucketedBatches(x, y, order, batch_size=8, seed=(0, 0), window=4)
    assert all(np.array_equal(a, b) for a, b in zip(batches.batches, again.batches))


def test_pairs_are_bucketed_by_their_longer_text_and_both_sides_share_one_width(tokenizer):
    short = ["hi", "play", "set a timer", "stop"]
    long = ["book a flight to the airport tomorrow morning please and then a taxi home",
            "what is my account balance today and what was it yesterday evening"]
    left = encode_texts(tokenizer, (short + long) * 8, sequence_length=32)
    right = encode_texts(tokenizer, (long + short) * 8, sequence_length=32)  # some pairs short + long
    x = {f"{side}_{name}": arrays[name] for side, arrays in (("left", left), ("right", right)) for name in arrays}
    y = np.linspace(0.0, 1.0, len(x["left_token_ids"])).astype("float32")
    batches = LengthBucketedBatches(x, y, np.arange(len(y)), batch_size=4, seed=(1, 0))
    assert sorted(np.concatenate(batches.batches).tolist()) == list(range(len(y)))
    longer = np.maximum(token_lengths(left["padding_mask"]), token_lengths(right["padding_mask"]))
    widths = set()
    for index in range(len(batches)):
        inputs, targets = batches[index]
        rows = batches.batches[index]
        width = inputs["left_token_ids"].shape[1]
        widths.add(width)
        assert {a.shape[1] for a in inputs.values()} == {width}  # one width for both sides
        assert width >= longer[rows].max() and width % 8 == 0
        np.testing.assert_array_equal(inputs["right_padding_mask"], x["right_padding_mask"][rows, :width])
        np.testing.assert_array_equal(targets, y[rows])
    assert len(widths) > 1 and 0.0 < batches.padded_fraction() < 1.0
    with pytest.raises(ValueError, match="left_/right_padding_mask"):
        LengthBucketedBatches({"left_token_ids": x["left_token_ids"]}, y, np.arange(len(y)), 4, seed=(0, 0))


def test_bucketed_training_learns_and_gives_the_same_model_shape(tiny_preset_dir, tokenizer):
    # Short and long texts, so that batches have different widths (8, 16, 24).
    texts = [t for label in INTENTS for t in INTENTS[label]]
    longer = [f"{t} and then please also {t} right now" for t in texts]
    x = encode_texts(tokenizer, (texts + longer) * 3, sequence_length=24)
    y = np.array([label for label in INTENTS for _ in INTENTS[label]] * 6)
    widths = {LengthBucketedBatches(x, y, np.arange(len(y)), 8, seed=(0, 0)).batch_length(rows)
              for rows in np.array_split(np.arange(len(y)), 9)}
    assert len(widths) > 1
    set_seed(0)
    model = EncoderClassifier(load_backbone(tiny_preset_dir), num_classes=4, head="sngp")
    settings = TrainSettings(epochs=4, batch_size=8, learning_rate=3e-3, seed=0, length_bucketing=True,
                             head_layers=EncoderClassifier.HEAD_LAYERS, head_learning_rate_multiplier=3.0)
    result = train_classifier(model, x, y, x, y, cfg=settings)
    assert result.history["loss"][-1] < result.history["loss"][0]
    assert np.asarray(model.predict(x, verbose=0)).shape == (len(y), 4)


def test_prediction_by_length_equals_full_width_prediction_in_input_order(tiny_preset_dir, tokenizer):
    texts = [t for label in INTENTS for t in INTENTS[label]]
    longer = [f"{t} and then please also {t} right now" for t in texts]
    mixed = [t for pair in zip(texts, longer) for t in pair]  # widths alternate row by row
    x = encode_texts(tokenizer, mixed, sequence_length=32)
    assert len({min(32, -(-n // 8) * 8) for n in token_lengths(x["padding_mask"])}) > 1
    set_seed(0)
    model = EncoderClassifier(load_backbone(tiny_preset_dir), num_classes=4, head="sngp")
    full = np.asarray(model.predict(x, batch_size=4, verbose=0))
    trimmed = predict_by_length(model, x, batch_size=4)
    np.testing.assert_allclose(trimmed, full, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.predict_embeddings(x, batch_size=4),
                               np.asarray(model.embedding_model().predict(x, batch_size=4, verbose=0)),
                               rtol=1e-4, atol=1e-5)
