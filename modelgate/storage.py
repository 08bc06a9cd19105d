"""Object storage through boto3: the one place that talks S3.

The same code serves AWS S3, MinIO, or the local SeaweedFS of ``modelgate stack``. Conditional
writes (``If-None-Match: *`` and ``If-Match: ETAG``) are what make the registry safe under
concurrent writers, so they are first-class here.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from modelgate.settings import Credentials, Settings, load_settings

CHUNK = 1024 * 1024
PRESIGNED_SECONDS = 7 * 24 * 3600  # the longest a SigV4 presigned URL may live
# A hung S3 must not hang a command: each request may wait CONNECT_TIMEOUT to connect and
# READ_TIMEOUT between bytes, and is tried MAX_ATTEMPTS times, so one operation gives up within
# about MAX_ATTEMPTS * (CONNECT_TIMEOUT + READ_TIMEOUT) seconds.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 15.0
MAX_ATTEMPTS = 2
DEFAULT_REGION = "us-east-1"  # SigV4 needs one; S3-compatible servers ignore it

# What browsers need to open reports and Data Docs straight from S3; anything else is binary.
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".jsonl": "application/x-ndjson",
    ".csv": "text/csv; charset=utf-8",
    ".tsv": "text/tab-separated-values; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".log": "text/plain; charset=utf-8",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".npz": "application/octet-stream",
    ".npy": "application/octet-stream",
    ".keras": "application/octet-stream",
}


def content_type_for(name: str) -> str:
    """The Content-Type an object named ``name`` is stored with."""
    suffix = Path(name).suffix.lower()
    if suffix in _CONTENT_TYPES:
        return _CONTENT_TYPES[suffix]
    guessed, encoding = mimetypes.guess_type(name)
    return guessed if guessed and not encoding else "application/octet-stream"


class StorageError(RuntimeError):
    """Object storage could not do what was asked (unreachable, refused, corrupted)."""


class StorageUnreachable(StorageError):
    pass


class StorageAuthError(StorageError):
    pass


class NotFound(StorageError):
    pass


class PreconditionFailed(StorageError):
    """A conditional write lost: the key exists (If-None-Match) or changed (If-Match)."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def parse_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"s3 URI has no bucket: {uri!r}")
    return bucket, key


_AUTH_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken", "403"}
_MISSING_CODES = {"NoSuchKey", "404", "NotFound", "NoSuchBucket"}
_PRECONDITION_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


