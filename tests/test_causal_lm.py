"""The causal-LM path on a tiny random Gemma with a SentencePiece vocabulary trained here: prompt
building, label tokens, batched label-token scoring, LoRA-only training."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures_ethos import build_tiny_gemma_preset, make_ethos_rows

# Tiny Gemma: 2 layers, hidden 16, 2 query heads and 1 key/value head of 8. LoRA rank 4 on query
# (kernel (2, 16, 8): a (2, 16, 4) = 128, b (4, 8) = 32) and value (kernel (1, 16, 8): a 64, b 32).
LORA_PARAMS = 2 * ((128 + 32) + (64 + 32))


@pytest.fixture(scope="module")
def gemma_preset(tmp_path_factory):
    return str(build_tiny_gemma_preset(tmp_path_factory.mktemp("preset") / "tiny-gemma"))


@pytest.fixture(scope="module")
def tokenizer(gemma_preset):
    from modelgate.models import load_tokenizer

    return load_tokenizer(gemma_preset)


def test_prompt_holds_instructions_labels_separator_text_and_suffix():
    from modelgate.models.causal_lm import PromptTemplate

    prompt = PromptTemplate(("no", "yes")).prompt("i hate dogs")
    assert prompt == (
        "Classify the following text into one of the following classes:\n* no\n* yes\n"
        "<separator>Text: i hate dogs<separator>Prediction:"
    )


def test_labels_must_be_single_known_tokens(tokenizer):
    from modelgate.models.causal_lm import LabelTokenError, label_token_ids

    ids = label_token_ids(tokenizer, ["no", "yes"])
    assert len(set(ids)) == 2 and [tokenizer.id_to_token(i) for i in ids] == ["▁no", "▁yes"]
    with pytest.raises(LabelTokenError, match="'hateful' is not a single known token"):
        label_token_ids(tokenizer, ["no", "hateful"])
    with pytest.raises(LabelTokenError, match="'not hate' is not a single known token"):
        label_token_ids(tokenizer, ["not hate", "yes"])


def test_encoding_truncates_the_comment_not_the_prompt(tokenizer):
    from modelgate.models.causal_lm import (
        PromptTemplate,
        encode_prompts,
        label_token_ids,
    )

    template = PromptTemplate()
    long_text = " ".join(["people"] * 200)
    prompts = encode_prompts(tokenizer, template, ["i hate dogs", long_text], 48)
    training = encode_prompts(tokenizer, template, ["i hate dogs", long_text], 48, label_indices=[1, 0])
    suffix = [int(t) for t in tokenizer([template.suffix()])[0]]
    lengths = prompts["padding_mask"].sum(axis=1)
    assert lengths[1] == 46  # 48 minus the room kept for label + end token
    for row, length in enumerate(lengths):
        assert list(prompts["token_ids"][row, length - len(suffix) : length]) == suffix
        assert prompts["token_ids"][row, 0] == tokenizer.start_token_id
    no, yes = label_token_ids(tokenizer, ["no", "yes"])
    assert list(training["token_ids"][0, lengths[0] : lengths[0] + 2]) == [yes, tokenizer.end_token_id]
    assert list(training["token_ids"][1, lengths[1] : lengths[1] + 2]) == [no, tokenizer.end_token_id]
    with pytest.raises(ValueError, match="no room for the comment"):
        encode_prompts(tokenizer, template, ["x"], 12)


def test_only_lora_factors_train_and_scoring_is_batched(gemma_preset, tokenizer):
    from modelgate.models.causal_lm import (
        PromptTemplate,
        build_causal_lm,
        encode_prompts,
        label_token_ids,
        next_token_label_logits,
        score_labels,
    )
    from modelgate.models.lora import count_parameters, lora_parameter_count
    from modelgate.pipelines.toxicity_models import preset_family

    assert preset_family(gemma_preset) == "causal_lm"
    model = build_causal_lm(gemma_preset, rank=4)
    assert type(model).__name__ == "GemmaCausalLM"
    assert lora_parameter_count(model) == LORA_PARAMS
    assert count_parameters(model.trainable_weights) == LORA_PARAMS

    template = PromptTemplate()
    texts = [text for text, _ in make_ethos_rows(7)]
    arrays = encode_prompts(tokenizer, template, texts, 40)
    ids = label_token_ids(tokenizer, template.labels)
    batched = score_labels(model, arrays, ids, batch_size=4)
    assert batched.shape == (7, 2)
    np.testing.assert_allclose(batched.sum(axis=1), 1.0, rtol=1e-5)
    # The same probabilities as a full forward pass read one row at a time at its last position.
    for row in range(7):
        length = int(arrays["padding_mask"][row].sum())
        logits = np.asarray(model({"token_ids": arrays["token_ids"][row : row + 1, :length],
                                   "padding_mask": arrays["padding_mask"][row : row + 1, :length]}))
        chosen = logits[0, -1, ids]
        expected = np.exp(chosen - chosen.max()) / np.exp(chosen - chosen.max()).sum()
        np.testing.assert_allclose(batched[row], expected, rtol=1e-4, atol=1e-5)
    single = np.asarray(next_token_label_logits(model, arrays["token_ids"][:1], arrays["padding_mask"][:1], ids))
    assert single.shape == (1, 2)


def test_lora_tuning_changes_only_the_factors_and_lowers_the_loss(gemma_preset, tokenizer):
    from modelgate.models.causal_lm import PromptTemplate, build_causal_lm, encode_prompts
    from modelgate.models.lora import lora_layers
    from modelgate.training import TrainResult, TrainSettings
    from modelgate.training.causal_lm import fit_causal_lm

    template = PromptTemplate()
    rows = make_ethos_rows(16)
    labels = [int(value >= 0.5) for _, value in rows]
    model = build_causal_lm(gemma_preset, rank=4)
    frozen = [np.array(w) for w in model.backbone.non_trainable_weights]
    factors_b = [np.array(layer.lora_kernel_b) for layer in lora_layers(model)]
    assert all(not b.any() for b in factors_b)  # LoRA starts as the identity: b = 0
    arrays = encode_prompts(tokenizer, template, [t for t, _ in rows], 40, labels)
    assert arrays["completion_mask"].sum() == 2 * len(rows)  # label + end token of each row
    result = fit_causal_lm(model, arrays, TrainSettings(epochs=3, batch_size=8, learning_rate=3e-2,
                                                        warmup_fraction=0.0))
    assert result.history["loss"][-1] < result.history["loss"][0]
    # The classifier loop's result, so a pipeline records either the same way.
    assert isinstance(result, TrainResult) and result.epochs_run == 3 and result.resumed_from_epoch is None
    assert len(result.history["token_accuracy"]) == 3 and result.seconds > 0 and result.examples_per_second > 0
    assert result.backend and result.device and result.seed == 42
    assert all(np.array(layer.lora_kernel_b).any() for layer in lora_layers(model))
    for weight, value in zip(model.backbone.non_trainable_weights, frozen):
        np.testing.assert_array_equal(np.array(weight), value)  # the base never moved
    with pytest.raises(ValueError, match="loss_on"):
        fit_causal_lm(model, arrays, TrainSettings(epochs=1), loss_on="prompt")
