"""Pairs of labelled examples for SetFit-style contrastive tuning of a sentence encoder.

SetFit (Tunstall et al., 2022) tunes the encoder before it trains a classifier on it: for each of
``num_iterations`` rounds, every example is paired once with an example of its own label (target
1) and once with an example of another label (target 0), and the encoder learns to give the
cosine of the two embeddings those targets. Here the positive partner is never the example itself
(SetFit's draw allows it; such a pair teaches nothing, the cosine of a text with itself is 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ContrastivePairs:
    """Row indices of the two sides of every pair and the pair's target (1.0 same label, 0.0 not)."""

    left: np.ndarray
    right: np.ndarray
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.targets)


def _check_labels(labels: np.ndarray, pairs_per_comment: int) -> np.ndarray:
    """The distinct labels; refuses what cannot give every example a positive and a negative partner."""
    if pairs_per_comment < 2 or pairs_per_comment % 2:
        raise ValueError(
            f"pairs_per_comment must be an even number >= 2 (one same-label and one other-label "
            f"partner per round), got {pairs_per_comment}"
        )
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"contrastive pairs need examples of at least 2 labels, got only label {classes.tolist()}")
    lonely = [f"label {c!r} has {n}" for c, n in zip(classes.tolist(), counts.tolist()) if n < 2]
    if lonely:
        raise ValueError(
            "contrastive pairs need at least 2 examples of every label (a same-label partner that "
            f"is not the example itself): {', '.join(lonely)}"
        )
    return classes


def contrastive_pairs(labels, pairs_per_comment: int, seed: int) -> ContrastivePairs:
    """``pairs_per_comment // 2`` rounds; in each, every example gets one same-label partner (not
    itself, target 1) and one other-label partner (target 0), drawn uniformly. Pairs come round by
    round, example by example, positive before negative; the same (labels, seed) give the same pairs."""
    labels = np.asarray(labels)
    classes = _check_labels(labels, pairs_per_comment)
    rng = np.random.default_rng(seed)
    count = len(labels)
    members = {c: np.flatnonzero(labels == c) for c in classes.tolist()}
    others = {c: np.flatnonzero(labels != c) for c in classes.tolist()}
    left, right = [], []
    for _ in range(pairs_per_comment // 2):
        positive, negative = np.empty(count, dtype=np.int64), np.empty(count, dtype=np.int64)
        for c, rows in members.items():
            # A shift of 1..n-1 places along the label's members: any member but the example itself.
            shift = rng.integers(1, len(rows), size=len(rows))
            positive[rows] = rows[(np.arange(len(rows)) + shift) % len(rows)]
            negative[rows] = rng.choice(others[c], size=len(rows))
        left.append(np.repeat(np.arange(count), 2))
        right.append(np.stack([positive, negative], axis=1).reshape(-1))
    targets = np.tile(np.array([1.0, 0.0], dtype=np.float32), count * (pairs_per_comment // 2))
    return ContrastivePairs(np.concatenate(left), np.concatenate(right), targets)
