"""ClassDistance: how far a sentence embedding lies from every in-scope class, as an OOD score.

Fitted on the training embeddings of the in-scope classes: one centroid per class and one shared
covariance of the embeddings around their centroids, shrunk towards a scaled identity,

    precision = inv((1 - shrinkage) * covariance + shrinkage * (trace(covariance) / dim) * I)
    score(x)  = min over classes c of (x - mu_c)^T precision (x - mu_c)

so ``shrinkage=0`` is the Mahalanobis distance with one shared covariance (Lee et al., 2018) and
``shrinkage=1`` the squared Euclidean distance to the nearest centroid (scaled). Embeddings are
L2-normalised first when ``normalize`` is on (cosine geometry, which sentence encoders are trained
for). A higher score means further from every class: more likely out of scope.

A plain numpy model (fitted statistics, nothing to train by gradient): ``get_config`` and
``arrays`` / ``from_arrays`` save it beside the Keras model, and it runs the same under every
Keras backend.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def l2_normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class ClassDistance:
    """Distance to the nearest class centroid under a shared, shrunk covariance."""

    def __init__(self, centroids: np.ndarray, precision: np.ndarray, shrinkage: float, normalize: bool = True):
        centroids = np.asarray(centroids, dtype=np.float64)
        precision = np.asarray(precision, dtype=np.float64)
        if centroids.ndim != 2 or precision.shape != (centroids.shape[1], centroids.shape[1]):
            raise ValueError(
                f"ClassDistance: centroids [classes, dim] and precision [dim, dim] expected, got "
                f"{centroids.shape} and {precision.shape}"
            )
        self.centroids = centroids
        self.precision = precision
        self.shrinkage = float(shrinkage)
        self.normalize = bool(normalize)
        # |mu_c|^2 under the precision, once: score = x'Px - 2 x'P mu_c + mu_c'P mu_c.
        self._centroid_norms = np.einsum("cd,de,ce->c", centroids, precision, centroids)

    @classmethod
    def fit(cls, embeddings, labels, shrinkage: float = 0.0, normalize: bool = True) -> "ClassDistance":
        """Centroids and the shrunk shared covariance of ``embeddings`` [N, dim] by ``labels`` [N]."""
        if not 0.0 <= shrinkage <= 1.0:
            raise ValueError(f"ClassDistance: shrinkage must be in [0, 1], got {shrinkage}")
        x = np.asarray(embeddings, dtype=np.float64)
        y = np.asarray(labels)
        if x.ndim != 2 or len(x) != len(y) or len(x) == 0:
            raise ValueError(f"ClassDistance: embeddings [N, dim] and labels [N] expected, got {x.shape}, {y.shape}")
        x = l2_normalize(x) if normalize else x
        classes = np.unique(y)
        centroids = np.stack([x[y == c].mean(axis=0) for c in classes])
        residuals = x - centroids[np.searchsorted(classes, y)]
        covariance = residuals.T @ residuals / len(x)
        dim = covariance.shape[0]
        scale = max(float(np.trace(covariance)) / dim, 1e-12)
        shrunk = (1.0 - shrinkage) * covariance + shrinkage * scale * np.eye(dim)
        # A tiny ridge keeps the unshrunk case invertible when dim > N or features are collinear.
        precision = np.linalg.inv(shrunk + 1e-6 * scale * np.eye(dim))
        return cls(centroids, precision, shrinkage, normalize)

    def distances(self, embeddings) -> np.ndarray:
        """[N, classes] squared distances to every centroid."""
        x = np.asarray(embeddings, dtype=np.float64)
        x = l2_normalize(x) if self.normalize else x
        projected = x @ self.precision
        own = np.einsum("nd,nd->n", projected, x)
        return own[:, None] - 2.0 * projected @ self.centroids.T + self._centroid_norms[None, :]

    def score(self, embeddings) -> np.ndarray:
        """[N] OOD scores: the distance to the nearest centroid (higher = more out of scope)."""
        return self.distances(embeddings).min(axis=1)

    # -- serialization -------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return {"shrinkage": self.shrinkage, "normalize": self.normalize,
                "classes": int(self.centroids.shape[0]), "dim": int(self.centroids.shape[1])}

    def arrays(self) -> dict[str, np.ndarray]:
        return {"centroids": self.centroids, "precision": self.precision}

    @classmethod
    def from_arrays(cls, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> "ClassDistance":
        scorer = cls(arrays["centroids"], arrays["precision"], config["shrinkage"], config["normalize"])
        if (config.get("classes"), config.get("dim")) != scorer.centroids.shape:
            raise ValueError(
                f"ClassDistance: arrays of shape {scorer.centroids.shape} do not match their config {config}"
            )
        return scorer
