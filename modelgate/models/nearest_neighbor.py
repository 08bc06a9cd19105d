"""NearestNeighborDistance: how unlike a sentence embedding is to its nearest training embeddings,
as an OOD score.

    score(x) = 1 - mean of the k largest cosines between x and the training embeddings

(Sun et al., 2022, "Out-of-distribution detection with deep nearest neighbors", on L2-normalised
features; k = 1 is the cosine distance to the single nearest training query). Unlike
``ClassDistance`` it assumes no shape for a class: an intent whose queries fall into several
clusters is not summarised by one centroid. The cost is the reference set itself: the training
embeddings, unit length, kept as float16 (15,000 x 384 for CLINC150: 11 MB) and compared with
every query.

A plain numpy model, like ``ClassDistance``: ``get_config`` and ``arrays`` / ``from_arrays`` save it
beside the Keras model, and it runs the same under every Keras backend.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelgate.models.class_distance import l2_normalize

CHUNK = 1024  # queries compared at once: a [CHUNK, references] block of cosines in memory


class NearestNeighborDistance:
    """1 - the mean cosine to the ``k`` nearest reference embeddings."""

    def __init__(self, references: np.ndarray, k: int = 1):
        references = np.asarray(references)
        if references.ndim != 2 or len(references) == 0:
            raise ValueError(f"NearestNeighborDistance: references [N, dim] expected, got {references.shape}")
        if not 1 <= int(k) <= len(references):
            raise ValueError(f"NearestNeighborDistance: k must be in [1, {len(references)}], got {k}")
        self.references = references.astype(np.float16)
        self.k = int(k)

    @classmethod
    def fit(cls, embeddings, k: int = 1) -> "NearestNeighborDistance":
        """Keep the unit-length ``embeddings`` [N, dim] as the references."""
        x = np.asarray(embeddings, dtype=np.float64)
        if x.ndim != 2 or len(x) == 0:
            raise ValueError(f"NearestNeighborDistance: embeddings [N, dim] expected, got {x.shape}")
        return cls(l2_normalize(x), k)

    def score(self, embeddings) -> np.ndarray:
        """[N] OOD scores in [0, 2] (higher = further from every training query)."""
        x = l2_normalize(np.asarray(embeddings, dtype=np.float32))
        references = self.references.astype(np.float32)
        scores = np.empty(len(x), dtype=np.float64)
        for start in range(0, len(x), CHUNK):
            cosines = x[start : start + CHUNK] @ references.T
            nearest = np.partition(cosines, -self.k, axis=1)[:, -self.k :]
            scores[start : start + CHUNK] = 1.0 - nearest.mean(axis=1)
        return scores

    # -- serialization -------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return {"k": self.k, "references": int(self.references.shape[0]), "dim": int(self.references.shape[1])}

    def arrays(self) -> dict[str, np.ndarray]:
        return {"references": self.references}

    @classmethod
    def from_arrays(cls, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> "NearestNeighborDistance":
        scorer = cls(arrays["references"], config["k"])
        if (config.get("references"), config.get("dim")) != scorer.references.shape:
            raise ValueError(
                f"NearestNeighborDistance: references of shape {scorer.references.shape} do not match "
                f"their config {config}"
            )
        return scorer
