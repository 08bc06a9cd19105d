"""Embeddings of a frozen encoder, computed once per text and kept in object storage.

A classifier whose encoder is frozen (``model.freeze_backbone``) trains only its head on the pooled
embeddings, and evaluation reads the same embeddings again (validation, test, the train split for
the class-distance OOD score); every tune trial does both once more. The encoder never changes, so
each split is embedded once, by whichever process (training child or flow, any Keras backend) gets
there first, and every later stage reads the array back::

    cache/embeddings/KEY/SHA256.npy    the embeddings [rows, width], named by the sha256 of its bytes
    cache/embeddings/KEY/entry.json    written LAST: {key, file, sha256, shape, dtype, parts}

KEY is a sha256 of the key's parts (``embedding_key_parts``): the encoder's identity (its class,
architecture config, dtype policy and a sha256 of every backbone weight, so a fine-tuned encoder
never meets a frozen one's entry), the pooling layer and its config, a sha256 of the token arrays
the encoder reads (names, dtypes, shapes, bytes), and the rows and width expected.

An entry exists iff its ``entry.json`` exists, so a writer that dies half way leaves nothing
anybody reads. The array is a file of its own named by its content (If-None-Match: two writers of
one name wrote the same bytes); the first ``entry.json`` wins (If-None-Match). An entry is used
only when its array is there, hashes to the recorded sha256 and has the expected shape; anything
else is reported in one line, recomputed and replaced (If-Match on the bad entry's ETag).

The arrays are exactly what ``predict_by_length`` returned when they were computed. They are
plain numpy, so an entry written under one backend is read under another; backends agree on an
embedding up to float rounding, and the one computed first is the one every later stage uses.
"""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any, Callable, Mapping

import keras
import numpy as np

from modelgate.storage import NotFound, ObjectStore, PreconditionFailed, sha256_bytes

EMBEDDING_CACHE_PREFIX = "cache/embeddings"
ENTRY_FILE = "entry.json"
FORMAT = 1  # bump when the meaning of a stored array changes
BATCH_SIZE = 128
# Config fields that name or place a layer but do not change what it computes. The dtype policy
# is keyed by its name instead (its serialised form differs between a preset and a saved model).
_NOT_IDENTITY = {"name", "trainable", "dtype"}


class EntryRejected(ValueError):
    """A cache entry that must not be used; the message says what is wrong with it."""


def _config_sha256(layer) -> str:
    config = {k: v for k, v in layer.get_config().items() if k not in _NOT_IDENTITY}
    identity = {"class": f"{type(layer).__module__}.{type(layer).__qualname__}", "config": config,
                "dtype_policy": layer.dtype_policy.name}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def _update(digest, name: str, array) -> None:
    array = np.ascontiguousarray(array)
    # dtype by name too: bfloat16 and other non-numpy types all read as void ("<V2") in .str
    digest.update(f"|{name}|{array.dtype.name}{array.dtype.str}{array.shape}|".encode())
    digest.update(array.reshape(-1).view(np.uint8).data)


def encoder_sha256(backbone) -> str:
    """Class, architecture, dtype policy and every weight (shape, dtype, bytes, in layer order)."""
    digest = hashlib.sha256(_config_sha256(backbone).encode())
    for weight in backbone.weights:
        _update(digest, "", keras.ops.convert_to_numpy(weight))
    return digest.hexdigest()


def tokens_sha256(arrays: Mapping[str, np.ndarray], names) -> str:
    """sha256 over the named token arrays: name, dtype, shape and bytes of each, in name order."""
    digest = hashlib.sha256()
    for name in sorted(names):
        _update(digest, name, arrays[name])
    return digest.hexdigest()


