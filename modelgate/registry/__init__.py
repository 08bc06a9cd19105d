"""The registry room: versioned models in object storage and everything that moves them.

- ``versions``: the S3 layout (its docstring), conditional writes, aliases, the audit log.
- ``release``: gate a candidate and register it as an immutable version (every pipeline's last two
  stages).
- ``promotion``: the CI gate re-check, promote, rollback and approval records.
- ``lineage``: what a manifest records about the code and the environment.
- ``view``: ``registry list`` / ``registry show`` as tables.
- ``refs``: names and MODEL[:N|@ALIAS] references; ``signing``: manifest signatures (HMAC-SHA256);
  ``integrity``: what gate, promote and predict verify before trusting a version; ``gc``: removal
  of half-registered versions.
"""

from modelgate.registry.versions import (
    AliasConflict,
    AliasRecord,
    IntegrityError,
    InvalidReference,
    ModelNotFound,
    ModelRef,
    ModelVersion,
    Registry,
    RegistryError,
    SignatureError,
    parse_ref,
)

__all__ = [
    "AliasConflict",
    "AliasRecord",
    "IntegrityError",
    "InvalidReference",
    "ModelNotFound",
    "ModelRef",
    "ModelVersion",
    "Registry",
    "RegistryError",
    "SignatureError",
    "parse_ref",
]
