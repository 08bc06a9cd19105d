"""The toxicity pipeline's contrastive stage (SetFit's): the pairs it trains on, the stage tuning
the classifier's own LoRA factors (and pulling same-label comments together), its configuration,
and ``train()`` with the stage on against a real SeaweedFS, on tiny random backbones."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures_ethos import fixture_words, make_ethos_rows, write_ethos_mirror
from keras import ops
from test_toxicity_flow import write_config
from tiny_preset import build_tiny_preset

from modelgate.config import ConfigError
from modelgate.models.lora import head_layers, lora_layers
from modelgate.models.siamese import (
    SentenceEncoder,
    SiameseSimilarity,
    cosine_matrix_np,
    cosine_similarity_np,
    pair_inputs,
)
from modelgate.pipelines import toxicity
from modelgate.pipelines import toxicity_contrastive as tc
from modelgate.pipelines import toxicity_models as tm
from modelgate.pipelines.stages import train_key
from modelgate.training import set_seed
from modelgate.training.contrastive_pairs import contrastive_pairs

LABELS = np.array([0, 1, 1, 0, 0, 1, 0, 0, 1, 0, 0])  # 7 of label 0, 4 of label 1


# -- pairs -------------------------------------------------------------------------------------
def test_pairs_are_deterministic_balanced_and_never_pair_a_comment_with_itself():
    pairs = contrastive_pairs(LABELS, 6, seed=3)
    again = contrastive_pairs(LABELS, 6, seed=3)
    other = contrastive_pairs(LABELS, 6, seed=4)
    for name in ("left", "right", "targets"):
        assert np.array_equal(getattr(pairs, name), getattr(again, name))
    assert not np.array_equal(pairs.right, other.right)

    assert len(pairs) == len(LABELS) * 6
    assert (pairs.left != pairs.right).all()
    same = LABELS[pairs.left] == LABELS[pairs.right]
    assert np.array_equal(pairs.targets, same.astype(np.float32))
    # Every comment is in 3 rounds, each with one same-label and one other-label partner.
    for row in range(len(LABELS)):
        mine = pairs.targets[pairs.left == row]
        assert len(mine) == 6 and mine.sum() == 3, (row, mine)


def test_partners_are_drawn_from_all_of_a_label():
    """Many rounds reach every other comment of the label and every comment of the other label."""
    pairs = contrastive_pairs(LABELS, 200, seed=0)
    for row, label in enumerate(LABELS):
        partners = pairs.right[pairs.left == row]
        targets = pairs.targets[pairs.left == row]
        expected_positive = set(np.flatnonzero(LABELS == label)) - {row}
        assert set(partners[targets == 1.0]) == expected_positive
        assert set(partners[targets == 0.0]) == set(np.flatnonzero(LABELS != label))


def test_pairs_refuse_a_label_with_one_comment_and_bad_counts():
    with pytest.raises(ValueError, match="at least 2 examples of every label.*label 1 has 1"):
        contrastive_pairs([0, 0, 1, 0], 2, seed=0)
    with pytest.raises(ValueError, match="at least 2 labels"):
        contrastive_pairs([1, 1, 1], 2, seed=0)
    with pytest.raises(ValueError, match="even number >= 2.*got 3"):
        contrastive_pairs(LABELS, 3, seed=0)


# -- the stage on a model ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return build_tiny_preset(tmp_path_factory.mktemp("preset") / "tiny-bert", extra_words=fixture_words())


def _comments(preset, count=40):
    from modelgate.models import load_tokenizer
    from modelgate.preprocess import encode_texts

    rows = make_ethos_rows(count)
    x = encode_texts(load_tokenizer(str(preset)), [text for text, _ in rows], 16)
    return x, np.array([fraction >= 0.5 for _, fraction in rows], dtype=np.int32)


def _classifier(preset):
    set_seed(7)  # as train() does: the same seed, the same head and LoRA factors
    return tm.build_model(tm.ENCODER, str(preset), 4, 2, 0.1)


def _values(variables) -> list[np.ndarray]:
    return [ops.convert_to_numpy(v) for v in variables]


def _lora_factors(model) -> list[np.ndarray]:
    return _values([w for layer in lora_layers(model.backbone) for w in (layer.lora_kernel_a, layer.lora_kernel_b)])


def _head(model) -> list[np.ndarray]:
    return _values([w for layer in head_layers(model).values() for w in layer.weights])


def _label_gap(model, x, y) -> float:
    """Mean cosine of same-label pairs minus that of different-label pairs (mean-pooled embeddings)."""
    cosine = cosine_matrix_np(SentenceEncoder(model.backbone, pooling="mean").embed_arrays(x))
    same = y[:, None] == y[None, :]
    off_diagonal = ~np.eye(len(y), dtype=bool)
    return float(cosine[same & off_diagonal].mean() - cosine[~same].mean())


def test_siamese_cosine_mode_outputs_the_plain_cosine(tiny_bert):
    from modelgate.models import load_backbone

    x, _ = _comments(tiny_bert, count=6)
    encoder = SentenceEncoder(load_backbone(str(tiny_bert)), pooling="mean")
    left, right = ({k: v[rows] for k, v in x.items()} for rows in ([0, 1, 2], [3, 4, 2]))
    model = SiameseSimilarity(encoder, similarity="cosine")
    got = ops.convert_to_numpy(model(pair_inputs(left, right, encoder.input_names)))
    expected = cosine_similarity_np(encoder.embed_arrays(left), encoder.embed_arrays(right))
    assert got == pytest.approx(expected, abs=1e-5) and got[2] == pytest.approx(1.0, abs=1e-5)
    assert SiameseSimilarity.from_config(model.get_config()).similarity == "cosine"
    with pytest.raises(ValueError, match="similarity must be one of angular, cosine, got 'dot'"):
        SiameseSimilarity(encoder, similarity="dot")


def test_stage_tunes_the_classifiers_own_lora_factors_and_not_its_head(tiny_bert):
    x, y = _comments(tiny_bert)
    untuned, tuned = _classifier(tiny_bert), _classifier(tiny_bert)
    # One start for both, copied rather than re-drawn: the initialisers draw from Python's global
    # RNG, which other threads of the test process (Prefect's clients) may draw from in between.
    untuned.set_weights(tuned.get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(_lora_factors(untuned), _lora_factors(tuned)))
    settings = tc.ContrastiveConfig(pairs_per_comment=4, epochs=2, learning_rate=1e-2, batch_size=16)
    result = tc.tune_encoder(settings, tuned, x, y, seed=7)
    assert result.epochs_run == 2 and len(result.history["loss"]) == 2

    changed = [not np.allclose(a, b) for a, b in zip(_lora_factors(untuned), _lora_factors(tuned))]
    assert len(changed) == 8 and all(changed), changed  # 2 layers x query/value x (A, B)
    assert all(np.array_equal(a, b) for a, b in zip(_head(untuned), _head(tuned)))
    # The classifier reads the tuned encoder: its logits move although its head did not.
    batch = {k: v[:8] for k, v in x.items()}
    assert not np.allclose(ops.convert_to_numpy(untuned(batch)), ops.convert_to_numpy(tuned(batch)), atol=1e-4)
    assert tc.tune_encoder(tc.ContrastiveConfig(), untuned, x, y, seed=7) is None  # off: nothing trains


def test_stage_pulls_same_label_comments_together(tiny_bert):
    x, y = _comments(tiny_bert)
    model = _classifier(tiny_bert)
    before = _label_gap(model, x, y)
    settings = tc.ContrastiveConfig(pairs_per_comment=8, epochs=10, learning_rate=1e-2, batch_size=16)
    result = tc.tune_encoder(settings, model, x, y, seed=7)
    after = _label_gap(model, x, y)
    assert result.history["loss"][-1] < result.history["loss"][0]
    assert after > before + 0.05, (before, after)


# -- configuration -----------------------------------------------------------------------------
@pytest.mark.parametrize("override, message", [
    ("train.contrastive.pairs_per_comment=3", "train.contrastive.pairs_per_comment: Value error, must be even"),
    ("train.contrastive.pairs_per_comment=-2", "train.contrastive.pairs_per_comment: Input should be greater"),
    ("train.contrastive.epochs=0", "train.contrastive.epochs: Input should be greater"),
    ("train.contrastive.learning_rate=0", "train.contrastive.learning_rate: Input should be greater"),
    ("train.contrastive.batch_size=0", "train.contrastive.batch_size: Input should be greater"),
    ("train.contrastive.pair_per_comment=2", "train.contrastive.pair_per_comment: unknown key"),
])
def test_config_refuses_bad_values(override, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")) as caught:
        toxicity.PIPELINE.load_config("default", None, [override])
    assert f"--set {override}" in str(caught.value) and "\n" not in str(caught.value)


def test_config_off_by_default_and_part_of_the_run_key_when_on():
    default = toxicity.PIPELINE.load_config("default")
    assert default.train.contrastive.pairs_per_comment == 0
    # Off, the section is not in the dump: run keys of earlier runs stay valid.
    assert "contrastive" not in default.model_dump(mode="json")["train"]
    on = toxicity.PIPELINE.load_config("default", None, ["train.contrastive.pairs_per_comment=2"])
    assert on.model_dump(mode="json")["train"]["contrastive"]["pairs_per_comment"] == 2
    assert on.digest("train") != default.digest("train")
    lr = toxicity.PIPELINE.load_config("default", None, ["train.contrastive.pairs_per_comment=2",
                                                          "train.contrastive.learning_rate=0.01"])
    assert lr.digest("train") != on.digest("train")


def test_few_shot_profile_is_the_small_setting_with_the_stage_on():
    """The profile is the same run as `--set train.examples=200 --set
    train.contrastive.pairs_per_comment=20` (one run key), so either reuses the other's training;
    only its threshold (chosen for it on held-out comments) differs from the default's."""
    profile = toxicity.PIPELINE.load_config("few-shot")
    assert profile.train.examples == 200 and profile.train.contrastive.pairs_per_comment == 20
    assert profile.train.contrastive.length_bucketing and profile.evaluate.threshold == 0.5
    assert profile.train.epochs == 10  # the rest as the default
    spelled = toxicity.PIPELINE.load_config("default", None, ["train.examples=200",
                                                               "train.contrastive.pairs_per_comment=20"])
    assert profile.digest("train") == spelled.digest("train")
    assert profile.digest("model", "data") == spelled.digest("model", "data")


