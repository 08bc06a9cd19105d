"""The model registry in object storage (layout in docs/DESIGN.md):

    registry/MODEL/versions/N/...              the version's files
    registry/MODEL/versions/N/.claim           reserves N (If-None-Match): numbers are never reused
    registry/MODEL/versions/N/manifest.json    written LAST (If-None-Match): N exists iff it does;
                                               signed (field "signature") when a key is configured
    registry/MODEL/aliases/ALIAS.json          moved with If-Match on its ETag: no lost update
    registry/MODEL/audit.log.d/...             one object per alias event

A crash between claim and manifest leaves a number that is invisible and never reused;
``modelgate registry gc`` (registry/gc.py) later removes its files and keeps the claim.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from modelgate.registry.refs import (  # ModelRef and parse_ref are re-exported from here
    NAME,
    InvalidReference,
    ModelRef,
    RegistryError,
    is_version_number,
    parse_ref,
    validate_name,
)
from modelgate.registry.signing import SIGNATURE_FIELD, SigningKey, load_signing_key
from modelgate.settings import load_settings
from modelgate.storage import NotFound, ObjectStore, PreconditionFailed, sha256_file

ROOT = "registry"
MANIFEST = "manifest.json"
CLAIM = ".claim"
RESERVED_FIELDS = ("model", "version", "created_at", "files", SIGNATURE_FIELD)
_FROM_ENVIRONMENT = object()


class ModelNotFound(RegistryError, LookupError):
    """A model, version or alias that is not in the registry."""


class IntegrityError(RegistryError):
    """A version's files, manifest or signature do not agree: it must not be used."""


class SignatureError(IntegrityError):
    """A signing key is configured and the manifest is unsigned or its signature does not match."""


