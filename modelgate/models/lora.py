"""LoRA (low-rank adaptation) on keras-hub backbones, and the encoder classifier that uses it.

``backbone.enable_lora(rank)`` (keras-hub) freezes every backbone weight and adds trainable
low-rank factors ``lora_kernel_a`` / ``lora_kernel_b`` to the attention query and value
projections. It leaves those projections' biases trainable; the recipe trains only the low-rank
factors (plus, for encoders, the classification head), so the biases are frozen here too.

Keras merges the factors into the base kernel when it saves weights (``model.save``,
``save_weights``), so a saved whole model needs no LoRA code to load; the factors themselves are
saved apart with ``backbone.save_lora_weights`` (see ``modelgate.models.adapters``).
"""

from __future__ import annotations

import numpy as np

from modelgate.models.classifier import EncoderClassifier

DEFAULT_RANK = 4


def lora_layers(model) -> list:
    """The layers of ``model`` (at any depth) that carry LoRA factors."""
    return [layer for layer in model._flatten_layers(include_self=True) if getattr(layer, "lora_enabled", False)]


def enable_backbone_lora(backbone, rank: int = DEFAULT_RANK, target_layer_names=None) -> list:
    """Enable LoRA of ``rank`` on a keras-hub backbone; only the low-rank factors stay trainable.

    Returns the LoRA layers. Call it after the backbone is wrapped in its task model: setting
    ``trainable`` on a parent later would make every backbone weight trainable again.
    """
    if int(rank) < 1:
        raise ValueError(f"LoRA rank must be >= 1, got {rank}")
    if not hasattr(backbone, "enable_lora"):
        raise TypeError(f"{type(backbone).__name__} is not a keras-hub backbone with enable_lora()")
    backbone.enable_lora(int(rank), target_layer_names)
    layers = lora_layers(backbone)
    if not layers:
        names = target_layer_names or backbone.default_lora_layer_names()
        raise ValueError(
            f"{type(backbone).__name__} has no layer named {names} that supports LoRA; "
            "pass target_layer_names naming its attention projections"
        )
    for layer in layers:
        bias = getattr(layer, "bias", None)
        if bias is not None:
            bias.trainable = False
    return layers


def count_parameters(variables) -> int:
    return int(sum(int(np.prod(v.shape)) for v in variables))


def lora_parameter_count(model) -> int:
    """Parameters in the LoRA factors of ``model``."""
    return count_parameters(
        [w for layer in lora_layers(model) for w in (layer.lora_kernel_a, layer.lora_kernel_b)]
    )


def build_lora_encoder_classifier(
    backbone, num_classes: int, rank: int = DEFAULT_RANK, dropout: float = 0.1, hidden_dim=None
):
    """A softmax ``EncoderClassifier`` (mean pooling -> dense tanh -> logits) on ``backbone``
    with LoRA of ``rank``: trainable are the LoRA factors and the head, nothing else."""
    model = EncoderClassifier(
        backbone, num_classes=num_classes, head="softmax", dropout=dropout, hidden_dim=hidden_dim
    )
    enable_backbone_lora(model.backbone, rank)
    return model


def head_layers(model) -> dict:
    """The classification head of an EncoderClassifier: the layers trained besides LoRA."""
    return {"hidden": model.hidden, "logits": model.output_head}
