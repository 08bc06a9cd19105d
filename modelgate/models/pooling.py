"""Masked mean pooling (a sentence embedding from token embeddings, ignoring padding) and the
L2 normalisation the sentence encoders share."""

from __future__ import annotations

import keras
from keras import ops


def l2_normalize(x, squared_epsilon: float = 1e-24):
    """x / |x| along the last axis, the squared norm floored at ``squared_epsilon`` before the
    square root: a zero vector maps to zero with finite gradients (a plain norm's are NaN there)."""
    return x / ops.sqrt(ops.maximum(ops.sum(x * x, axis=-1, keepdims=True), squared_epsilon))


@keras.saving.register_keras_serializable(package="modelgate")
class MaskedMeanPooling(keras.layers.Layer):
    """Average of the token vectors where ``padding_mask`` is true.

    Call with ``(sequence_output [B, T, H], padding_mask [B, T])``; returns ``[B, H]``. This is the
    pooling sentence-transformers trained all-MiniLM-L6-v2 with, so it keeps the encoder's geometry.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = False

    def call(self, sequence_output, padding_mask):
        mask = ops.cast(padding_mask, sequence_output.dtype)[:, :, None]
        total = ops.sum(sequence_output * mask, axis=1)
        # A row with no real token (should not happen) gives zeros instead of NaN.
        count = ops.maximum(ops.sum(mask, axis=1), 1.0)
        return total / count

    def compute_output_shape(self, sequence_output_shape, padding_mask_shape=None):
        return (sequence_output_shape[0], sequence_output_shape[-1])
