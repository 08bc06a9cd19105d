"""Settings read from the environment: where local state lives and which object store to talk to.

Every knob has one name, documented in README.md:

- ``MODELGATE_HOME``: local state (stack data, caches, logs); default ``~/.modelgate``.
- ``MODELGATE_S3_ENDPOINT``, else ``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL``: the S3
  endpoint URL (first one set wins); none set means the local stack's SeaweedFS.
- ``MODELGATE_BUCKET``: the bucket holding datasets, runs and the registry; default ``modelgate``.
- Credentials and region of an S3 endpoint come from boto3's own chain (``AWS_ACCESS_KEY_ID`` /
  ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, ``AWS_PROFILE`` with ``~/.aws`` or
  ``AWS_CONFIG_FILE`` / ``AWS_SHARED_CREDENTIALS_FILE``, SSO, web identity, instance roles).
  The local stack ignores them: it uses the identity it generated (``stack/s3-credentials.json``).
- ``MODELGATE_DATA_MIRROR``: a directory laid out like the offline data mirror, used instead of downloads.
- ``MODELGATE_S3_PORT``, ``MODELGATE_PREFECT_PORT``: ports of the local stack.
- ``MODELGATE_WEED_PORT_BASE``: first of the nine other ports of the local stack's SeaweedFS
  (S3 gRPC, master, volume, filer and their gRPC ports, admin, debug; admin gRPC is admin + 10000).
  Unset, they are the nine ports after ``MODELGATE_S3_PORT``, so two stacks side by side then need
  S3 ports at least ten apart.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_BUCKET = "modelgate"
DEFAULT_S3_PORT = 8333
DEFAULT_PREFECT_PORT = 4200
# Highest precedence first: ours, then the standard AWS names (S3-specific, then global).
ENDPOINT_VARIABLES = ("MODELGATE_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer port number, got {raw!r}") from None


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str

    def __repr__(self) -> str:  # never print the secret
        return f"Credentials(access_key={self.access_key!r}, secret_key='***')"


@dataclass(frozen=True)
class Settings:
    home: Path
    bucket: str
    s3_endpoint: str | None
    s3_port: int
    prefect_port: int
    region: str | None  # None: boto3 resolves it (AWS_REGION, AWS_DEFAULT_REGION, the profile)
    data_mirror: Path | None
    # Explicit keys; None means the local stack's identity or else boto3's credential chain.
    credentials: Credentials | None = field(default=None, repr=False)

    @property
    def uses_local_stack(self) -> bool:
        return self.s3_endpoint is None

    @property
    def stack_dir(self) -> Path:
        return self.home / "stack"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def local_credentials_file(self) -> Path:
        return self.stack_dir / "s3-credentials.json"

    @property
    def endpoint_url(self) -> str:
        return self.s3_endpoint or f"http://127.0.0.1:{self.s3_port}"

    @property
    def prefect_api_url(self) -> str:
        return os.environ.get("PREFECT_API_URL") or f"http://127.0.0.1:{self.prefect_port}/api"

    def resolve_credentials(self) -> Credentials | None:
        """Explicit keys; else, for the local stack, the identity it generated (never the user's
        AWS keys); else None, and boto3 resolves credentials itself."""
        if self.credentials is not None:
            return self.credentials
        if self.uses_local_stack and self.local_credentials_file.exists():
            data = json.loads(self.local_credentials_file.read_text())
            return Credentials(data["access_key"], data["secret_key"])
        return None


def s3_endpoint_from_env() -> str | None:
    """The first of ENDPOINT_VARIABLES that is set, or None (the local stack)."""
    for name in ENDPOINT_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value:
            if not value.startswith(("http://", "https://")):
                raise ValueError(f"{name} must be an http(s):// URL, got {value!r}")
            return value
    return None


def load_settings() -> Settings:
    home = Path(os.environ.get("MODELGATE_HOME") or Path.home() / ".modelgate").expanduser()
    mirror = os.environ.get("MODELGATE_DATA_MIRROR")
    return Settings(
        home=home,
        bucket=os.environ.get("MODELGATE_BUCKET") or DEFAULT_BUCKET,
        s3_endpoint=s3_endpoint_from_env(),
        s3_port=_env_int("MODELGATE_S3_PORT", DEFAULT_S3_PORT),
        prefect_port=_env_int("MODELGATE_PREFECT_PORT", DEFAULT_PREFECT_PORT),
        region=None,
        data_mirror=Path(mirror).expanduser() if mirror else None,
    )
