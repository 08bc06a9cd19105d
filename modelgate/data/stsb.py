"""The STS Benchmark (sentence pairs scored 0-5 by people): the job-similarity generality check.

Columns of the returned table: ``row_id, split, genre, sentence1, sentence2, score`` (score 0-5).
Sources: the offline mirror (``stsb/sts-{train,dev,test}.csv``), a folder or file laid out like
it, an s3:// URI, or, with no mirror configured, the official ``Stsbenchmark.tar.gz`` downloaded
once into modelgate's cache. The files are tab-separated without quoting; some rows carry two
extra source columns, so only the first seven fields are read (genre, file, year, id, score,
sentence1, sentence2).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from modelgate.data.sources import (
    TFDS,
    DataSourceError,
    find_in_layout,
    local_copy,
    read_text_file,
    resolve_source,
)
from modelgate.settings import load_settings
from modelgate.storage import ObjectStore

DATASET_NAME = "stsb"
SPLIT_FILES = {"train": "sts-train.csv", "validation": "sts-dev.csv", "test": "sts-test.csv"}
OFFICIAL_URL = "http://ixa2.si.ehu.eus/stswiki/images/4/48/Stsbenchmark.tar.gz"
_LAYOUT = "stsb/sts-{train,dev,test}.csv, tab-separated: genre, file, year, id, score, sentence1, sentence2"


def read_stsb_file(path: Path, split: str) -> pd.DataFrame:
    """One STS-B file -> the table; a malformed line is an error naming the file and line."""
    rows = []
    for number, line in enumerate(read_text_file(path).splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 7:
            raise DataSourceError(f"{path}:{number}: expected at least 7 tab-separated fields, got {len(fields)}")
        try:
            score = float(fields[4])
        except ValueError:
            raise DataSourceError(f"{path}:{number}: score {fields[4]!r} is not a number") from None
        if not 0.0 <= score <= 5.0:
            raise DataSourceError(f"{path}:{number}: score {score} is outside STS-B's 0-5 scale")
        rows.append((split, fields[0], fields[5], fields[6], score))
    if not rows:
        raise DataSourceError(f"{path} holds no STS-B pairs")
    frame = pd.DataFrame(rows, columns=["split", "genre", "sentence1", "sentence2", "score"])
    frame.insert(0, "row_id", pd.RangeIndex(len(frame)).astype("int64"))
    return frame


def _download_official() -> Path:
    """The official tarball, fetched once into the cache (needs network)."""
    import keras  # only for keras.utils.get_file; keeps TensorFlow off the data loaders' import

    cache = load_settings().cache_dir / "stsb"
    try:
        keras.utils.get_file("Stsbenchmark.tar.gz", OFFICIAL_URL, cache_dir=str(cache),
                             cache_subdir="", extract=True)
    except Exception as exc:  # network, HTTP or archive errors: one clear message
        raise DataSourceError(
            f"could not download STS-B from {OFFICIAL_URL} ({type(exc).__name__}: {exc}). Without "
            "network access, set MODELGATE_DATA_MIRROR to a directory laid out like shared/data."
        ) from exc
    found = sorted(cache.rglob(SPLIT_FILES["test"]))
    if not found:
        raise DataSourceError(f"the STS-B archive from {OFFICIAL_URL} has no {SPLIT_FILES['test']}")
    return found[0].parent


def load_stsb(source: str = "auto", split: str = "test", *, store: ObjectStore | None = None) -> pd.DataFrame:
    """One STS-B split (train, validation or test) from a source spec."""
    if split not in SPLIT_FILES:
        raise ValueError(f"unknown STS-B split {split!r}; choose one of {sorted(SPLIT_FILES)}")
    resolved = resolve_source(source)
    if resolved.kind == TFDS:  # GLUE's STS-B in tfds has no test labels: use the official files
        folder = _download_official()
        return read_stsb_file(folder / SPLIT_FILES[split], split)
    with local_copy(resolved, store) as path:
        if path.is_dir():
            path = find_in_layout(path, f"stsb/{SPLIT_FILES[split]}", _LAYOUT)
        return read_stsb_file(path, split)
