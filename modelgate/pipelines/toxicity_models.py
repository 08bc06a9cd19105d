"""The toxicity pipeline's two model families behind one interface: build, train, stage, load.

- ``encoder``: a pretrained encoder (default all-mpnet-base-v2; or MiniLM) with LoRA on its attention and a
  softmax classification head (``modelgate.models.lora``).
- ``causal_lm``: a keras-hub causal LM (Gemma presets) with LoRA, scored by the probability of each
  label token after the prompt (``modelgate.models.causal_lm``).

The family follows from the preset (``family: auto``). A staged model directory holds either the
whole model (``model.keras``, LoRA merged into the kernels) or, when the base is a known preset,
only the adapter and the identity of its base (``modelgate.models.adapters``); ``load_staged``
reads both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras_hub  # also registers the keras-hub classes a whole model deserializes
import numpy as np
from keras_hub.src.utils.preset_utils import get_preset_loader, list_subclasses

from modelgate.artifacts import (
    INFERENCE_FILE,
    LABELS_FILE,
    PREPROCESSOR_DIR,
    load_model_dir,
    load_tokenizer_dir,
    read_inference,
    save_model_dir,
    save_tokenizer,
    write_inference,
)
from modelgate.models.adapters import (
    base_identity,
    is_known_preset,
    load_adapter_weights,
    read_identity,
    save_adapter,
    verify_base,
)
from modelgate.models.backbones import load_backbone, resolve_preset
from modelgate.models.causal_lm import PromptTemplate, build_causal_lm, encode_prompts, label_token_ids, score_labels
from modelgate.models.lora import build_lora_encoder_classifier, head_layers
from modelgate.pipelines.classification import predict_arrays, softmax
from modelgate.preprocess import encode_texts

ENCODER, CAUSAL_LM = "encoder", "causal_lm"
WHOLE, ADAPTER = "whole", "adapter"


def preset_family(preset: str) -> str:
    """"causal_lm" when keras-hub has a CausalLM task for the preset's backbone, else "encoder"."""
    backbone_cls = get_preset_loader(resolve_preset(preset)).check_backbone_class()
    for task in list_subclasses(keras_hub.models.CausalLM):
        if getattr(task, "backbone_cls", None) is backbone_cls:
            return CAUSAL_LM
    return ENCODER


def storage_for(preset: str, requested: str) -> str:
    """Where the base goes: "adapter" (identity only) for a known preset, else "whole"."""
    if requested == "auto":
        return ADAPTER if is_known_preset(preset) else WHOLE
    return requested


def build_model(family: str, preset: str, rank: int, num_classes: int, dropout: float, hidden_dim=None):
    if family == CAUSAL_LM:
        return build_causal_lm(preset, rank)
    return build_lora_encoder_classifier(load_backbone(preset), num_classes, rank, dropout, hidden_dim)


def stage_model(directory: Path, model, tokenizer, labels: list[str], inference: dict[str, Any]) -> Path:
    """Lay out a staged model directory: whole, or adapter + base identity (see module docstring)."""
    directory = Path(directory)
    if inference["storage"] == WHOLE:
        return save_model_dir(directory, model, tokenizer, labels, inference)
    directory.mkdir(parents=True, exist_ok=True)
    identity = base_identity(inference["preset"], inference["family"], inference["lora_rank"])
    heads = head_layers(model) if inference["family"] == ENCODER else None
    save_adapter(directory, model.backbone, identity, heads)
    save_tokenizer(tokenizer, directory / PREPROCESSOR_DIR)
    (directory / LABELS_FILE).write_text(json.dumps(list(labels), indent=1))
    write_inference(directory, {**inference, "base_sha256": identity["sha256"]})
    return directory


@dataclass
class ToxicityModel:
    """A loaded toxicity model: texts in, class probabilities (class order of ``labels``) out."""

    family: str
    model: Any
    tokenizer: Any
    labels: list[str]
    inference: dict[str, Any] = field(default_factory=dict)

    def encode(self, texts: list[str]) -> dict[str, np.ndarray]:
        length = int(self.inference["sequence_length"])
        if self.family == CAUSAL_LM:
            return encode_prompts(self.tokenizer, PromptTemplate.from_dict(self.inference["prompt"]), texts, length)
        return encode_texts(self.tokenizer, texts, length)

    def probabilities(self, arrays: dict[str, np.ndarray], batch_size: int = 64) -> np.ndarray:
        if self.family == CAUSAL_LM:
            template = PromptTemplate.from_dict(self.inference["prompt"])
            ids = label_token_ids(self.tokenizer, template.labels)
            return score_labels(self.model, arrays, ids, batch_size=batch_size)
        return softmax(predict_arrays(self.model, arrays, batch_size=batch_size))

    def predict_texts(self, texts: list[str]) -> np.ndarray:
        return self.probabilities(self.encode(list(texts)))


def load_staged(directory: Path) -> ToxicityModel:
    """Load a staged or registered toxicity model directory (whole or adapter)."""
    directory = Path(directory)
    inference = read_inference(directory)
    family = inference["family"]
    if inference["storage"] == WHOLE:
        loaded = load_model_dir(directory)
        return ToxicityModel(family, loaded.model, loaded.tokenizer, loaded.labels, loaded.inference)
    identity = read_identity(directory)
    verify_base(identity)
    labels = json.loads((directory / LABELS_FILE).read_text())
    model = build_model(family, identity["preset"], int(identity["lora_rank"]), len(labels),
                        float(inference.get("dropout", 0.0)), inference.get("hidden_dim"))
    load_adapter_weights(directory, model.backbone, head_layers(model) if family == ENCODER else None)
    tokenizer = load_tokenizer_dir(directory / PREPROCESSOR_DIR)
    return ToxicityModel(family, model, tokenizer, labels, inference)


__all__ = [
    "ADAPTER", "CAUSAL_LM", "ENCODER", "INFERENCE_FILE", "WHOLE", "ToxicityModel", "build_model",
    "load_staged", "preset_family", "stage_model", "storage_for",
]
