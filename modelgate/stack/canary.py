"""Health that means the local S3 serves data, not just that it answers.

``up`` writes a small canary object once; every health check reads it back and compares its bytes.
Listing buckets alone passes while a volume is lost ("volume 1 not found" after a hard kill).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from modelgate.settings import Settings
from modelgate.stack.processes import StackError, process_alive
from modelgate.storage import (
    NotFound,
    ObjectStore,
    PreconditionFailed,
    StorageAuthError,
    StorageError,
    StorageUnreachable,
)

# Seconds `up` waits for a started SeaweedFS to serve the canary (volumes load in about a second).
CANARY_TIMEOUT = 60.0
CANARY_KEY = "_health/canary.txt"
CANARY_BODY = b"modelgate stack canary: the object store serves its data\n" * 64


class StoreCannotServe(StackError):
    """SeaweedFS answers but cannot serve the data it holds."""


def local_store(settings: Settings, timeout: float | None = None) -> ObjectStore:
    local = replace(settings, s3_endpoint=None)
    creds = local.resolve_credentials()
    if timeout is None:
        return ObjectStore.connect(local.endpoint_url, local.bucket, credentials=creds)
    return ObjectStore.connect(
        local.endpoint_url, local.bucket, credentials=creds,
        connect_timeout=timeout, read_timeout=max(timeout, 5.0), max_attempts=1,
    )  # fmt: skip


def _repair_hint(settings: Settings) -> str:
    data_dir = settings.stack_dir / "seaweedfs"
    return (
        f"its volume files under {data_dir} are missing or damaged. To repair: `modelgate stack "
        f"down`, then `weed fix -collection={settings.bucket} {data_dir}` rebuilds a volume's "
        "index (.idx) from its data (.dat), then `modelgate stack up`; objects whose .dat is gone "
        "are lost"
    )


def write_canary(store: ObjectStore) -> None:
    """Put the canary once: an existing entry is kept, so a lost volume is not papered over."""
    if store.exists(CANARY_KEY):
        return
    try:
        store.put_bytes(CANARY_KEY, CANARY_BODY, if_none_match=True)
    except PreconditionFailed:  # another `up` wrote it first
        pass


def check_canary(settings: Settings, store: ObjectStore) -> None:
    """Read the canary back and compare its bytes; StoreCannotServe says what is wrong."""
    where = store.uri(CANARY_KEY)
    try:
        body = store.get_bytes(CANARY_KEY)
    except NotFound:
        raise StoreCannotServe(
            f"S3 answers but {where} does not exist; `modelgate stack up` writes it"
        ) from None
    except (StorageUnreachable, StorageAuthError):
        raise  # not answering, or refusing the keys: not a data problem
    except StorageError as exc:
        raise StoreCannotServe(
            f"S3 answers but cannot serve its data (reading {where}: {exc}); "
            + _repair_hint(settings)
        ) from None
    if body != CANARY_BODY:
        raise StoreCannotServe(
            f"S3 serves {where} with wrong content ({len(body)} bytes); " + _repair_hint(settings)
        )


def s3_serves_data(settings: Settings, store: ObjectStore) -> None:
    store.ping()
    check_canary(settings, store)


def wait_store_serves(settings: Settings, pid: int, log_file: Path, timeout: float) -> None:
    """After a (re)start volumes load for a moment: wait, bounded, until the canary reads back."""
    store = local_store(settings)
    write_canary(store)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check_canary(settings, store)
        except StoreCannotServe as exc:
            if time.monotonic() >= deadline or not process_alive(pid):
                raise StoreCannotServe(f"{exc}; waited {timeout:.0f} s; log {log_file}") from None
        time.sleep(0.5)