@dataclass
class ObjectStore:
    client: Any
    bucket: str
    endpoint: str
    # The longest one operation waits on a silent server (all attempts), for the error message.
    patience_s: float = MAX_ATTEMPTS * READ_TIMEOUT

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> "ObjectStore":
        """The configured store: the local stack with its own identity, or any S3 with boto3's
        credential chain (env incl. session token, AWS_PROFILE and ~/.aws files, instance roles)."""
        settings = settings or load_settings()
        return cls.connect(
            settings.endpoint_url,
            settings.bucket,
            credentials=settings.resolve_credentials(),
            # The local stack keeps to its own region too, whatever the user's AWS config says.
            region=settings.region or (DEFAULT_REGION if settings.uses_local_stack else None),
        )

    @classmethod
    def connect(
        cls,
        endpoint: str,
        bucket: str,
        *,
        credentials: Credentials | None = None,
        region: str | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> "ObjectStore":
        """A store on an explicit endpoint and bucket.

        Without ``credentials`` (and ``region``) boto3 resolves them the way every AWS tool does."""
        session = boto3.session.Session()
        kwargs: dict[str, Any] = {}
        if credentials is not None:
            kwargs = {
                "aws_access_key_id": credentials.access_key,
                "aws_secret_access_key": credentials.secret_key,
            }
        client = session.client(
            "s3",
            endpoint_url=endpoint,
            region_name=region or session.region_name or DEFAULT_REGION,
            config=Config(
                s3={"addressing_style": "path"},
                signature_version="s3v4",
                retries={"total_max_attempts": max_attempts, "mode": "standard"},
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                # Only checksum when S3 asks: SeaweedFS and older MinIO reject the newer defaults.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
            **kwargs,
        )
        patience = max_attempts * max(connect_timeout, read_timeout)
        return cls(client=client, bucket=bucket, endpoint=endpoint, patience_s=patience)

    # -- error translation -------------------------------------------------------------------
    def _call(self, what: str, fn, **kwargs):
        try:
            return fn(**kwargs)
        except (ReadTimeoutError, ConnectTimeoutError) as exc:
            raise StorageUnreachable(
                f"S3 at {self.endpoint} did not answer within {self.patience_s:.0f} s ({what}); "
                "is the server hung or overloaded?"
            ) from exc
        except EndpointConnectionError as exc:
            raise StorageUnreachable(
                f"cannot reach object storage at {self.endpoint} ({what}); "
                "start the local stack with `modelgate stack up` or set MODELGATE_S3_ENDPOINT"
            ) from exc
        except ConnectionClosedError as exc:
            raise StorageUnreachable(
                f"S3 at {self.endpoint} closed the connection before answering ({what}); "
                "did the server stop?"
            ) from exc
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            key = kwargs.get("Key") or kwargs.get("Prefix") or ""
            where = f"s3://{self.bucket}/{key}"
            if code in _PRECONDITION_CODES:
                raise PreconditionFailed(f"{what}: precondition failed on {where}") from exc
            if code in _MISSING_CODES:
                raise NotFound(f"{what}: {where} does not exist") from exc
            if code in _AUTH_CODES:
                raise StorageAuthError(
                    f"{what}: object storage at {self.endpoint} refused the credentials ({code})"
                ) from exc
            raise StorageError(f"{what} on {where} failed: {code or exc}") from exc
        except NoCredentialsError as exc:
            raise StorageAuthError(
                f"{what}: no credentials for object storage at {self.endpoint}; set "
                "AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or use the local stack"
            ) from exc
        except BotoCoreError as exc:
            raise StorageError(f"{what} failed against {self.endpoint}: {exc}") from exc

    # -- buckets -----------------------------------------------------------------------------
    def ping(self) -> None:
        """One signed request (list buckets): proves the endpoint answers and accepts the keys."""
        self._call("list buckets", self.client.list_buckets)

    def delete_bucket(self) -> None:
        """Delete every object, then the bucket itself."""
        self.delete_prefix("")
        self._call("delete bucket", self.client.delete_bucket, Bucket=self.bucket)

    def ensure_bucket(self) -> None:
        try:
            self._call("head bucket", self.client.head_bucket, Bucket=self.bucket)
        except NotFound:
            try:
                self._call("create bucket", self.client.create_bucket, Bucket=self.bucket)
            except StorageError as exc:
                if "BucketAlreadyOwnedByYou" not in str(exc.__cause__ or exc):
                    raise

    # -- URIs --------------------------------------------------------------------------------
    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def key_of(self, uri: str) -> str:
        bucket, key = parse_s3_uri(uri)
        if bucket != self.bucket:
            raise ValueError(f"{uri} is outside the configured bucket {self.bucket!r}")
        return key

    def presigned_url(self, key_or_uri: str, expires_s: int = PRESIGNED_SECONDS) -> str:
        """An HTTP link to one object that works without credentials for ``expires_s`` seconds."""
        key = self.key_of(key_or_uri) if key_or_uri.startswith("s3://") else key_or_uri
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=int(expires_s)
        )

    # -- objects -----------------------------------------------------------------------------
    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        if_none_match: bool = False,
        if_match: str | None = None,
        content_type: str | None = None,
    ) -> str:
        """Write one object; returns its ETag. Conditional forms raise PreconditionFailed on loss."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "Body": data}
        if if_none_match:
            kwargs["IfNoneMatch"] = "*"
        if if_match is not None:
            kwargs["IfMatch"] = if_match
        kwargs["ContentType"] = content_type or content_type_for(key)
        response = self._call("put object", self.client.put_object, **kwargs)
        return response.get("ETag", "")

    def put_json(self, key: str, payload: Any, **kwargs) -> str:
        data = json.dumps(payload, indent=2, sort_keys=True, default=str).encode()
        return self.put_bytes(key, data, content_type="application/json", **kwargs)

    def get_bytes(self, key: str) -> bytes:
        return self.get_with_etag(key)[0]

    def get_with_etag(self, key: str) -> tuple[bytes, str]:
        response = self._call("get object", self.client.get_object, Bucket=self.bucket, Key=key)
        return response["Body"].read(), response.get("ETag", "")

    def get_json(self, key: str) -> Any:
        raw = self.get_bytes(key)
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise StorageError(f"s3://{self.bucket}/{key} is not valid JSON: {exc}") from exc

    def exists(self, key: str) -> bool:
        try:
            self._call("head object", self.client.head_object, Bucket=self.bucket, Key=key)
            return True
        except NotFound:
            return False

    def upload_file(self, path: str | os.PathLike, key: str, *, if_none_match: bool = False) -> str:
        """Upload a file; returns its sha256. Small files go through put_object (conditional-capable)."""
        digest = sha256_file(path)
        size = os.path.getsize(path)
        content_type = content_type_for(key)
        if if_none_match or size < 64 * CHUNK:
            with open(path, "rb") as handle:
                data = handle.read()
            self.put_bytes(key, data, if_none_match=if_none_match, content_type=content_type)
        else:
            self._call(
                "upload file",
                self.client.upload_file,
                Filename=str(path),
                Bucket=self.bucket,
                Key=key,
                ExtraArgs={"ContentType": content_type},
            )
        return digest

    def download_file(self, key: str, path: str | os.PathLike) -> Path:
        """Download to a temporary name, then rename: a partial download never looks complete."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        os.close(fd)
        try:
            self._call(
                "download file", self.client.download_file, Bucket=self.bucket, Key=key, Filename=tmp
            )
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    def upload_dir(self, local_dir: str | os.PathLike, prefix: str) -> dict[str, str]:
        """Upload every file under local_dir to prefix/; returns {relative path: sha256}."""
        local_dir = Path(local_dir)
        hashes: dict[str, str] = {}
        for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
            rel = path.relative_to(local_dir).as_posix()
            hashes[rel] = self.upload_file(path, f"{prefix.rstrip('/')}/{rel}")
        return hashes

    def download_dir(self, prefix: str, local_dir: str | os.PathLike) -> list[Path]:
        prefix = prefix.rstrip("/") + "/"
        out = []
        for key in self.list_keys(prefix):
            out.append(self.download_file(key, Path(local_dir) / key[len(prefix) :]))
        return out

    def list_keys(self, prefix: str) -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []) or []:
                    yield item["Key"]
        except (ClientError, BotoCoreError) as exc:
            # Re-raise through the same translation as every other call.
            self._call("list objects", _raise, exc=exc, Prefix=prefix)

    def list_prefixes(self, prefix: str) -> list[str]:
        """Immediate 'sub-folders' of prefix (which should end with '/')."""
        paginator = self.client.get_paginator("list_objects_v2")
        found: list[str] = []
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
                for item in page.get("CommonPrefixes", []) or []:
                    found.append(item["Prefix"])
        except (ClientError, BotoCoreError) as exc:
            self._call("list prefixes", _raise, exc=exc, Prefix=prefix)
        return found

    def delete(self, key: str) -> None:
        self._call("delete object", self.client.delete_object, Bucket=self.bucket, Key=key)

    def delete_prefix(self, prefix: str) -> int:
        count = 0
        for key in list(self.list_keys(prefix)):
            self.delete(key)
            count += 1
        return count


def _raise(exc: Exception, **_: Any) -> None:
    raise exc
