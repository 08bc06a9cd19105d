"""MPNet (the architecture of sentence-transformers' all-mpnet-base-v2) as a keras-hub backbone.

keras-hub has no MPNet; this port follows Hugging Face's ``MPNetModel`` so its weights load one to
one (``convert.py``):

    token embedding + position embedding -> layer norm -> dropout
    -> num_layers x [self-attention + relative position bias -> add & layer norm
                     -> dense gelu -> dense -> add & layer norm]      = sequence_output [B, T, H]

Positions are RoBERTa-style: real tokens are numbered from ``padding_idx + 1`` (2), padding
positions get ``padding_idx``. The relative position bias (bidirectional buckets over key - query
distances) comes from one table shared by every layer. The checkpoint's [CLS] pooler is left out:
sentence-transformers and this project pool the token vectors by masked mean.
"""

from __future__ import annotations

import keras
from keras import ops
from keras_hub.models import Backbone

from modelgate.models.mpnet.layers import MPNetEncoderLayer, RelativePositionBias


@keras.saving.register_keras_serializable(package="modelgate")
class MPNetBackbone(Backbone):
    """MPNet encoder. Inputs ``token_ids`` and ``padding_mask`` [B, T] (``<s> text </s>``, padded
    with ``<pad>``); output ``sequence_output`` [B, T, hidden_dim].

    The defaults are all-mpnet-base-v2's sizes. ``max_sequence_length`` is the longest input the
    position table covers (it has ``max_sequence_length + padding_idx + 1`` rows, 514 for 512).
    """

    def __init__(
        self,
        vocabulary_size: int = 30527,
        num_layers: int = 12,
        num_heads: int = 12,
        hidden_dim: int = 768,
        intermediate_dim: int = 3072,
        dropout: float = 0.1,
        max_sequence_length: int = 512,
        num_buckets: int = 32,
        max_distance: int = 128,
        layer_norm_epsilon: float = 1e-5,
        padding_idx: int = 1,
        dtype=None,
        **kwargs,
    ):
        initializer = keras.initializers.TruncatedNormal(stddev=0.02)
        self.token_embedding = keras.layers.Embedding(
            vocabulary_size, hidden_dim, embeddings_initializer=initializer, dtype=dtype, name="token_embedding"
        )
        self.position_embedding = keras.layers.Embedding(
            max_sequence_length + padding_idx + 1, hidden_dim, embeddings_initializer=initializer,
            dtype=dtype, name="position_embedding",
        )
        self.embeddings_layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=dtype, name="embeddings_layer_norm"
        )
        self.embeddings_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="embeddings_dropout")
        self.relative_position_bias = RelativePositionBias(
            num_heads, num_buckets, max_distance, dtype=dtype, name="relative_position_bias"
        )
        self.transformer_layers = [
            MPNetEncoderLayer(num_heads, hidden_dim, intermediate_dim, dropout, layer_norm_epsilon,
                              dtype=dtype, name=f"transformer_layer_{i}")
            for i in range(num_layers)
        ]

        # === Functional model ===
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        super().__init__(
            inputs={"token_ids": token_ids, "padding_mask": padding_mask},
            outputs={"sequence_output": self._encode(token_ids, padding_mask, padding_idx)},
            dtype=dtype,
            **kwargs,
        )

        # === Config ===
        self.vocabulary_size = int(vocabulary_size)
        self.num_layers = int(num_layers)
        self.num_heads = int(num_heads)
        self.hidden_dim = int(hidden_dim)
        self.intermediate_dim = int(intermediate_dim)
        self.dropout = float(dropout)
        self.max_sequence_length = int(max_sequence_length)
        self.num_buckets = int(num_buckets)
        self.max_distance = int(max_distance)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.padding_idx = int(padding_idx)

    def _encode(self, token_ids, padding_mask, padding_idx: int):
        """The forward graph: embeddings, then every layer with the shared position bias."""
        # Numbered from the padding mask, not from pad ids, so a pad id inside a text changes nothing.
        real = ops.cast(ops.cast(padding_mask, "bool"), "int32")
        position_ids = ops.cumsum(real, axis=1) * real + padding_idx
        x = self.token_embedding(token_ids) + self.position_embedding(position_ids)
        x = self.embeddings_dropout(self.embeddings_layer_norm(x))
        position_bias = self.relative_position_bias(x)
        for layer in self.transformer_layers:
            x = layer(x, position_bias, padding_mask)
        return x

    def get_config(self):
        config = super().get_config()
        config.update(
            vocabulary_size=self.vocabulary_size,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            hidden_dim=self.hidden_dim,
            intermediate_dim=self.intermediate_dim,
            dropout=self.dropout,
            max_sequence_length=self.max_sequence_length,
            num_buckets=self.num_buckets,
            max_distance=self.max_distance,
            layer_norm_epsilon=self.layer_norm_epsilon,
            padding_idx=self.padding_idx,
        )
        return config
