"""Trailing padding: how many real tokens a row of token arrays has, and prediction that skips the
rest. Token arrays are padded to one fixed length; CLINC150's queries (about 11 tokens) padded to
32 spend most of an encoder's compute on positions the padding mask then ignores.
"""

from __future__ import annotations

import math

import numpy as np


def token_lengths(padding_mask: np.ndarray) -> np.ndarray:
    """Real tokens per row; a row's tokens are its leading, unmasked positions."""
    return np.asarray(padding_mask).astype(bool).sum(axis=1)


def trimmed_width(longest: int, full_length: int, multiple: int = 8) -> int:
    """The width a batch whose longest row has ``longest`` tokens is cut to: rounded up to a
    multiple of ``multiple`` (so only a handful of shapes are ever traced), at most the full one."""
    return min(full_length, max(multiple, math.ceil(longest / multiple) * multiple))


def predict_by_length(model, arrays, batch_size: int = 128, multiple: int = 8) -> np.ndarray:
    """``model.predict`` over token arrays, each row run at its trimmed width instead of the full
    padded length (rows of one width together, results back in the input order).

    The trailing padding a row loses is masked anyway (attention and pooling read the mask, and
    positions count from the start), so the outputs are the same up to float rounding, for a
    fraction of the compute on short texts. Anything that is not a dict of token arrays with a
    ``padding_mask`` is predicted as it is."""
    if not isinstance(arrays, dict) or "padding_mask" not in arrays:
        return np.asarray(model.predict(arrays, batch_size=batch_size, verbose=0))
    full_length = int(arrays["padding_mask"].shape[1])
    widths = np.asarray([trimmed_width(n, full_length, multiple) for n in token_lengths(arrays["padding_mask"])])
    out = None
    for width in np.unique(widths):
        rows = np.flatnonzero(widths == width)
        part = np.asarray(model.predict({name: a[rows, :width] for name, a in arrays.items()},
                                        batch_size=batch_size, verbose=0))
        if out is None:
            out = np.empty((len(widths), *part.shape[1:]), dtype=part.dtype)
        out[rows] = part
    return out
