"""A siamese bi-encoder: one shared sentence encoder for both titles, angular similarity out.

    left tokens  -> SentenceEncoder -\
                                      cosine -> clip -> 1 - arccos(cos) / pi   (in [0, 1])
    right tokens -> SentenceEncoder -/   (the same layer, so the same weights)

With ``similarity="cosine"`` the output is the plain cosine (the toxicity pipeline's SetFit-style
contrastive stage).

``SentenceEncoder`` (backbone + masked mean pooling, or the backbone's own sentence embedding when
it has one, as USE does) is what gets registered: it embeds any text on
its own, and the similarity of two titles is computed from two embeddings. ``SiameseSimilarity``
exists for training only. Inputs are the token-array dicts of ``modelgate.preprocess``; the siamese
model takes them flattened with ``left_`` / ``right_`` prefixes so Keras sees one flat dict.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from modelgate.models.classifier import _backbone_input_names, _backbone_output_dim
from modelgate.models.pooling import MaskedMeanPooling, l2_normalize

SIDES = ("left", "right")
# arccos has an infinite slope at +-1: clipping just inside keeps gradients finite.
COSINE_CLIP = 1.0 - 1e-6


POOLING_MODES = ("auto", "mean", "backbone")


def resolve_pooling(backbone, pooling: str = "auto") -> str:
    """"mean" (masked mean of the token vectors) or "backbone" (the encoder's own sentence
    embedding, for backbones that declare one in ``sentence_embedding_output``, such as USE).
    "auto" picks the backbone's own embedding when it has one, else the mean."""
    if pooling not in POOLING_MODES:
        raise ValueError(f"pooling must be one of {', '.join(POOLING_MODES)}, got {pooling!r}")
    native = getattr(backbone, "sentence_embedding_output", None)
    if pooling == "auto":
        return "backbone" if native else "mean"
    if pooling == "backbone" and not native:
        raise ValueError(
            f"pooling 'backbone': {type(backbone).__name__} has no sentence embedding of its own; use 'mean'"
        )
    return pooling


@keras.saving.register_keras_serializable(package="modelgate")
class SentenceEncoder(keras.Model):
    """Token arrays -> mean-pooled sentence embedding [B, hidden]."""

    def __init__(self, backbone, pooling: str = "auto", **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone
        self.pooling_mode = resolve_pooling(backbone, pooling)
        self.backbone_input_names = tuple(_backbone_input_names(backbone))
        if self.pooling_mode == "mean":
            self.embedding_dim = _backbone_output_dim(backbone)
            # BERT's [CLS] pooler is unused under mean pooling: frozen, it gets no optimizer slots.
            pooler = getattr(self.backbone, "pooled_dense", None)
            if pooler is not None:
                pooler.trainable = False
        else:
            self.embedding_dim = int(backbone.output[backbone.sentence_embedding_output].shape[-1])
        self.pooling = MaskedMeanPooling(name="pooling")
        self.built = True

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([*self.backbone_input_names, "padding_mask"]))

    def call(self, inputs, training=None):
        outputs = self.backbone({name: inputs[name] for name in self.backbone_input_names}, training=training)
        if self.pooling_mode == "backbone":
            return outputs[self.backbone.sentence_embedding_output]
        sequence = outputs["sequence_output"] if isinstance(outputs, dict) else outputs
        return self.pooling(sequence, inputs["padding_mask"])

    def compute_output_shape(self, input_shape):
        return (None, self.embedding_dim)

    def embed_arrays(self, arrays: dict[str, np.ndarray], batch_size: int = 128) -> np.ndarray:
        """Numpy embeddings [N, hidden] of a dict of token arrays, batch by batch."""
        count = len(arrays["padding_mask"])
        if count == 0:
            return np.zeros((0, self.embedding_dim), dtype="float32")
        parts = []
        for start in range(0, count, batch_size):
            batch = {k: ops.convert_to_tensor(arrays[k][start : start + batch_size]) for k in self.input_names}
            parts.append(ops.convert_to_numpy(self(batch, training=False)))
        return np.concatenate(parts).astype("float32")

    def get_config(self):
        config = super().get_config()
        config["backbone"] = keras.saving.serialize_keras_object(self.backbone)
        config["pooling"] = self.pooling_mode
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)


def cosine_similarity(left, right):
    """cos(left, right) for batches of vectors (backend tensors), in [-1, 1]. A zero embedding (USE
    gives one when every unit of its last layers is off) is orthogonal to everything: 0."""
    return ops.sum(l2_normalize(left) * l2_normalize(right), axis=-1)


def angular_similarity(left, right):
    """1 - arccos(cos(left, right)) / pi for batches of vectors (backend tensors), in [0, 1]."""
    cosine = ops.clip(cosine_similarity(left, right), -COSINE_CLIP, COSINE_CLIP)
    return 1.0 - ops.arccos(cosine) / math.pi


SIMILARITIES = {"angular": angular_similarity, "cosine": cosine_similarity}


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Each vector scaled to unit length (a zero vector stays zero)."""
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def cosine_similarity_np(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two batches of vectors [N, d] -> [N]."""
    return np.sum(unit_rows(left) * unit_rows(right), axis=-1)


def cosine_matrix_np(vectors: np.ndarray) -> np.ndarray:
    """Cosine of every pair of rows [N, d] -> [N, N], clipped to [-1, 1]."""
    unit = unit_rows(vectors)
    return np.clip(unit @ unit.T, -1.0, 1.0)


def angular_from_cosine(cosine: np.ndarray) -> np.ndarray:
    return 1.0 - np.arccos(np.clip(cosine, -1.0, 1.0)) / math.pi


@keras.saving.register_keras_serializable(package="modelgate")
class SiameseSimilarity(keras.Model):
    """Both texts through one shared ``SentenceEncoder``; outputs their similarity [B].

    ``similarity``: "angular" (job titles: graded targets in [0, 1] on a scale that is linear in
    the angle) or "cosine" (SetFit's CosineSimilarityLoss regresses the plain cosine on targets 1 /
    0: different labels are pushed to orthogonal, where an angular target 0 would push them to
    opposite directions).
    """

    def __init__(self, encoder: SentenceEncoder, similarity: str = "angular", **kwargs):
        super().__init__(**kwargs)
        if similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {', '.join(SIMILARITIES)}, got {similarity!r}")
        self.encoder = encoder
        self.similarity = similarity
        self.built = True

    def call(self, inputs, training=None):
        left, right = (
            self.encoder({name: inputs[f"{side}_{name}"] for name in self.encoder.input_names}, training=training)
            for side in SIDES
        )
        return SIMILARITIES[self.similarity](left, right)

    def compute_output_shape(self, input_shape):
        return (None,)

    def get_config(self):
        config = super().get_config()
        config["encoder"] = keras.saving.serialize_keras_object(self.encoder)
        config["similarity"] = self.similarity
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return cls(**config)


def pair_inputs(left: dict[str, np.ndarray], right: dict[str, np.ndarray], names) -> dict[str, np.ndarray]:
    """Two token-array dicts -> the flat ``left_*`` / ``right_*`` dict ``SiameseSimilarity`` takes."""
    return {f"{side}_{name}": arrays[name] for side, arrays in zip(SIDES, (left, right)) for name in names}
