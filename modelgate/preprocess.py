"""Tokenization into arrays, done once before training and cached in object storage.

Model and training code only ever see integer arrays, so they run under any Keras backend, and a
20k-example dataset is tokenized in seconds, batch by batch, instead of inside every epoch.

Arrays: ``token_ids`` (int32), ``padding_mask`` (int32, 1 for real tokens), ``segment_ids``
(int32, 0 for the first text, 1 for the second); shape [N, sequence_length]. The classifier passes
each backbone only the keys it takes, so ``segment_ids`` is harmless for encoders without them.
"""

from __future__ import annotations

import hashlib
import io
from typing import Callable, Sequence

import keras_hub
import numpy as np

from modelgate.storage import NotFound, ObjectStore, PreconditionFailed, StorageError

TOKEN_CACHE_PREFIX = "cache/tokens"
ENCODE_BATCH_SIZE = 2048
ARRAY_KEYS = ("token_ids", "padding_mask", "segment_ids")


def _packer(tokenizer, sequence_length: int):
    if sequence_length < 3:
        raise ValueError(f"sequence_length must be >= 3 (start, a token, end), got {sequence_length}")
    for attribute in ("start_token_id", "end_token_id", "pad_token_id"):
        if getattr(tokenizer, attribute, None) is None:
            raise ValueError(
                f"tokenizer {type(tokenizer).__name__} has no {attribute}; it cannot pack "
                "[start] text [end] sequences for a classifier"
            )
    # The generic keras-hub preprocessor: [start] a [end] (b [end]) with round-robin truncation,
    # using each family's own special tokens.
    return keras_hub.models.TextClassifierPreprocessor(
        tokenizer=tokenizer, sequence_length=sequence_length, truncate="round_robin"
    )


def _as_strings(texts: Sequence[str], what: str) -> list[str]:
    out = []
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{what}[{index}] is {type(text).__name__}, expected str")
        out.append(text)
    return out


def _encode(tokenizer, segments: tuple[list[str], ...], sequence_length: int, batch_size: int):
    packer = _packer(tokenizer, sequence_length)
    count = len(segments[0])
    parts: dict[str, list[np.ndarray]] = {key: [] for key in ARRAY_KEYS}
    for start in range(0, count, batch_size):
        batch = tuple(segment[start : start + batch_size] for segment in segments)
        # By keyword: a positional 2-tuple would be read as (x, y).
        encoded = packer(x=batch if len(batch) > 1 else batch[0])
        for key in ARRAY_KEYS:
            parts[key].append(np.asarray(encoded[key]).astype(np.int32))
    if count == 0:
        empty = np.zeros((0, sequence_length), dtype=np.int32)
        return {key: empty.copy() for key in ARRAY_KEYS}
    return {key: np.concatenate(chunks) for key, chunks in parts.items()}


def encode_texts(
    tokenizer, texts: Sequence[str], sequence_length: int, batch_size: int = ENCODE_BATCH_SIZE
) -> dict[str, np.ndarray]:
    """Tokenize and pack ``[CLS] text [SEP]`` to int32 arrays of shape [N, sequence_length]."""
    return _encode(tokenizer, (_as_strings(texts, "texts"),), sequence_length, batch_size)


def encode_pairs(
    tokenizer,
    first: Sequence[str],
    second: Sequence[str],
    sequence_length: int,
    batch_size: int = ENCODE_BATCH_SIZE,
) -> dict[str, np.ndarray]:
    """Pack ``[CLS] first [SEP] second [SEP]`` (segment ids 0 then 1), truncating round-robin."""
    if len(first) != len(second):
        raise ValueError(f"encode_pairs: {len(first)} first texts but {len(second)} second texts")
    segments = (_as_strings(first, "first"), _as_strings(second, "second"))
    return _encode(tokenizer, segments, sequence_length, batch_size)


def texts_sha256(*columns: Sequence[str]) -> str:
    """Content hash of one or more text columns (order matters), for ``cached_encode``."""
    digest = hashlib.sha256()
    for column in columns:
        digest.update(f"column:{len(column)}\n".encode())
        for text in column:
            data = text.encode("utf-8", "surrogatepass")
            digest.update(f"{len(data)}:".encode() + data)
    return digest.hexdigest()


def token_cache_key(texts_sha256: str, tokenizer_id: str, sequence_length: int) -> str:
    name = hashlib.sha256(f"{texts_sha256}|{tokenizer_id}|{int(sequence_length)}".encode()).hexdigest()
    return f"{TOKEN_CACHE_PREFIX}/{name}.npz"


def cached_encode(
    store: ObjectStore,
    texts_sha256: str,
    tokenizer_id: str,
    sequence_length: int,
    compute: Callable[[], dict[str, np.ndarray]],
) -> dict[str, np.ndarray]:
    """Token arrays from ``cache/tokens/KEY.npz`` when present, else ``compute()`` and store them.

    KEY hashes the text content, the tokenizer identity (``modelgate.models.tokenizer_id``) and the
    sequence length, so any change to one of them misses the cache instead of reusing stale ids.
    """
    key = token_cache_key(texts_sha256, tokenizer_id, sequence_length)
    try:
        raw = store.get_bytes(key)
    except NotFound:
        raw = None
    if raw is not None:
        try:
            with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
                return {name: archive[name] for name in archive.files}
        except (ValueError, OSError) as exc:
            raise StorageError(
                f"token cache {store.uri(key)} is not a readable .npz ({exc}); delete it to recompute"
            ) from exc
    arrays = compute()
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    try:
        # Content-addressed: a concurrent writer of the same key wrote the same arrays.
        store.put_bytes(key, buffer.getvalue(), if_none_match=True)
    except PreconditionFailed:
        pass
    return arrays
