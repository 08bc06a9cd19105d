"""Immutable, content-addressed dataset snapshots in object storage.

A table is written as canonical JSON Lines (rows sorted by ``row_id``, keys sorted, UTF-8), so
the same rows always give the same bytes and the same sha256::

    s3://BUCKET/datasets/NAME/SHA256/data.jsonl
    s3://BUCKET/datasets/NAME/SHA256/manifest.json   (written last: the snapshot exists iff it does)

Both writes use ``If-None-Match: *``: concurrent writers of the same content cannot clobber each
other, and an existing snapshot is never rewritten. Tasks pass the small ``DatasetSnapshot``
around, never the DataFrame.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from datetime import datetime, timezone
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelgate.storage import PreconditionFailed, ObjectStore, sha256_bytes

DATA_FILE = "data.jsonl"
MANIFEST_FILE = "manifest.json"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


class SnapshotError(RuntimeError):
    """A snapshot is malformed, missing, or its bytes do not match its sha256."""


class DatasetSnapshot(BaseModel):
    """The small manifest of one snapshot: what ingest and validate hand on (a typed stage result)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    dataset: str
    uri: str  # s3://BUCKET/datasets/NAME/SHA256/data.jsonl
    sha256: str
    rows: int
    split_counts: dict[str, int] = Field(default_factory=dict)
    columns: list[str] = Field(default_factory=list)

    @property
    def manifest_uri(self) -> str:
        return self.uri.rsplit("/", 1)[0] + "/" + MANIFEST_FILE

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DatasetSnapshot":
        missing = {"dataset", "uri", "sha256", "rows"} - set(data)
        if missing:
            raise SnapshotError(f"snapshot manifest lacks {sorted(missing)}: {data!r}")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise SnapshotError(f"snapshot manifest is malformed: {exc}") from None


def plain_value(value: Any) -> Any:
    """A JSON-ready Python value: numpy scalars unwrapped, missing values as null."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalar -> Python scalar
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def canonical_jsonl(frame: pd.DataFrame) -> bytes:
    """Deterministic bytes for a table: one JSON object per row, sorted by row_id, sorted keys."""
    if "row_id" not in frame.columns:
        raise SnapshotError(f"a snapshot table needs a row_id column; it has {list(frame.columns)}")
    if frame["row_id"].duplicated().any():
        dupes = frame.loc[frame["row_id"].duplicated(), "row_id"].head(5).tolist()
        raise SnapshotError(f"row_id must be unique; repeated ids include {dupes}")
    ordered = frame.sort_values("row_id", kind="stable")
    columns = list(ordered.columns)
    lines = []
    for values in ordered.itertuples(index=False, name=None):
        record = {column: plain_value(value) for column, value in zip(columns, values)}
        lines.append(json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode("utf-8") if lines else b""


def _split_counts(frame: pd.DataFrame, split_column: str) -> dict[str, int]:
    if split_column not in frame.columns:
        return {}
    labels = ["<missing>" if plain_value(v) is None else str(v) for v in frame[split_column]]
    return dict(sorted(Counter(labels).items()))


def snapshot_table(
    store: ObjectStore,
    dataset_name: str,
    frame: pd.DataFrame,
    *,
    source: str = "",
    split_column: str = "split",
    extra: dict[str, Any] | None = None,
) -> DatasetSnapshot:
    """Write ``frame`` as an immutable snapshot (or find the identical one) and describe it.

    ``source`` describes where the rows came from; ``extra`` adds fields to manifest.json (for
    example the parent snapshot of a filtered table). Neither changes the content address.
    """
    if not _NAME.match(dataset_name):
        raise SnapshotError(
            f"dataset name {dataset_name!r} must be lowercase letters, digits, '.', '_' or '-'"
        )
    data = canonical_jsonl(frame)
    digest = sha256_bytes(data)
    prefix = f"datasets/{dataset_name}/{digest}"
    snapshot = DatasetSnapshot(
        dataset=dataset_name,
        uri=store.uri(f"{prefix}/{DATA_FILE}"),
        sha256=digest,
        rows=len(frame),
        split_counts=_split_counts(frame, split_column),
        columns=[str(c) for c in frame.columns],
    )
    manifest_key = f"{prefix}/{MANIFEST_FILE}"
    if store.exists(manifest_key):
        return snapshot  # same content, already complete: never rewritten
    try:
        store.put_bytes(f"{prefix}/{DATA_FILE}", data, if_none_match=True,
                        content_type="application/x-ndjson")
    except PreconditionFailed:
        pass  # another writer stored the same bytes (the key is the content's hash)
    manifest = {
        **snapshot.to_dict(),
        "manifest_version": 1,
        "format": "jsonl; one object per row, sorted by row_id, keys sorted, utf-8",
        "source": source,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **(extra or {}),
    }
    try:
        store.put_json(manifest_key, manifest, if_none_match=True)
    except PreconditionFailed:
        pass  # a concurrent writer finished first; its manifest describes the same bytes
    return snapshot


def read_manifest(store: ObjectStore, snapshot: DatasetSnapshot) -> dict[str, Any]:
    """The full manifest.json of a snapshot (source, created_at, extras)."""
    return store.get_json(store.key_of(snapshot.manifest_uri))


def load_snapshot(store: ObjectStore, snapshot: DatasetSnapshot | dict[str, Any]) -> pd.DataFrame:
    """Read a snapshot back as a DataFrame, refusing bytes whose sha256 is not the recorded one."""
    if isinstance(snapshot, dict):
        snapshot = DatasetSnapshot.from_dict(snapshot)
    data = store.get_bytes(store.key_of(snapshot.uri))
    actual = sha256_bytes(data)
    if actual != snapshot.sha256:
        raise SnapshotError(
            f"snapshot {snapshot.uri} is corrupted: its sha256 is {actual}, "
            f"the manifest records {snapshot.sha256}"
        )
    records = [json.loads(line) for line in data.decode("utf-8").splitlines() if line]
    columns = snapshot.columns or (list(records[0]) if records else [])
    frame = pd.DataFrame.from_records(records, columns=columns)
    if len(frame) != snapshot.rows:
        raise SnapshotError(f"snapshot {snapshot.uri} has {len(frame)} rows, manifest says {snapshot.rows}")
    if "row_id" in frame.columns and len(frame):
        frame["row_id"] = frame["row_id"].astype("int64")
    return frame
