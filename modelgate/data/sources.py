"""Where a dataset comes from: a source spec string, resolved to something readable.

A source spec is one of:

- ``"auto"``: the offline mirror when ``MODELGATE_DATA_MIRROR`` is set, else TensorFlow Datasets;
- ``"tfds"``: TensorFlow Datasets (downloads on first use; needs network);
- ``"mirror"``: the directory named by ``MODELGATE_DATA_MIRROR`` (laid out like ``shared/data``);
- a local file or directory path (a directory is read like the mirror);
- an ``s3://bucket/key`` URI (a key ending in ``/`` is a directory laid out like the mirror).

Dataset readers (``modelgate.data.clinc`` and its siblings) turn a resolved source into rows; this
module only knows where bytes live, how to fetch them, and how to decode a text file so that a
byte that is not UTF-8 is reported with its file, line and offset.
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from modelgate.messages import decode_utf8
from modelgate.settings import Settings, load_settings
from modelgate.storage import NotFound, ObjectStore, parse_s3_uri

AUTO, TFDS, MIRROR, PATH, S3 = "auto", "tfds", "mirror", "path", "s3"


class DataSourceError(RuntimeError):
    """A dataset source could not be resolved or read; the message says which and why."""


@dataclass(frozen=True)
class Source:
    """A resolved source: ``kind`` is tfds, mirror, path or s3; ``location`` is where it points."""

    kind: str
    location: str = ""

    def describe(self) -> str:
        """A one-line description for manifests and logs (never holds credentials)."""
        return self.kind if self.kind == TFDS else f"{self.kind}:{self.location}"


def resolve_source(spec: str, settings: Settings | None = None) -> Source:
    """Turn a source spec string into a Source; 'auto' picks the mirror when one is configured."""
    spec = (spec or AUTO).strip()
    if spec in (AUTO, MIRROR):
        settings = settings or load_settings()
        if settings.data_mirror is not None:
            return Source(MIRROR, str(settings.data_mirror))
        if spec == MIRROR:
            raise DataSourceError(
                "source 'mirror' needs MODELGATE_DATA_MIRROR set to a directory laid out like "
                "shared/data (for example clinc_oos/data_full.json); it is not set"
            )
        return Source(TFDS)
    if spec == TFDS:
        return Source(TFDS)
    if spec.startswith("s3://"):
        parse_s3_uri(spec)  # raises a clear ValueError on a malformed URI
        return Source(S3, spec)
    path = Path(spec).expanduser()
    if not path.exists():
        raise DataSourceError(
            f"source {spec!r} is not 'auto', 'tfds', 'mirror', an s3:// URI, or an existing "
            f"local path (nothing at {path.resolve()})"
        )
    return Source(PATH, str(path.resolve()))


def _store_for_bucket(store: ObjectStore, bucket: str) -> ObjectStore:
    """The same endpoint and credentials, pointed at another bucket."""
    if bucket == store.bucket:
        return store
    return ObjectStore(client=store.client, bucket=bucket, endpoint=store.endpoint)


def read_s3_bytes(uri: str, store: ObjectStore | None = None) -> bytes:
    """Read one object by URI through the project's ObjectStore (any bucket on its endpoint)."""
    bucket, key = parse_s3_uri(uri)
    store = store or ObjectStore.from_settings()
    try:
        return _store_for_bucket(store, bucket).get_bytes(key)
    except NotFound as exc:
        raise DataSourceError(f"dataset source {uri} does not exist in object storage") from exc


@contextlib.contextmanager
def local_copy(source: Source, store: ObjectStore | None = None) -> Iterator[Path]:
    """Yield a local path (file or directory) holding the source's bytes.

    Local paths and the mirror are used in place; s3 sources are downloaded to a temporary
    directory that is removed on exit.
    """
    if source.kind in (PATH, MIRROR):
        yield Path(source.location)
        return
    if source.kind != S3:
        raise DataSourceError(f"a {source.kind} source has no local files; read it with its loader")
    bucket, key = parse_s3_uri(source.location)
    bucket_store = _store_for_bucket(store or ObjectStore.from_settings(), bucket)
    with tempfile.TemporaryDirectory(prefix="modelgate-source-") as tmp:
        if key.endswith("/") or not key:
            files = bucket_store.download_dir(key, tmp)
            if not files:
                raise DataSourceError(f"dataset source {source.location} holds no objects")
            yield Path(tmp)
        else:
            target = Path(tmp) / Path(key).name
            try:
                bucket_store.download_file(key, target)
            except NotFound as exc:
                raise DataSourceError(
                    f"dataset source {source.location} does not exist in object storage"
                ) from exc
            yield target


def decode_text(raw: bytes, where: str) -> str:
    """A text data file's bytes as str; a byte that is not UTF-8 makes the whole file unreadable,
    and the error names the file, the line and the byte offset."""
    return decode_utf8(raw, where, DataSourceError)


def read_text_file(path: Path) -> str:
    """A local text data file, decoded by ``decode_text``."""
    return decode_text(Path(path).read_bytes(), str(path))


def find_in_layout(root: Path, relative: str, layout: str) -> Path:
    """Find ``relative`` (e.g. ``clinc_oos/data_full.json``) under a mirror-like directory.

    Also accepts a directory that is the dataset folder itself (``root/data_full.json``).
    ``layout`` describes the expected files for the error message.
    """
    candidates = [root / relative, root / Path(relative).name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise DataSourceError(
        f"expected {candidates[0]} (or {candidates[1]}); the mirror layout is {layout}"
    )


def load_tfds_splits(name: str, *, data_dir: str | None = None) -> tuple[dict[str, Any], Any]:
    """Load every split of a TFDS dataset as numpy iterables; returns ({split: examples}, info).

    This downloads on first use. Offline it fails, and the error says how to use the mirror.
    """
    try:
        # tensorflow_datasets (and TensorFlow) is heavy and only the tfds source needs it; inside
        # the try, a missing package is reported like any other tfds failure.
        import tensorflow_datasets as tfds

        splits, info = tfds.load(name, split=None, with_info=True, data_dir=data_dir)
        return {split: tfds.as_numpy(ds) for split, ds in splits.items()}, info
    except Exception as exc:  # tfds raises many types (network, checksum, missing builder)
        raise DataSourceError(
            f"could not load {name!r} from TensorFlow Datasets ({type(exc).__name__}: {exc}). "
            "Without network access, set MODELGATE_DATA_MIRROR to a directory laid out like "
            "shared/data and use source 'auto' or 'mirror'."
        ) from exc