def embedding_key_parts(model, encoder: str, arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """What the embeddings of ``arrays`` by ``model`` (an ``EncoderClassifier``) depend on;
    ``encoder``: ``encoder_sha256(model.backbone)``, computed once per model by the caller."""
    names = [*model.backbone_input_names, "padding_mask"]
    return {"format": FORMAT, "encoder": encoder, "pooling": _config_sha256(model.pooling),
            "tokens": tokens_sha256(arrays, set(names)), "rows": int(len(arrays["padding_mask"])),
            "width": int(model.encoder_dim)}


def embedding_cache_key(parts: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(dict(parts), sort_keys=True).encode()).hexdigest()


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _verified(store: ObjectStore, prefix: str, key: str, raw: bytes, shape: tuple[int, int]) -> np.ndarray:
    try:
        entry = json.loads(raw)
        name, sha = str(entry["file"]), str(entry["sha256"])
    except (ValueError, KeyError, TypeError) as exc:
        raise EntryRejected(f"{ENTRY_FILE} is unreadable ({type(exc).__name__}: {exc})") from None
    if entry.get("key") != key:
        raise EntryRejected(f"{ENTRY_FILE} field 'key' is {entry.get('key')!r}, not this entry's")
    try:
        data = store.get_bytes(f"{prefix}/{name}")
    except NotFound:
        raise EntryRejected(f"file {name!r} is missing") from None
    if sha256_bytes(data) != sha:
        raise EntryRejected(f"file {name!r} has sha256 {sha256_bytes(data)}, the entry says {sha}")
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise EntryRejected(f"file {name!r} is not a readable .npy ({exc})") from None
    if array.shape != shape or array.dtype.kind != "f":
        raise EntryRejected(f"file {name!r} holds {array.dtype} {array.shape}, expected floats {shape}")
    return array


def cached_embeddings(
    store: ObjectStore, key_parts: Mapping[str, Any], compute: Callable[[], np.ndarray]
) -> np.ndarray:
    """The embeddings of the verified entry of ``key_parts`` when there is one, else
    ``compute()``'s, stored. ``key_parts`` carries the expected ``rows`` and ``width``; a computed
    array of another shape is an error."""
    key = embedding_cache_key(key_parts)
    prefix = f"{EMBEDDING_CACHE_PREFIX}/{key}"
    shape = (int(key_parts["rows"]), int(key_parts["width"]))
    try:
        raw, etag = store.get_with_etag(f"{prefix}/{ENTRY_FILE}")
    except NotFound:
        raw, etag = None, None
    if raw is not None:
        try:
            return _verified(store, prefix, key, raw, shape)
        except EntryRejected as exc:
            print(f"embedding cache entry {store.uri(prefix)}/ ignored: {exc}; embedding again")
    array = np.asarray(compute())
    if array.shape != shape:
        raise ValueError(f"computed embeddings have shape {array.shape}, expected {shape}")
    _save(store, prefix, key, key_parts, array, etag)
    return array


def _save(store: ObjectStore, prefix: str, key: str, parts, array: np.ndarray, replace_etag: str | None) -> None:
    data = _npy_bytes(array)
    sha = sha256_bytes(data)
    name = f"{prefix}/{sha}.npy"
    try:
        store.put_bytes(name, data, if_none_match=True)
    except PreconditionFailed:
        # Named by its content, so the object there should hold these bytes; a damaged one is
        # overwritten (another writer of this name writes the same bytes).
        if sha256_bytes(store.get_bytes(name)) != sha:
            store.put_bytes(name, data)
    entry = {"key": key, "file": f"{sha}.npy", "sha256": sha, "shape": list(array.shape),
             "dtype": array.dtype.str, "parts": dict(parts)}
    try:
        if replace_etag is None:
            store.put_json(f"{prefix}/{ENTRY_FILE}", entry, if_none_match=True)
        else:
            store.put_json(f"{prefix}/{ENTRY_FILE}", entry, if_match=replace_etag)
    except (PreconditionFailed, NotFound):
        pass  # another writer committed this key first; this process uses its own array


class Embedder:
    """Pooled embeddings of token arrays by one ``EncoderClassifier`` (its ``predict_embeddings``:
    each row at its own length). With a frozen backbone they go through the cache above; a
    trainable (fine-tuned) one always computes its own. Counts the rows computed and read back."""

    def __init__(self, model, store: ObjectStore, batch_size: int = BATCH_SIZE):
        self.model, self.store, self.batch_size = model, store, batch_size
        self.cached = bool(model.freeze_backbone)
        self.encoder = encoder_sha256(model.backbone) if self.cached else ""
        self.rows_computed = self.rows_read = 0

    def _compute(self, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        # The model's own call, as evaluation made it before this cache: a fine-tuned model's
        # evaluation gives the same bits as it did (TensorFlow's rounding can depend on which
        # traced function ran before, so one embedding model is not shared across splits).
        embeddings = self.model.predict_embeddings(dict(arrays), batch_size=self.batch_size)
        self.rows_computed += len(embeddings)
        return embeddings

    def __call__(self, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        if not self.cached:
            return self._compute(arrays)
        computed_before = self.rows_computed
        parts = embedding_key_parts(self.model, self.encoder, arrays)
        embeddings = cached_embeddings(self.store, parts, lambda: self._compute(arrays))
        if self.rows_computed == computed_before:
            self.rows_read += len(embeddings)
        return embeddings

    def summary(self, stage: str) -> str:
        how = "frozen encoder, cached" if self.cached else "trainable encoder, not cached"
        return (f"{stage} embeddings ({how}): {self.rows_computed} rows computed, "
                f"{self.rows_read} read from the cache")
