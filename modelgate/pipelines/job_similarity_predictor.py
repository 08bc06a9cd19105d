"""job-similarity's serving side: a registered encoder scores title pairs and embeds titles.

Titles are normalised the way the training pairs were (``modelgate.data.esco.normalise_title``);
the similarity of two titles is the angular similarity of their embeddings, 1 - arccos(cos) / pi,
the quantity the siamese network was tuned to.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelgate.artifacts import LoadedModel, load_model_dir
from modelgate.data.esco import normalise_title
from modelgate.models.siamese import angular_from_cosine, unit_rows
from modelgate.preprocess import encode_texts
from modelgate.summary import text_table


@dataclass
class SimilarityPrediction:
    left: str
    right: str
    similarity: float  # angular similarity in [0, 1], what the encoder was tuned to
    cosine: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SimilarityPredictor:
    """Titles in: pair similarities (``predict_pairs``; ``predict`` scores every pair of the
    given texts, so two texts are one pair) or unit-length embeddings (``embed``)."""

    def __init__(self, loaded: LoadedModel):
        self.encoder = loaded.model
        self.tokenizer = loaded.tokenizer
        self.sequence_length = int(loaded.inference["sequence_length"])

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            raise ValueError("nothing to embed: no texts given")
        arrays = encode_texts(self.tokenizer, [normalise_title(t) for t in texts], self.sequence_length)
        return unit_rows(self.encoder.embed_arrays(arrays))

    def predict_pairs(self, pairs: list[tuple[str, str]]) -> list[SimilarityPrediction]:
        if not pairs:
            raise ValueError("no pairs given")
        vectors = self.embed([text for pair in pairs for text in pair])
        cosine = np.clip(np.sum(vectors[0::2] * vectors[1::2], axis=1), -1.0, 1.0)
        angular = angular_from_cosine(cosine)
        return [SimilarityPrediction(a, b, float(s), float(c)) for (a, b), s, c in zip(pairs, angular, cosine)]

    def predict(self, texts: list[str]) -> list[SimilarityPrediction]:
        if len(texts) < 2:
            raise ValueError("give two titles to compare (or more: every pair is scored), --pair A B, or --file")
        return self.predict_pairs([(a, b) for i, a in enumerate(texts) for b in texts[i + 1 :]])

    @staticmethod
    def format(predictions: list[SimilarityPrediction]) -> str:
        rows = [[p.left, p.right, f"{p.similarity:.3f}", f"{p.cosine:.3f}"] for p in predictions]
        return text_table(["left", "right", "similarity", "cosine"], rows)


def load_predictor(directory: Path) -> SimilarityPredictor:
    """The predictor of a fetched, verified version directory (the staged encoder)."""
    return SimilarityPredictor(load_model_dir(directory))
