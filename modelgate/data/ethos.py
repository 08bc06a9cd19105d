"""ETHOS binary hate speech as one normalised table with a reproducible train/test split.

The source is the dataset's own CSV (``Ethos_Dataset_Binary.csv``): semicolon-separated, header
``comment;isHate``, where ``isHate`` is the fraction of annotators who judged the comment hateful.
It is read from the dataset's GitHub raw URL, the offline mirror (``ethos/Ethos_Dataset_Binary.csv``),
a local file or directory, or an ``s3://`` URI.

The table has the columns of ``COLUMNS``:

- ``row_id``: the comment's position in the CSV (stable provenance);
- ``split``: ``train`` or ``test``; ``order``: position after the seeded shuffle (the recipe takes
  the first ``train_size`` shuffled comments for training, the rest for test; a smaller training
  set is the first N training rows by ``order``);
- ``text``, ``is_hate`` (the fraction, None when missing or not a number) and ``hateful``
  (``is_hate >= threshold``; None when ``is_hate`` is missing).
"""

from __future__ import annotations

import io
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

from modelgate.data.sources import (
    TFDS,
    DataSourceError,
    decode_text,
    find_in_layout,
    local_copy,
    resolve_source,
)
from modelgate.messages import one_line
from modelgate.settings import Settings
from modelgate.storage import ObjectStore

DATASET_NAME = "ethos"
MIRROR_PATH = "ethos/Ethos_Dataset_Binary.csv"
ONLINE_URL = (
    "https://raw.githubusercontent.com/intelligence-csd-auth-gr/Ethos-Hate-Speech-Dataset/"
    "master/ethos/ethos_data/Ethos_Dataset_Binary.csv"
)
SOURCE_COLUMNS = ("comment", "isHate")
COLUMNS = ("row_id", "split", "order", "text", "is_hate", "hateful")
SPLITS = ("train", "test")
_LAYOUT = f"{MIRROR_PATH}: semicolon-separated with header 'comment;isHate'"


def parse_ethos_csv(raw: bytes, where: str) -> pd.DataFrame:
    """The CSV bytes -> (row_id, text, is_hate). Unparseable fractions become None (quarantined
    later by validation, not dropped here)."""
    text = decode_text(raw, where)
    try:
        frame = pd.read_csv(io.StringIO(text), sep=";", dtype={"comment": str}, keep_default_na=False)
    except pd.errors.ParserError as exc:
        raise DataSourceError(f"{where} is not a readable ETHOS CSV ({_LAYOUT}): {one_line(exc)}") from exc
    missing = [c for c in SOURCE_COLUMNS if c not in frame.columns]
    if missing:
        raise DataSourceError(
            f"{where} lacks columns {missing} (has {list(frame.columns)}); expected {_LAYOUT}"
        )
    fractions = pd.to_numeric(frame["isHate"].replace("", np.nan), errors="coerce")
    return pd.DataFrame(
        {
            "row_id": pd.RangeIndex(len(frame)).astype("int64"),
            "text": frame["comment"].astype(str),
            "is_hate": [None if pd.isna(v) else float(v) for v in fractions],
        }
    )


def split_and_label(
    frame: pd.DataFrame, *, seed: int = 32, train_size: int = 800, threshold: float = 0.5
) -> pd.DataFrame:
    """Shuffle with ``seed``, the first ``train_size`` rows train and the rest test; label rows."""
    if not 0 < train_size < len(frame):
        raise ValueError(
            f"train_size must be between 1 and {len(frame) - 1} for {len(frame)} comments, got {train_size}"
        )
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"hateful threshold must be in (0, 1], got {threshold}")
    permutation = np.random.default_rng(seed).permutation(len(frame))
    order = np.empty(len(frame), dtype=np.int64)
    order[permutation] = np.arange(len(frame))
    out = frame.copy()
    out.insert(1, "split", np.where(order < train_size, "train", "test"))
    out.insert(2, "order", order)
    out["hateful"] = pd.array([None if pd.isna(v) else bool(v >= threshold) for v in out["is_hate"]],
                              dtype="boolean")
    return out[list(COLUMNS)]


def _read_url(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.read()
    except OSError as exc:
        raise DataSourceError(
            f"could not download ETHOS from {url} ({exc}). Without network access, set "
            "MODELGATE_DATA_MIRROR to a directory laid out like shared/data and use source 'auto'."
        ) from exc


def read_ethos(
    source: str = "auto", *, store: ObjectStore | None = None, settings: Settings | None = None
) -> tuple[pd.DataFrame, str]:
    """(rows, description of where they came from). 'auto' without a mirror, 'tfds' (ETHOS is not
    in TensorFlow Datasets) and http(s) URLs read the CSV over the network."""
    if source.startswith(("http://", "https://")):
        return parse_ethos_csv(_read_url(source), source), source
    resolved = resolve_source(source, settings)
    if resolved.kind == TFDS:
        return parse_ethos_csv(_read_url(ONLINE_URL), ONLINE_URL), ONLINE_URL
    with local_copy(resolved, store) as path:
        if Path(path).is_dir():
            path = find_in_layout(Path(path), MIRROR_PATH, _LAYOUT)
        return parse_ethos_csv(Path(path).read_bytes(), str(path)), resolved.describe()


def load_ethos(
    source: str = "auto",
    *,
    seed: int = 32,
    train_size: int = 800,
    threshold: float = 0.5,
    store: ObjectStore | None = None,
    settings: Settings | None = None,
) -> tuple[pd.DataFrame, str]:
    """Read ETHOS and split/label it (see the module docstring); returns (table, source description)."""
    rows, where = read_ethos(source, store=store, settings=settings)
    return split_and_label(rows, seed=seed, train_size=train_size, threshold=threshold), where


def training_rows(frame: pd.DataFrame, examples: int | None = None) -> pd.DataFrame:
    """The training split in shuffled order, optionally only its first ``examples`` rows."""
    train = frame.loc[frame["split"] == "train"].sort_values("order", kind="stable")
    if examples is not None:
        if examples > len(train):
            raise ValueError(f"asked for {examples} training examples; the train split has {len(train)}")
        train = train.head(examples)
    return train
