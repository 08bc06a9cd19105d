"""MPNet's encoder layers: the relative position bias, self-attention that adds it to the scores,
and the post-LayerNorm transformer layer (as in Hugging Face's ``MPNetModel``).

The attention projections are ``EinsumDense`` layers named ``query``, ``key``, ``value`` and
``attention_output``, like keras-hub's own attention, so ``Backbone.enable_lora`` finds ``query``
and ``value`` by its default names.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops


def relative_position_buckets(num_buckets: int = 32, max_distance: int = 128) -> np.ndarray:
    """Bucket of each relative position ``key - query`` in [-max_distance, max_distance], int32.

    MPNet's bidirectional T5-style bucketing: half the buckets per direction, exact for small
    distances, log-spaced up to ``max_distance``, the last bucket beyond it (so clipping a distance
    to ``max_distance`` never changes its bucket). Computed in float32, as the reference does.
    """
    relative = np.arange(-max_distance, max_distance + 1)
    n = -relative
    half = num_buckets // 2
    direction = (n < 0).astype(np.int64) * half
    n = np.abs(n)
    max_exact = half // 2
    scaled = np.log(np.maximum(n, 1).astype(np.float32) / max_exact) / math.log(max_distance / max_exact)
    large = max_exact + (scaled * (half - max_exact)).astype(np.int64)
    large = np.minimum(large, half - 1)
    return (direction + np.where(n < max_exact, n, large)).astype(np.int32)


def _initializer():
    return keras.initializers.TruncatedNormal(stddev=0.02)


@keras.saving.register_keras_serializable(package="modelgate")
class RelativePositionBias(keras.layers.Layer):
    """The attention bias [1, heads, T, T] from relative positions; one table shared by all layers."""

    def __init__(self, num_heads: int, num_buckets: int = 32, max_distance: int = 128, **kwargs):
        super().__init__(**kwargs)
        self.num_heads, self.num_buckets, self.max_distance = int(num_heads), int(num_buckets), int(max_distance)
        self._buckets = relative_position_buckets(self.num_buckets, self.max_distance)

    def build(self, x_shape=None):
        self.embeddings = self.add_weight(
            name="embeddings", shape=(self.num_buckets, self.num_heads), initializer=_initializer()
        )
        self.built = True

    def call(self, x):
        length = ops.shape(x)[1]
        positions = ops.arange(length, dtype="int32")
        relative = ops.clip(positions[None, :] - positions[:, None], -self.max_distance, self.max_distance)
        buckets = ops.take(ops.convert_to_tensor(self._buckets), relative + self.max_distance)
        bias = ops.take(self.embeddings, buckets, axis=0)  # [T, T, heads]
        return ops.cast(ops.transpose(bias, (2, 0, 1))[None], self.compute_dtype)

    def compute_output_shape(self, x_shape):
        return (1, self.num_heads, x_shape[1], x_shape[1])

    def get_config(self):
        config = super().get_config()
        config.update(num_heads=self.num_heads, num_buckets=self.num_buckets, max_distance=self.max_distance)
        return config


@keras.saving.register_keras_serializable(package="modelgate")
class MPNetSelfAttention(keras.layers.Layer):
    """softmax(q k^T / sqrt(d) + position_bias, keys where padding_mask is 0 excluded) v, projected."""

    def __init__(self, num_heads: int, hidden_dim: int, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if hidden_dim % num_heads:
            raise ValueError(f"MPNetSelfAttention: hidden_dim {hidden_dim} is not a multiple of num_heads {num_heads}")
        self.num_heads, self.hidden_dim, self.dropout = int(num_heads), int(hidden_dim), float(dropout)
        self.head_dim = self.hidden_dim // self.num_heads
        projection = dict(
            output_shape=(None, self.num_heads, self.head_dim), bias_axes="nh",
            kernel_initializer=_initializer(), dtype=self.dtype_policy,
        )
        self.query = keras.layers.EinsumDense("btd,dnh->btnh", name="query", **projection)
        self.key = keras.layers.EinsumDense("btd,dnh->btnh", name="key", **projection)
        self.value = keras.layers.EinsumDense("btd,dnh->btnh", name="value", **projection)
        self.attention_output = keras.layers.EinsumDense(
            "btnh,nhd->btd", output_shape=(None, self.hidden_dim), bias_axes="d",
            kernel_initializer=_initializer(), dtype=self.dtype_policy, name="attention_output",
        )
        self.softmax = keras.layers.Softmax(axis=-1, dtype=self.dtype_policy, name="attention_softmax")
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name="attention_dropout")

    def build(self, x_shape, position_bias_shape=None, padding_mask_shape=None):
        for projection in (self.query, self.key, self.value):
            projection.build(x_shape)
        self.attention_output.build((*x_shape[:-1], self.num_heads, self.head_dim))
        self.built = True

    def call(self, x, position_bias, padding_mask, training=None):
        query, key, value = self.query(x), self.key(x), self.value(x)
        scores = ops.einsum("bqnh,bknh->bnqk", query, key) / ops.cast(math.sqrt(self.head_dim), query.dtype)
        scores = scores + position_bias
        mask = ops.cast(padding_mask, "bool")[:, None, None, :]
        probabilities = self.dropout_layer(self.softmax(scores, mask=mask), training=training)
        context = ops.einsum("bnqk,bknh->bqnh", probabilities, value)
        return self.attention_output(context)

    def compute_output_shape(self, x_shape, position_bias_shape=None, padding_mask_shape=None):
        return x_shape

    def get_config(self):
        config = super().get_config()
        config.update(num_heads=self.num_heads, hidden_dim=self.hidden_dim, dropout=self.dropout)
        return config


@keras.saving.register_keras_serializable(package="modelgate")
class MPNetEncoderLayer(keras.layers.Layer):
    """x = LN(x + attention(x)); x = LN(x + W2 gelu(W1 x)) (post-LayerNorm, exact gelu)."""

    def __init__(self, num_heads: int, hidden_dim: int, intermediate_dim: int, dropout: float = 0.1,
                 layer_norm_epsilon: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.num_heads, self.hidden_dim, self.intermediate_dim = int(num_heads), int(hidden_dim), int(intermediate_dim)
        self.dropout, self.layer_norm_epsilon = float(dropout), float(layer_norm_epsilon)
        common = dict(dtype=self.dtype_policy)
        self.self_attention = MPNetSelfAttention(num_heads, hidden_dim, dropout, name="self_attention", **common)
        self.self_attention_dropout = keras.layers.Dropout(dropout, name="self_attention_dropout", **common)
        self.self_attention_layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, name="self_attention_layer_norm", **common
        )
        self.feedforward_intermediate_dense = keras.layers.Dense(
            intermediate_dim, activation="gelu",  # keras' gelu is the exact (erf) one, as HF's
            kernel_initializer=_initializer(), name="feedforward_intermediate_dense", **common,
        )
        self.feedforward_output_dense = keras.layers.Dense(
            hidden_dim, kernel_initializer=_initializer(), name="feedforward_output_dense", **common
        )
        self.feedforward_dropout = keras.layers.Dropout(dropout, name="feedforward_dropout", **common)
        self.feedforward_layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, name="feedforward_layer_norm", **common
        )

    def build(self, x_shape, position_bias_shape=None, padding_mask_shape=None):
        self.self_attention.build(x_shape, position_bias_shape, padding_mask_shape)
        self.self_attention_layer_norm.build(x_shape)
        self.feedforward_intermediate_dense.build(x_shape)
        self.feedforward_output_dense.build((*x_shape[:-1], self.intermediate_dim))
        self.feedforward_layer_norm.build(x_shape)
        self.built = True

    def call(self, x, position_bias, padding_mask, training=None):
        attended = self.self_attention(x, position_bias, padding_mask, training=training)
        x = self.self_attention_layer_norm(x + self.self_attention_dropout(attended, training=training))
        hidden = self.feedforward_output_dense(self.feedforward_intermediate_dense(x))
        return self.feedforward_layer_norm(x + self.feedforward_dropout(hidden, training=training))

    def compute_output_shape(self, x_shape, position_bias_shape=None, padding_mask_shape=None):
        return x_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads, hidden_dim=self.hidden_dim, intermediate_dim=self.intermediate_dim,
            dropout=self.dropout, layer_norm_epsilon=self.layer_norm_epsilon,
        )
        return config