def test_stage_refuses_a_causal_lm():
    with pytest.raises(ValueError, match="pairs_per_comment is 2, but the model is a causal_lm: .*encoders only"):
        tc.check_family(tc.ContrastiveConfig(pairs_per_comment=2), tm.CAUSAL_LM)
    tc.check_family(tc.ContrastiveConfig(), tm.CAUSAL_LM)  # off: nothing to refuse
    tc.check_family(tc.ContrastiveConfig(pairs_per_comment=2), tm.ENCODER)


# -- train() end to end ------------------------------------------------------------------------
@pytest.mark.slow
def test_train_with_the_stage_on(tmp_path, object_store, tiny_bert, capsys):
    stage = ["train.epochs=1", "train.contrastive.pairs_per_comment=4", "train.contrastive.epochs=2",
             "train.contrastive.learning_rate=0.01"]
    path = write_config(tmp_path, write_ethos_mirror(tmp_path / "mirror"), tiny_bert)
    cfg = toxicity.PIPELINE.load_config("default", path, stage)
    features = toxicity.preprocess(cfg, object_store, toxicity.validate(
        cfg, object_store, toxicity.ingest(cfg, object_store), "run-contrastive"))
    trained = toxicity.train(cfg, object_store, features)
    assert not trained.reused and trained.epochs_run == 1
    losses = trained.history[tc.HISTORY_KEY]
    assert len(losses) == 2 and all(np.isfinite(losses)), losses
    assert len(trained.history["loss"]) == 1  # the classification epoch
    logged = capsys.readouterr().out
    assert "contrastive epoch 1/2" in logged and "contrastive epoch 2/2" in logged
    assert f"{features.rows['train'] * 4} pairs" in logged
    evaluation = toxicity.evaluate(cfg, object_store, trained, features, "run-contrastive")
    assert set(evaluation.metrics) == {"f1", "roc_auc", "accuracy"}

    off = toxicity.PIPELINE.load_config("default", path, ["train.epochs=1"])
    assert train_key(off, features) != trained.train_key
    again = toxicity.train(cfg, object_store, features)
    assert again.reused and again.uri == trained.uri

    causal = toxicity.PIPELINE.load_config("default", path, [*stage, "model.family=causal_lm"])
    with pytest.raises(ValueError, match="encoders only"):
        toxicity.train(causal, object_store, features)
