"""The "agile classifier" on a keras-hub causal LM: a prompt, LoRA tuning, label-token scoring.

Prompt (``PromptTemplate``)::

    <bos>INSTRUCTIONS:
    * LABEL_0
    * LABEL_1
    SEPARATORText: COMMENTSEPARATORPrediction:

Training text = prompt + " LABEL" + <eos>; the model is tuned with LoRA on the language-modelling
loss of that text. Scoring reads the next-token logits after "Prediction:" and takes the softmax
over the label tokens only, so each label must be one known token of the vocabulary (checked, with
a clear error). Texts are tokenized once into arrays; the comment (never the instructions or the
"Prediction:" suffix) is truncated to fit the sequence length.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import keras
import keras_hub
import numpy as np
from keras import ops

from modelgate.models.backbones import resolve_preset
from modelgate.models.lora import enable_backbone_lora

DEFAULT_INSTRUCTIONS = "Classify the following text into one of the following classes"


class LabelTokenError(ValueError):
    """A label is not exactly one known token of the model's vocabulary."""


@dataclass(frozen=True)
class PromptTemplate:
    labels: tuple[str, ...] = ("no", "yes")  # in class order: index 1 is the positive class
    instructions: str = DEFAULT_INSTRUCTIONS
    separator: str = "<separator>"

    def prefix(self) -> str:
        classes = "\n".join(f"* {label}" for label in self.labels)
        return f"{self.instructions}:\n{classes}\n{self.separator}Text: "

    def suffix(self) -> str:
        return f"{self.separator}Prediction:"

    def prompt(self, text: str) -> str:
        return self.prefix() + text + self.suffix()

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()

    @classmethod
    def from_dict(cls, data: dict) -> PromptTemplate:
        return cls(labels=tuple(data["labels"]), instructions=data["instructions"], separator=data["separator"])

    def to_dict(self) -> dict:
        return {"labels": list(self.labels), "instructions": self.instructions, "separator": self.separator}


def _token_lists(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token ids per text as Python lists, whatever the backend's tensor type."""
    if not texts:
        return []
    out = tokenizer(list(texts))
    if hasattr(out, "to_list"):
        out = out.to_list()
    return [[int(t) for t in ids] for ids in (np.asarray(o).tolist() if not isinstance(o, list) else o for o in out)]


def label_token_ids(tokenizer, labels: Sequence[str]) -> list[int]:
    """The id of each label as the model would generate it after "Prediction:" (" LABEL")."""
    unknown = getattr(tokenizer, "unk_token_id", None)
    if unknown is None and hasattr(tokenizer, "token_to_id"):
        try:
            unknown = tokenizer.token_to_id("<unk>")
        except (KeyError, ValueError):
            unknown = None
    ids = []
    for label, tokens in zip(labels, _token_lists(tokenizer, [f" {label}" for label in labels])):
        if len(tokens) != 1 or tokens[0] == unknown:
            pieces = [tokenizer.id_to_token(t) for t in tokens]
            raise LabelTokenError(
                f"label {label!r} is not a single known token of the vocabulary: \" {label}\" "
                f"tokenizes to {pieces}; choose labels that are one token each (e.g. 'yes'/'no')"
            )
        ids.append(tokens[0])
    if len(set(ids)) != len(ids):
        raise LabelTokenError(f"labels {list(labels)} map to the same token ids {ids}")
    return ids


def encode_prompts(
    tokenizer,
    template: PromptTemplate,
    texts: Sequence[str],
    sequence_length: int,
    label_indices: Sequence[int] | None = None,
) -> dict[str, np.ndarray]:
    """``token_ids`` / ``padding_mask`` [N, sequence_length] of the prompts, right-padded.

    With ``label_indices`` each row is a training text (prompt + label token + end token) and
    ``completion_mask`` marks the label and end tokens; without them, the prompt alone, for
    scoring. Room for label and end token is kept in both, so a comment is truncated the same way
    for training and scoring.
    """
    start, end, pad = tokenizer.start_token_id, tokenizer.end_token_id, tokenizer.pad_token_id
    if start is None or end is None or pad is None:
        raise ValueError(f"{type(tokenizer).__name__} lacks start, end or pad tokens for causal prompts")
    label_ids = label_token_ids(tokenizer, template.labels)
    prefix, suffix = _token_lists(tokenizer, [template.prefix(), template.suffix()])
    room = sequence_length - 1 - len(prefix) - len(suffix) - 2
    if room < 1:
        raise ValueError(
            f"sequence_length {sequence_length} leaves no room for the comment: the prompt alone "
            f"takes {len(prefix) + len(suffix) + 3} tokens"
        )
    if label_indices is not None and len(label_indices) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(label_indices)} labels")
    token_ids = np.full((len(texts), sequence_length), pad, dtype=np.int32)
    mask = np.zeros((len(texts), sequence_length), dtype=np.int32)
    completion = np.zeros((len(texts), sequence_length), dtype=np.int32)
    for row, ids in enumerate(_token_lists(tokenizer, texts)):
        sequence = [start, *prefix, *ids[:room], *suffix]
        if label_indices is not None:
            completion[row, len(sequence) : len(sequence) + 2] = 1
            sequence += [label_ids[int(label_indices[row])], end]
        token_ids[row, : len(sequence)] = sequence
        mask[row, : len(sequence)] = 1
    arrays = {"token_ids": token_ids, "padding_mask": mask}
    if label_indices is not None:
        arrays["completion_mask"] = completion
    return arrays


def build_causal_lm(preset: str, rank: int):
    """The keras-hub causal LM of ``preset`` (no preprocessor: it takes token arrays) with LoRA."""
    model = keras_hub.models.CausalLM.from_preset(resolve_preset(preset), preprocessor=None)
    enable_backbone_lora(model.backbone, rank)
    return model


def next_token_label_logits(model, token_ids, padding_mask, label_ids):
    """Logits of the label tokens at the position after each prompt's last token: [B, labels]."""
    hidden = model.backbone({"token_ids": token_ids, "padding_mask": padding_mask})
    last = ops.maximum(ops.sum(ops.cast(padding_mask, "int32"), axis=1) - 1, 0)
    final = ops.take_along_axis(hidden, ops.reshape(last, (-1, 1, 1)), axis=1)[:, 0, :]
    vocabulary_logits = model.backbone.token_embedding(final, reverse=True)
    return ops.take(vocabulary_logits, ops.convert_to_tensor(label_ids, dtype="int32"), axis=1)


def score_labels(model, arrays: dict[str, np.ndarray], label_ids: Sequence[int], batch_size: int = 32) -> np.ndarray:
    """Softmax over the label tokens' next-token logits, one forward pass per batch: [N, labels]."""
    count = len(arrays["token_ids"])
    if count == 0:
        return np.zeros((0, len(label_ids)), dtype=np.float32)
    out = []
    for begin in range(0, count, batch_size):
        logits = next_token_label_logits(
            model,
            ops.convert_to_tensor(arrays["token_ids"][begin : begin + batch_size]),
            ops.convert_to_tensor(arrays["padding_mask"][begin : begin + batch_size]),
            list(label_ids),
        )
        out.append(ops.convert_to_numpy(ops.softmax(ops.cast(logits, "float32"), axis=-1)))
    return np.concatenate(out)
