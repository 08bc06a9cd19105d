"""LoRA on a keras-hub encoder: only the low-rank factors and the head train, and an adapter
round-trips through its files onto a verified base (and is refused on a different one)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from fixtures_ethos import fixture_words
from tiny_preset import build_tiny_preset

# The tiny BERT: 2 layers, hidden 16, 2 heads of 8. LoRA rank 4 on query and value, whose kernels
# are (16, 2, 8): factor a (16, 2, 4) = 128 and factor b (4, 8) = 32 parameters.
LORA_PARAMS = 2 * 2 * (128 + 32)
HEAD_PARAMS = (16 * 16 + 16) + (16 * 2 + 2)  # dense tanh + logits


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return build_tiny_preset(tmp_path_factory.mktemp("preset") / "tiny-bert", extra_words=fixture_words())


def _arrays(preset, texts):
    from modelgate.models import load_tokenizer
    from modelgate.preprocess import encode_texts

    return encode_texts(load_tokenizer(str(preset)), texts, 16)


def test_only_lora_factors_and_head_are_trainable(tiny_bert):
    from modelgate.models import load_backbone
    from modelgate.models.lora import (
        build_lora_encoder_classifier,
        count_parameters,
        lora_parameter_count,
    )

    model = build_lora_encoder_classifier(load_backbone(str(tiny_bert)), num_classes=2, rank=4)
    assert lora_parameter_count(model) == LORA_PARAMS
    assert count_parameters(model.trainable_weights) == LORA_PARAMS + HEAD_PARAMS
    names = {w.path.split("/")[-1] for w in model.trainable_weights}
    assert names == {"lora_kernel_a", "lora_kernel_b", "kernel", "bias"}
    # every backbone weight besides the factors (embeddings, kernels, biases, norms) is frozen
    backbone_trainable = {w.path for w in model.backbone.trainable_weights}
    assert backbone_trainable and all("lora_kernel" in p for p in backbone_trainable)


def test_rank_must_be_positive(tiny_bert):
    from modelgate.models import load_backbone
    from modelgate.models.lora import enable_backbone_lora

    with pytest.raises(ValueError, match="rank must be >= 1"):
        enable_backbone_lora(load_backbone(str(tiny_bert)), 0)


def _trained_like(model):
    """Give the factors and head non-trivial values, as training would."""
    rng = np.random.default_rng(0)
    for weight in model.trainable_weights:
        weight.assign(rng.normal(0, 0.3, size=weight.shape).astype("float32"))


def test_adapter_round_trip_and_base_verification(tiny_bert, tmp_path):
    from modelgate.models import load_backbone
    from modelgate.models.adapters import (
        BaseModelMismatch,
        base_identity,
        load_adapter_weights,
        read_identity,
        save_adapter,
        verify_base,
    )
    from modelgate.models.lora import build_lora_encoder_classifier, head_layers

    base = tmp_path / "base"
    shutil.copytree(tiny_bert, base)
    texts = ["i hate people, they are stupid", "i love dogs, they are nice"]
    x = _arrays(base, texts)
    model = build_lora_encoder_classifier(load_backbone(str(base)), 2, rank=4)
    _trained_like(model)
    expected = np.asarray(model.predict(x, verbose=0))

    identity = base_identity(str(base), "encoder", 4)
    save_adapter(tmp_path / "staged", model.backbone, identity, head_layers(model))
    assert sorted(p.name for p in (tmp_path / "staged" / "adapter").iterdir()) == [
        "base.json", "head.weights.npz", "lora.lora.h5"]
    assert read_identity(tmp_path / "staged")["sha256"] == identity["sha256"]

    fresh = build_lora_encoder_classifier(load_backbone(str(base)), 2, rank=4)
    assert not np.allclose(np.asarray(fresh.predict(x, verbose=0)), expected)
    load_adapter_weights(tmp_path / "staged", fresh.backbone, head_layers(fresh))
    np.testing.assert_allclose(np.asarray(fresh.predict(x, verbose=0)), expected, rtol=1e-5, atol=1e-5)

    verify_base(identity)
    (base / "config.json").write_text((base / "config.json").read_text().replace("16", "16 "))
    with pytest.raises(BaseModelMismatch, match="refusing"):
        verify_base(identity)


def test_whole_model_file_keeps_lora_merged(tiny_bert, tmp_path):
    import keras

    import modelgate.models  # noqa: F401
    from modelgate.models import load_backbone
    from modelgate.models.lora import build_lora_encoder_classifier

    x = _arrays(tiny_bert, ["i hate people, they are stupid"])
    model = build_lora_encoder_classifier(load_backbone(str(tiny_bert)), 2, rank=4)
    _trained_like(model)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras", safe_mode=True, compile=False)
    np.testing.assert_allclose(np.asarray(loaded.predict(x, verbose=0)),
                               np.asarray(model.predict(x, verbose=0)), rtol=1e-5, atol=1e-5)


def test_known_presets_are_stored_as_adapters(tiny_bert):
    from modelgate.models.adapters import is_known_preset
    from modelgate.pipelines.toxicity_models import preset_family, storage_for

    assert is_known_preset("all-minilm-l6-v2")
    assert is_known_preset("gemma_instruct_2b_en")
    assert is_known_preset("hf://google/gemma-2b")
    assert not is_known_preset(str(tiny_bert))
    assert storage_for(str(tiny_bert), "auto") == "whole"
    assert storage_for("all-minilm-l6-v2", "auto") == "adapter"
    assert storage_for(str(tiny_bert), "adapter") == "adapter"
    assert preset_family(str(tiny_bert)) == "encoder"
