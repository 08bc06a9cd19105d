"""Length-bucketed batches: most of a fixed-length token array is padding for short texts.

CLINC150's queries are about 11 tokens, padded to 32: three quarters of every encoder step would
be spent on padding. ``LengthBucketedBatches`` takes the epoch's (seeded) order, sorts each window
of ``window`` batches by length, cuts the window into batches, shuffles the batches, and trims each
batch to its longest row (rounded up to a multiple of ``multiple``, so that only a handful of
shapes are ever compiled). Every row is seen once per epoch, as with ``model.fit`` on arrays; the
batches differ (rows of a batch have similar lengths), the order still follows (seed, epoch) only.

Pairs of texts (the siamese inputs, ``left_*`` / ``right_*`` arrays with a padding mask each) are
bucketed by the longer text of each pair, and both sides of a batch are cut to one width: one
shape per batch, not one per combination of the two sides' widths.
"""

from __future__ import annotations

import keras
import numpy as np

from modelgate.models.padding import token_lengths, trimmed_width


PAIR_MASKS = ("left_padding_mask", "right_padding_mask")


def has_padding_masks(x) -> bool:
    """Whether ``x`` is token arrays that can be bucketed: one text's, or a pair's."""
    return isinstance(x, dict) and ("padding_mask" in x or all(name in x for name in PAIR_MASKS))


def row_lengths(x: dict[str, np.ndarray]) -> np.ndarray:
    """Real tokens per row of token arrays: of the text, or of the longer text of a pair."""
    if "padding_mask" in x:
        return token_lengths(x["padding_mask"])
    if all(name in x for name in PAIR_MASKS):
        widths = {int(x[name].shape[1]) for name in x}
        if len(widths) != 1:
            raise ValueError(f"length bucketing: the arrays of a pair must share one padded length, got {sorted(widths)}")
        return np.maximum(*(token_lengths(x[name]) for name in PAIR_MASKS))
    raise ValueError(
        f"length bucketing needs token arrays with a padding_mask (or left_/right_padding_mask for "
        f"pairs), got {sorted(x)}"
    )


class LengthBucketedBatches(keras.utils.PyDataset):
    """Batches of token-array dicts (``token_ids``, ``padding_mask``, ...) and labels."""

    def __init__(self, x: dict[str, np.ndarray], y: np.ndarray, order: np.ndarray, batch_size: int,
                 seed: tuple[int, ...], window: int = 50, multiple: int = 8):
        super().__init__()
        self.x, self.y = x, np.asarray(y)
        self._lengths = row_lengths(x)
        self.full_length = int(x["padding_mask" if "padding_mask" in x else "left_padding_mask"].shape[1])
        self.multiple = int(multiple)
        lengths = self._lengths[order]
        span = window * batch_size
        batches = []
        for start in range(0, len(order), span):
            chunk = order[start : start + span]
            chunk = chunk[np.argsort(lengths[start : start + span], kind="stable")]
            batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
        shuffled = np.random.default_rng(seed).permutation(len(batches))
        self.batches = [batches[i] for i in shuffled]

    def __len__(self) -> int:
        return len(self.batches)

    def batch_length(self, rows: np.ndarray) -> int:
        longest = int(self._lengths[rows].max()) if len(rows) else 1
        return trimmed_width(longest, self.full_length, self.multiple)

    def __getitem__(self, index: int):
        rows = self.batches[index]
        width = self.batch_length(rows)
        # Per-row arrays beside the tokens (the labels a contrastive loss reads) are not cut.
        return {name: array[rows, :width] if array.ndim > 1 else array[rows]
                for name, array in self.x.items()}, self.y[rows]

    def fit_input(self):
        """What ``model.fit`` takes: the batches themselves under JAX and torch; under TensorFlow a
        tf.data pipeline whose sequence dimension is declared variable (Keras would otherwise fix
        it from the first batches it peeks at, and refuse every other width)."""
        if keras.backend.backend() != "tensorflow":
            return self
        import tensorflow as tf  # only the TensorFlow backend reads a tf.data pipeline

        x_spec = {name: tf.TensorSpec((None,) * a.ndim, tf.as_dtype(a.dtype)) for name, a in self.x.items()}
        y_spec = tf.TensorSpec((None, *self.y.shape[1:]), tf.as_dtype(self.y.dtype))
        batches = tf.data.Dataset.from_generator(
            lambda: (self[i] for i in range(len(self))), output_signature=(x_spec, y_spec)
        )
        # Its length, so that Keras counts the epoch's steps instead of running out of data.
        return batches.apply(tf.data.experimental.assert_cardinality(len(self))).prefetch(2)

    def padded_fraction(self) -> float:
        """Share of the token positions the batches compute that are padding (for the logs)."""
        masks = [self.x[name] for name in ("padding_mask", *PAIR_MASKS) if name in self.x]
        computed = len(masks) * sum(self.batch_length(rows) * len(rows) for rows in self.batches)
        return 1.0 - float(sum(token_lengths(mask).sum() for mask in masks)) / max(computed, 1)