class AliasConflict(RegistryError):
    """Another writer moved (or created) the alias first; re-read it and retry."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


@dataclass(frozen=True)
class ModelVersion:
    model: str
    version: int
    uri: str  # s3://BUCKET/registry/MODEL/versions/N/
    manifest: dict[str, Any] = field(repr=False)

    @property
    def ref(self) -> str:
        return f"{self.model}:{self.version}"

    @property
    def files(self) -> dict[str, dict[str, Any]]:
        return self.manifest["files"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AliasRecord:
    model: str
    alias: str
    version: int
    etag: str  # pass back as expected_etag to move the alias
    updated_at: str
    actor: str
    reason: str
    history: list[dict[str, Any]]  # every assignment, oldest first

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_fields(manifest_fields: dict[str, Any]) -> None:
    clashing = sorted(set(manifest_fields) & set(RESERVED_FIELDS))
    if clashing:
        raise ValueError(f"manifest_fields must not set {clashing}: the registry writes them")


def _safe_relpath(rel: str, where: str) -> str:
    path = PurePosixPath(rel)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise IntegrityError(f"{where} lists an unsafe file path {rel!r}")
    return path.as_posix()


class Registry:
    """Versioned models in one bucket. Reads never see a half-written version."""

    def __init__(
        self, store: ObjectStore, cache_dir: Path | None = None, signing_key=_FROM_ENVIRONMENT
    ):
        self.store = store
        self._cache_dir = cache_dir
        self._signing_key = signing_key

    @classmethod
    def from_settings(cls, settings=None) -> "Registry":
        settings = settings or load_settings()
        return cls(ObjectStore.from_settings(settings), settings.cache_dir)

    @property
    def cache_dir(self) -> Path:
        if self._cache_dir is None:
            self._cache_dir = load_settings().cache_dir
        return self._cache_dir

    @property
    def signing_key(self) -> SigningKey | None:
        """The key given to the constructor, else the one the environment configures now."""
        if self._signing_key is _FROM_ENVIRONMENT:
            return load_signing_key()
        return self._signing_key

    # -- keys --------------------------------------------------------------------------------
    def _model_prefix(self, model: str) -> str:
        return f"{ROOT}/{validate_name(model)}/"

    def _version_prefix(self, model: str, version: int) -> str:
        return f"{self._model_prefix(model)}versions/{int(version)}/"

    def version_uri(self, model: str, version: int) -> str:
        return self.store.uri(self._version_prefix(model, version))

    # -- writing versions --------------------------------------------------------------------
    def register(
        self, model: str, files_dir: Path, manifest_fields: dict[str, Any]
    ) -> ModelVersion:
        """Upload every file of files_dir as a new version; the manifest (with each file's sha256
        and size, plus manifest_fields) is written last. Returns the new version."""
        files_dir = Path(files_dir)
        validate_name(model)
        _check_fields(manifest_fields)  # before claiming: a refused call burns no number
        paths = sorted(p for p in files_dir.rglob("*") if p.is_file()) if files_dir.is_dir() else []
        if not paths:
            raise ValueError(f"{files_dir} is not a directory with files to register")
        for reserved in (MANIFEST, CLAIM):
            if (files_dir / reserved).is_file():
                raise ValueError(f"{files_dir / reserved}: that name is reserved by the registry")
        version = self.claim_version(model)
        files = self.upload_files(model, version, files_dir, paths)
        return self.commit_version(model, version, files, manifest_fields)

    def claim_version(self, model: str) -> int:
        """Reserve the next free version number with a conditional write of versions/N/.claim."""
        versions_prefix = f"{self._model_prefix(model)}versions/"
        prefixes = self.store.list_prefixes(versions_prefix)
        names = [p[len(versions_prefix) :].strip("/") for p in prefixes]
        # Start after every number ever claimed; the conditional write settles races.
        version = max((int(n) for n in names if is_version_number(n)), default=0) + 1
        claim = {"claimed_at": _now(), "host": socket.gethostname(), "pid": os.getpid()}
        while True:
            try:
                key = f"{versions_prefix}{version}/{CLAIM}"
                self.store.put_json(key, claim, if_none_match=True)
                return version
            except PreconditionFailed:
                version += 1  # someone else holds N: try the next one

    def upload_files(self, model: str, version: int, files_dir: Path, paths: list[Path]) -> dict:
        prefix = self._version_prefix(model, version)
        files = {}
        for path in paths:
            rel = path.relative_to(files_dir).as_posix()
            digest = self.store.upload_file(path, prefix + rel)
            files[rel] = {"sha256": digest, "size": path.stat().st_size}
        return files

    def commit_version(
        self, model: str, version: int, files: dict, manifest_fields: dict[str, Any]
    ) -> ModelVersion:
        """Write manifest.json (If-None-Match): from this moment the version exists. With a
        signing key the signature is a field of that one object, so N never exists unsigned."""
        _check_fields(manifest_fields)
        manifest = {**manifest_fields, "model": model, "version": version, "created_at": _now()}
        manifest["files"] = files
        # Sign exactly what readers will parse (JSON round trip: tuples become lists, etc.).
        manifest = json.loads(json.dumps(manifest, default=str))
        key = self.signing_key
        if key is not None:
            manifest[SIGNATURE_FIELD] = key.sign(manifest)
        self._check_claim_held(model, version)
        manifest_key = self._version_prefix(model, version) + MANIFEST
        try:
            self.store.put_json(manifest_key, manifest, if_none_match=True)
        except PreconditionFailed:
            raise RegistryError(f"{model}:{version} already has a manifest; versions are immutable")
        stored = self.store.get_json(manifest_key)
        return ModelVersion(model, version, self.version_uri(model, version), stored)

    def _check_claim_held(self, model: str, version: int) -> None:
        """Refuse to commit into a number whose claim gc collected (a registration that stalled
        past the grace period): its files may already be gone."""
        try:
            claim = self.store.get_json(self._version_prefix(model, version) + CLAIM)
        except NotFound:
            claim = None
        if not isinstance(claim, dict) or "collected_at" in claim:
            raise RegistryError(
                f"{model}:{version}: the claim on this number was collected by `registry gc` "
                "(the registration stalled past the grace period); register again"
            )

    # -- reading -----------------------------------------------------------------------------
    def list_models(self) -> list[str]:
        """Models with at least one version."""
        names = [p[len(ROOT) + 1 :].strip("/") for p in self.store.list_prefixes(f"{ROOT}/")]
        return sorted(n for n in names if NAME.match(n) and self.list_versions(n))

    def list_versions(self, model: str) -> list[int]:
        """Versions that exist (have a manifest), ascending."""
        prefix = f"{self._model_prefix(model)}versions/"
        found = []
        for key in self.store.list_keys(prefix):
            number, _, rest = key[len(prefix) :].partition("/")
            if rest == MANIFEST and is_version_number(number):
                found.append(int(number))
        return sorted(found)

    def get_manifest(self, model: str, version: int) -> dict[str, Any]:
        key = self._version_prefix(model, version) + MANIFEST
        try:
            return self.store.get_json(key)
        except NotFound:
            raise ModelNotFound(
                f"{model}:{version} is not in the registry ({self.store.uri(key)} is missing)"
            ) from None

    def get_version(self, model: str, version: int) -> ModelVersion:
        manifest = self.get_manifest(model, version)
        return ModelVersion(model, int(version), self.version_uri(model, version), manifest)

    def resolve(self, ref: str | ModelRef) -> ModelVersion:
        """MODEL (latest), MODEL:N or MODEL@ALIAS -> the version's manifest."""
        ref = parse_ref(ref) if isinstance(ref, str) else ref
        if ref.version is not None:
            return self.get_version(ref.model, ref.version)
        if ref.alias is not None:
            record = self.get_alias(ref.model, ref.alias)
            if record is None:
                raise ModelNotFound(f"{ref}: model {ref.model!r} has no alias {ref.alias!r}")
            return self.get_version(ref.model, record.version)
        versions = self.list_versions(ref.model)
        if not versions:
            raise ModelNotFound(f"model {ref.model!r} has no version in the registry")
        return self.get_version(ref.model, versions[-1])

    def verify_manifest(self, model: str, version: int, manifest: dict[str, Any]) -> None:
        """The manifest names the slot it is stored in and, with a signing key configured, carries
        a signature that matches it: storage write access alone cannot bless a version."""
        ref = f"{model}:{version}"
        if manifest.get("model") != model or manifest.get("version") != int(version):
            raise IntegrityError(
                f"{ref}: the manifest stored there names {manifest.get('model')}:"
                f"{manifest.get('version')} (field model/version): it was copied from another version"
            )
        key = self.signing_key
        if key is None:
            return
        signature = manifest.get(SIGNATURE_FIELD)
        if not isinstance(signature, dict):
            raise SignatureError(
                f"{ref} is unsigned: a signing key is configured (key id {key.key_id}), so only "
                "versions signed at registration are accepted"
            )
        if not key.matches(manifest):
            raise SignatureError(
                f"{ref}: the manifest's signature (key id {signature.get('key_id')}) does not match "
                f"it under the configured key (key id {key.key_id}): the manifest was changed after "
                "signing, or signed with another key"
            )

    def fetch(
        self, model: str, version: int, dest_dir: Path | None = None, only: list[str] | None = None
    ) -> Path:
        """Download version files into the local cache (re-verifying what is already there) and
        return the cache directory, or a verified copy in dest_dir. The manifest is checked
        (verify_manifest) and then every file's sha256, or only those of ``only``."""
        manifest = self.get_manifest(model, version)
        self.verify_manifest(model, version, manifest)
        bucket_dir = self.cache_dir / "registry" / self.store.bucket
        cached = bucket_dir / model / str(version)
        prefix = self._version_prefix(model, version)
        wanted = manifest["files"] if only is None else {r: manifest["files"].get(r) for r in only}
        for rel, meta in wanted.items():
            if meta is None:
                raise IntegrityError(f"{model}:{version}: the manifest lists no file {rel!r}")
            rel = _safe_relpath(rel, f"manifest of {model}:{version}")
            local = cached / rel
            if local.is_file() and sha256_file(local) == meta["sha256"]:
                continue
            try:
                self.store.download_file(prefix + rel, local)
            except NotFound:
                raise IntegrityError(
                    f"{model}:{version}: file {rel!r} is missing from {self.store.uri(prefix)}"
                ) from None
            actual = sha256_file(local)
            if actual != meta["sha256"]:
                local.unlink()
                raise IntegrityError(
                    f"{model}:{version}: file {rel!r} has sha256 {actual}, the manifest says "
                    f"{meta['sha256']} (source {self.store.uri(prefix + rel)})"
                )
        (cached / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        if dest_dir is None:
            return cached
        dest_dir = Path(dest_dir)
        for rel in list(wanted) + [MANIFEST]:
            (dest_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cached / rel, dest_dir / rel)
        return dest_dir

    # -- aliases -----------------------------------------------------------------------------
    def _alias_key(self, model: str, alias: str) -> str:
        return f"{self._model_prefix(model)}aliases/{validate_name(alias, 'alias')}.json"

    def get_alias(self, model: str, alias: str) -> AliasRecord | None:
        try:
            raw, etag = self.store.get_with_etag(self._alias_key(model, alias))
        except NotFound:
            return None
        data = json.loads(raw)
        return AliasRecord(
            model=model,
            alias=alias,
            version=int(data["version"]),
            etag=etag,
            updated_at=data["updated_at"],
            actor=data["actor"],
            reason=data["reason"],
            history=data.get("history", []),
        )

    def set_alias(
        self,
        model: str,
        alias: str,
        version: int,
        *,
        actor: str,
        reason: str,
        expected_etag: str | None,
        event_type: str = "alias-set",
        details: dict[str, Any] | None = None,
    ) -> AliasRecord:
        """Point MODEL@ALIAS at version. expected_etag=None creates the alias (refused if it
        exists); otherwise the write succeeds only if the alias still has that ETag."""
        key = self._alias_key(model, alias)
        self.get_manifest(model, version)  # the target must exist
        current = self.get_alias(model, alias) if expected_etag is not None else None
        previous = current.version if current else None
        event = {
            "event": event_type,
            "event_id": uuid.uuid4().hex,
            "version": int(version),
            "previous_version": previous,
            "at": _now(),
            "actor": actor,
            "reason": reason,
            **(details or {}),
        }
        record = {
            "model": model,
            "alias": alias,
            "version": int(version),
            "updated_at": event["at"],
            "actor": actor,
            "reason": reason,
            "history": (current.history if current else []) + [event],
        }
        # The event is written first, as the intent; the alias object is the truth. A crash or a
        # lost race between the two writes leaves an intent whose event_id no alias history holds,
        # and audit_events reports it as not applied: the log never lacks a move that happened.
        self.record_event(model, {**event, "alias": alias})
        try:
            if expected_etag is None:
                etag = self.store.put_json(key, record, if_none_match=True)
            else:
                etag = self.store.put_json(key, record, if_match=expected_etag)
        except (PreconditionFailed, NotFound):
            state = "exists" if expected_etag is None else f"changed since ETag {expected_etag}"
            raise AliasConflict(
                f"{model}@{alias} {state}: another writer moved it first; read it again and retry"
            ) from None
        history = record["history"]
        return AliasRecord(model, alias, int(version), etag, event["at"], actor, reason, history)

    def record_event(self, model: str, event: dict[str, Any]) -> str:
        """Append one audit event (an object of its own, never rewritten); returns its key."""
        event = {"at": _now(), **event, "model": model}
        # Time-ordered names; the random suffix keeps simultaneous events apart.
        stamp = event["at"].replace(":", "").replace("+0000", "Z")
        label = re.sub(r"[^a-z0-9-]+", "-", str(event.get("alias") or event.get("event", "event")).lower())
        name = f"{stamp}-{label}-{uuid.uuid4().hex[:8]}.json"
        key = f"{self._model_prefix(model)}audit.log.d/{name}"
        self.store.put_json(key, event, if_none_match=True)
        return key

    def audit_events(self, model: str, include_unapplied: bool = False) -> list[dict[str, Any]]:
        """Audit events of a model (alias moves, approvals), oldest first. An alias move counts
        as applied when its event_id is in that alias's history; moves that never happened (a
        lost race, a crash before the alias write) are left out unless include_unapplied, and
        then carry ``applied: false``."""
        keys = sorted(self.store.list_keys(f"{self._model_prefix(model)}audit.log.d/"))
        events = [self.store.get_json(key) for key in keys]
        histories: dict[str, set[str]] = {}
        for event in events:
            alias = event.get("alias")
            if not event.get("event_id") or not alias:
                continue
            if alias not in histories:
                record = self.get_alias(model, alias)
                histories[alias] = {h.get("event_id") for h in (record.history if record else [])}
            event["applied"] = event["event_id"] in histories[alias]
        return [e for e in events if include_unapplied or e.get("applied", True)]
