"""Manifest signatures: HMAC-SHA256 over a canonical JSON of the manifest, file hashes included.

The key comes from ``MODELGATE_SIGNING_KEY`` (the key itself) or ``MODELGATE_SIGNING_KEY_FILE``
(a file holding it). With a key configured, registration signs every manifest (the signature is a
field of manifest.json, so a version never exists unsigned) and gate, promote and predict refuse a
version whose signature is missing or does not match. Without a key nothing is signed or checked,
and ``registry show`` says "unsigned". The key is never logged: messages name only its key id,
a short hash that identifies which key signed without revealing it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SIGNATURE_FIELD = "signature"
ALGORITHM = "hmac-sha256"
KEY_ENV = "MODELGATE_SIGNING_KEY"
KEY_FILE_ENV = "MODELGATE_SIGNING_KEY_FILE"
MIN_KEY_BYTES = 16


class SigningKeyError(ValueError):
    """The signing key is configured wrongly (both variables, empty, too short, unreadable)."""


@dataclass(frozen=True)
class SigningKey:
    secret: bytes

    def __repr__(self) -> str:  # never print the secret
        return f"SigningKey(key_id={self.key_id!r})"

    @property
    def key_id(self) -> str:
        return hashlib.sha256(b"modelgate-signing-key-id:" + self.secret).hexdigest()[:12]

    def sign(self, manifest: dict[str, Any]) -> dict[str, str]:
        """The signature field for ``manifest`` (any signature already in it is ignored)."""
        mac = hmac.new(self.secret, canonical_bytes(manifest), hashlib.sha256).hexdigest()
        return {"algorithm": ALGORITHM, "key_id": self.key_id, "value": mac}

    def matches(self, manifest: dict[str, Any]) -> bool:
        signature = manifest.get(SIGNATURE_FIELD)
        if not isinstance(signature, dict) or signature.get("algorithm") != ALGORITHM:
            return False
        return hmac.compare_digest(str(signature.get("value", "")), self.sign(manifest)["value"])


def canonical_bytes(manifest: dict[str, Any]) -> bytes:
    """What is signed: the manifest minus its signature, keys sorted, no whitespace, ASCII only."""
    unsigned = {k: v for k, v in manifest.items() if k != SIGNATURE_FIELD}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def load_signing_key(environ: dict[str, str] | None = None) -> SigningKey | None:
    """The configured key, or None when neither variable is set."""
    environ = os.environ if environ is None else environ
    inline, path = environ.get(KEY_ENV), environ.get(KEY_FILE_ENV)
    if inline and path:
        raise SigningKeyError(f"set {KEY_ENV} or {KEY_FILE_ENV}, not both")
    if path:
        try:
            secret = Path(path).expanduser().read_bytes().strip()
        except OSError as exc:
            raise SigningKeyError(f"{KEY_FILE_ENV}: cannot read {path} ({exc.strerror})") from None
        source = f"{KEY_FILE_ENV} ({path})"
    elif inline:
        secret, source = inline.strip().encode(), KEY_ENV
    else:
        return None
    if len(secret) < MIN_KEY_BYTES:
        raise SigningKeyError(
            f"{source}: the signing key is shorter than {MIN_KEY_BYTES} bytes; "
            "generate one with `python -c 'import secrets; print(secrets.token_hex(32))'`"
        )
    return SigningKey(secret)


def signature_status(manifest: dict[str, Any], key: SigningKey | None) -> str:
    """One word or phrase for `registry show`: unsigned, verified, invalid, or not verified."""
    signature = manifest.get(SIGNATURE_FIELD)
    if not isinstance(signature, dict):
        return "unsigned"
    key_id = signature.get("key_id", "?")
    if key is None:
        return f"signed (key id {key_id}), not verified: no signing key configured"
    if key.matches(manifest):
        return f"signed (key id {key_id}), verified"
    return f"INVALID: does not match the manifest under the configured key (key id {key.key_id})"
