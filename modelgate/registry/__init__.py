"""The registry room: versioned models in object storage and everything that moves them.

- ``versions``: the S3 layout (its docstring), conditional writes, aliases, the audit log.
- ``release``: gate a candidate and register it as an immutable version (every pipeline's last two
  stages).
- ``promotion``: the CI gate re-check, promote, rollback and approval records.
- ``lineage``: what a manifest records about the code and the environment.
- ``view``: ``registry list`` / ``registry show`` as tables.
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
    "parse_ref",
]
