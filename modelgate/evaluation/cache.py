"""Evaluations kept in object storage by what determines them, so an unchanged re-run reads one
back instead of encoding the test splits and bootstrapping again.

    cache/evaluation/KEY/ATTEMPT/plots/NAME.png     the evaluation's plots
    cache/evaluation/KEY/ATTEMPT/files/NAME         files it adds to a version (ood_scorer.npz ...)
    cache/evaluation/KEY/manifest.json              written LAST: every file's sha256 and size, the
                                                    Evaluation (pointing at those files), the key's parts

An entry exists iff its manifest exists, so a writer that dies half way leaves nothing anybody
reads. Each writer uploads under an ATTEMPT prefix of its own, so two runs computing the same key
at once never overwrite each other's files; the first manifest wins (If-None-Match). An entry is
used only when every file it names is there with its recorded sha256 and the Evaluation points at
those files only; anything else is reported, recomputed and replaced (If-Match on the bad
manifest's ETag).

The key (``modelgate.pipelines.stages.evaluation_key``) hashes the trained model's training key
and content sha256, the evaluated data snapshots, the ``evaluate`` section and seed of the config,
and ``code_version()``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

import modelgate
from modelgate.evaluation.result import Evaluation
from modelgate.registry.lineage import package_versions
from modelgate.storage import NotFound, ObjectStore, PreconditionFailed, sha256_bytes

ROOT = "cache/evaluation"
MANIFEST = "manifest.json"
# Libraries whose version can change what an evaluation computes.
NUMERIC_PACKAGES = ("keras", "keras-hub", "numpy", "scipy", "scikit-learn", "matplotlib",
                    "tensorflow", "jax", "torch")  # fmt: skip


@functools.cache
def code_version() -> dict[str, Any]:
    """modelgate's version, a sha256 of its Python source, the numeric libraries and the Keras
    backend. Computed once per process: the source hashed is the one this process imported (an
    edit on disk afterwards does not change the code that runs)."""
    import keras

    root = Path(modelgate.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return {"modelgate": modelgate.__version__, "source_sha256": digest.hexdigest(),
            "packages": package_versions(NUMERIC_PACKAGES), "keras_backend": keras.config.backend()}


class CacheEntryRejected(ValueError):
    """A cache entry that must not be used; the message says which file or field and why."""


@dataclass(frozen=True)
class CachedEvaluation:
    evaluation: Evaluation
    computed_in_run: str


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


@dataclass(frozen=True)
class EvaluationCache:
    """The cache entry of one evaluation key."""

    store: ObjectStore
    key: str

    @property
    def prefix(self) -> str:
        return f"{ROOT}/{self.key}"

    @property
    def manifest_key(self) -> str:
        return f"{self.prefix}/{MANIFEST}"

    def load(self) -> tuple[CachedEvaluation | None, str | None]:
        """(the verified entry or None, the manifest's ETag when one exists). A rejected entry is
        reported in one line and treated as missing; its ETag lets ``save`` replace it."""
        try:
            raw, etag = self.store.get_with_etag(self.manifest_key)
        except NotFound:
            return None, None
        try:
            return self._verified(raw), etag
        except CacheEntryRejected as exc:
            print(f"evaluation cache entry {self.store.uri(self.prefix)}/ ignored: {exc}; evaluating again")
            return None, etag

    def _verified(self, raw: bytes) -> CachedEvaluation:
        try:
            manifest = json.loads(raw)
            files, evaluation = manifest["files"], Evaluation.from_dict(manifest["evaluation"])
        except (ValueError, KeyError, TypeError) as exc:
            raise CacheEntryRejected(f"{MANIFEST} is unreadable ({type(exc).__name__}: {exc})") from None
        if manifest.get("key") != self.key:
            raise CacheEntryRejected(f"{MANIFEST} field 'key' is {manifest.get('key')!r}, not this entry's")
        named = {self.store.uri(f"{self.prefix}/{rel}") for rel in files}
        for uri in [*evaluation.plots.values(), *evaluation.files.values()]:
            if uri not in named:
                raise CacheEntryRejected(f"the evaluation points at {uri}, which the entry does not list")
        for rel, meta in files.items():
            try:
                data = self.store.get_bytes(f"{self.prefix}/{rel}")
            except NotFound:
                raise CacheEntryRejected(f"file {rel!r} is missing") from None
            if sha256_bytes(data) != meta.get("sha256"):
                raise CacheEntryRejected(
                    f"file {rel!r} has sha256 {sha256_bytes(data)}, the manifest says {meta.get('sha256')}"
                )
        return CachedEvaluation(evaluation, str(manifest.get("computed_in_run", "")))

    def save(
        self, evaluation: Evaluation, run_id: str, parts: dict[str, Any], replace_etag: str | None = None
    ) -> Evaluation:
        """Copy the evaluation's plots and files into the entry, then write its manifest; the
        Evaluation pointing at the copies. ``replace_etag``: the ETag of a rejected manifest."""
        attempt = uuid.uuid4().hex[:12]
        files: dict[str, dict[str, Any]] = {}

        def copy(kind: str, name: str, uri: str) -> str:
            rel = f"{attempt}/{kind}/{name}"
            if rel in files:
                raise ValueError(f"evaluation has two {kind} named {name!r}")
            data = self.store.get_bytes(self.store.key_of(uri))
            self.store.put_bytes(f"{self.prefix}/{rel}", data)
            files[rel] = {"sha256": sha256_bytes(data), "size": len(data)}
            return self.store.uri(f"{self.prefix}/{rel}")

        # Plots keep their file name: the report names each plot after it.
        plots = {name: copy("plots", PurePosixPath(uri).name, uri) for name, uri in evaluation.plots.items()}
        extra = {name: copy("files", name, uri) for name, uri in evaluation.files.items()}
        cached = evaluation.model_copy(update={"plots": plots, "files": extra})
        manifest = {"key": self.key, "parts": parts, "files": files, "evaluation": cached.to_dict(),
                    "computed_in_run": run_id, "created_at": _now()}
        try:
            if replace_etag is None:
                self.store.put_json(self.manifest_key, manifest, if_none_match=True)
            else:
                self.store.put_json(self.manifest_key, manifest, if_match=replace_etag)
        except (PreconditionFailed, NotFound):
            pass  # another run committed this key first; our copies stay valid for this run
        return cached

