"""SNLI (premise, hypothesis, label) as one normalised table, and the offline training protocol.

Every reader returns the same columns: ``row_id`` (int, stable order), ``split`` (one of
``SNLI_SPLITS``), ``premise`` and ``hypothesis`` (str) and ``label`` (int: 0 entailment, 1 neutral,
2 contradiction, -1 no gold label). Rows with label -1 are kept here: validation filters them and
quarantines them, so they are counted instead of silently lost.

Readers:

- the mirror layout ``snli/{train,validation,test}.csv.gz`` (gzip CSV, header
  ``premise,hypothesis,label``; ``train`` may be absent, as it is in the offline mirror);
- one CSV or JSON Lines file with columns ``split, premise, hypothesis, label``;
- TensorFlow Datasets ``snli`` (splits ``train, validation, test``), reading only the first
  ``train_fraction`` of train, as the recipe's ``train[:20%]``.

Labels may also be SNLI's names (``entailment``, ``neutral``, ``contradiction``, ``-`` for no gold
label); they become the integers above.

The protocol: with a train split, train on (a fraction of) it, select on validation, report on test.
Without one (the offline mirror), ``apply_offline_protocol`` splits validation by seed into train and
validation parts; test stays the held-out report and gate split either way.
"""

from __future__ import annotations

import gzip
import io
import math
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from modelgate.data.sources import (
    TFDS,
    DataSourceError,
    decode_text,
    load_tfds_splits,
    local_copy,
    resolve_source,
)
from modelgate.messages import one_line
from modelgate.settings import Settings, load_settings
from modelgate.storage import ObjectStore

DATASET_NAME = "snli"
SNLI_SPLITS = ("train", "validation", "test")
COLUMNS = ("row_id", "split", "premise", "hypothesis", "label")
LABEL_NAMES = ("entailment", "neutral", "contradiction")
NO_GOLD_LABEL = -1
RAW_LABELS = (NO_GOLD_LABEL, 0, 1, 2)
# SNLI's own spellings; "-" is its "no gold label" (annotators did not agree).
_LABEL_IDS = {name: i for i, name in enumerate(LABEL_NAMES)} | {"-": NO_GOLD_LABEL}
_SPLIT_ALIASES = {"dev": "validation", "val": "validation", "valid": "validation"}
_LAYOUT = (
    "snli/validation.csv.gz and snli/test.csv.gz (optionally snli/train.csv.gz): gzip CSV with "
    "header premise,hypothesis,label"
)


def _labels(values: Iterable[Any], where: str) -> list[int]:
    """Integer labels from ints, numeric strings or SNLI's label names; anything else is an error."""
    out, bad = [], []
    for position, value in enumerate(values):
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        if isinstance(value, str):
            text = value.strip().lower()
            if text in _LABEL_IDS:
                out.append(_LABEL_IDS[text])
                continue
            try:
                value = int(text)
            except ValueError:
                bad.append((position + 1, value))
                continue
        if isinstance(value, (float, np.floating)) and (math.isnan(value) or value != int(value)):
            bad.append((position + 1, value))
            continue
        try:
            out.append(int(value))
        except (TypeError, ValueError):
            bad.append((position + 1, value))
    if bad:
        raise DataSourceError(
            f"{where}: {len(bad)} labels are neither integers nor SNLI label names "
            f"({', '.join(LABEL_NAMES)}, '-'); first (data row from 1, value): {bad[:5]}"
        )
    return out


def snli_table(rows: Iterable[tuple[str, Any, Any, Any]], where: str) -> pd.DataFrame:
    """(split, premise, hypothesis, label) rows in canonical split order -> the normalised table."""
    rows = list(rows)
    order = {name: i for i, name in enumerate(SNLI_SPLITS)}
    unknown = sorted({str(split) for split, *_ in rows} - set(order))
    if unknown:
        raise DataSourceError(f"{where}: unknown splits {unknown}; expected some of {SNLI_SPLITS}")
    rows.sort(key=lambda row: order[row[0]])  # stable: the source's order inside each split
    frame = pd.DataFrame(
        {
            "split": [r[0] for r in rows],
            # Text stays as read (None included): validation, not the reader, judges it.
            "premise": pd.array([r[1] for r in rows], dtype=object),
            "hypothesis": pd.array([r[2] for r in rows], dtype=object),
            "label": pd.array(_labels((r[3] for r in rows), where), dtype="int64"),
        }
    )
    frame.insert(0, "row_id", pd.RangeIndex(len(frame)).astype("int64"))
    return frame


def _records(frame: pd.DataFrame, where: str, split: str | None = None) -> list[tuple]:
    needed = ["premise", "hypothesis", "label"] + ([] if split else ["split"])
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataSourceError(
            f"{where} lacks columns {missing}; an SNLI table has columns {', '.join(needed)}"
        )
    splits = [split] * len(frame) if split else [_SPLIT_ALIASES.get(s, s) for s in frame["split"]]
    return list(zip(splits, frame["premise"], frame["hypothesis"], _labels(frame["label"], where)))


def _read_table(raw: bytes, where: str, kind: str) -> pd.DataFrame:
    """A CSV (``kind`` "csv"; gzipped when ``where`` ends in .gz) or JSON Lines file as a frame."""
    if where.lower().endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataSourceError(f"{where} is not a readable gzip file: {exc}") from exc
    text = decode_text(raw, where)
    try:
        if kind == "csv":
            # keep_default_na=False: a hypothesis such as "NA" or "null" is text, not a missing value.
            return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        return pd.read_json(io.StringIO(text), lines=True, dtype=False)
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataSourceError(f"{where} is not a readable {kind.upper()} table: {one_line(exc)}") from exc


def read_snli_dir(root: Path) -> pd.DataFrame:
    """The mirror layout (``root/snli/SPLIT.csv[.gz]`` or ``root/SPLIT.csv[.gz]``)."""
    folder = root / DATASET_NAME if (root / DATASET_NAME).is_dir() else root
    rows: list[tuple] = []
    for split in SNLI_SPLITS:
        for name in (f"{split}.csv.gz", f"{split}.csv"):
            path = folder / name
            if path.is_file():
                rows += _records(_read_table(path.read_bytes(), str(path), "csv"), str(path), split)
                break
    if not {split for split, *_ in rows} >= {"validation", "test"}:
        raise DataSourceError(f"no SNLI validation and test files under {root}; the layout is {_LAYOUT}")
    return snli_table(rows, str(folder))


def read_snli_file(path: Path) -> pd.DataFrame:
    """One CSV (optionally .gz) or JSON Lines file with columns split, premise, hypothesis, label."""
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        frame = _read_table(path.read_bytes(), str(path), "csv")
    elif name.endswith((".jsonl", ".ndjson")):
        frame = _read_table(path.read_bytes(), str(path), "jsonl")
    else:
        raise DataSourceError(
            f"cannot read SNLI from {path}: expected a directory ({_LAYOUT}), or a .csv/.csv.gz/.jsonl "
            "file with columns split, premise, hypothesis, label"
        )
    return snli_table(_records(frame, str(path)), str(path))


def snli_from_tfds_examples(
    split_examples: Mapping[str, Iterable[Mapping[str, Any]]],
    train_rows: int | None = None,
) -> pd.DataFrame:
    """TFDS ``snli`` examples (numpy dicts per split) -> the normalised table.

    Only the first ``train_rows`` train examples are read (all when None): the same rows as the
    tfds slice ``train[:N]``, without decoding the rest of the 550k-pair split.
    """
    rows = []
    for split, examples in split_examples.items():
        if split not in SNLI_SPLITS:
            raise DataSourceError(f"unexpected snli split {split!r} from tfds")
        for count, example in enumerate(examples):
            if split == "train" and train_rows is not None and count >= train_rows:
                break
            rows.append((split, _decode(example["premise"]), _decode(example["hypothesis"]), example["label"]))
    return snli_table(rows, "tfds snli")


def _decode(value: Any) -> Any:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def tfds_train_rows(total: int, fraction: float) -> int:
    """Rows of tfds's ``train[:P%]`` for a fraction: it rounds the boundary to the nearest row."""
    return int(round(total * fraction))


def take_fraction(frame: pd.DataFrame, split: str, fraction: float) -> pd.DataFrame:
    """The first ``fraction`` of one split's rows (the slice ``split[:P%]``), other splits untouched."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    rows = frame["split"] == split
    keep = tfds_train_rows(int(rows.sum()), fraction)
    position = rows.cumsum()
    selected = frame[~rows | (position <= keep)]
    return _renumber(selected)


def _renumber(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.reset_index(drop=True)
    frame["row_id"] = pd.RangeIndex(len(frame)).astype("int64")
    return frame


def apply_offline_protocol(frame: pd.DataFrame, validation_fraction: float, seed: int) -> pd.DataFrame:
    """Without a train split: a seeded ``1 - validation_fraction`` of validation becomes train.

    The split is by premise, so the several hypotheses written for one premise never straddle
    train and validation (that would let selection on validation see near-copies of training rows).
    """
    if (frame["split"] == "train").any():
        raise ValueError("the offline protocol is for sources without a train split; this one has one")
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    is_validation = frame["split"] == "validation"
    premises = pd.unique(frame.loc[is_validation, "premise"].astype(str))
    rng = np.random.default_rng(seed)
    shuffled = premises[rng.permutation(len(premises))]
    held = set(shuffled[: max(1, int(round(len(premises) * validation_fraction)))])
    to_train = is_validation & ~frame["premise"].astype(str).isin(held)
    frame = frame.copy()
    frame.loc[to_train, "split"] = "train"
    order = {name: i for i, name in enumerate(SNLI_SPLITS)}
    ranked = frame.assign(_order=frame["split"].map(order)).sort_values(["_order", "row_id"], kind="stable")
    return _renumber(ranked.drop(columns="_order"))


def subsample_split(frame: pd.DataFrame, split: str, rows: int, seed: int) -> pd.DataFrame:
    """At most ``rows`` rows of one split, drawn by seed (kept in source order); others untouched."""
    index = frame.index[frame["split"] == split]
    if len(index) <= rows:
        return frame
    chosen = np.sort(np.random.default_rng(seed).choice(len(index), size=rows, replace=False))
    drop = index.difference(index[chosen])
    return _renumber(frame.drop(index=drop))


def load_snli(
    source: str = "auto",
    train_fraction: float = 0.2,
    *,
    store: ObjectStore | None = None,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """Load SNLI from a source spec (see modelgate.data.sources) as the normalised table.

    A train split, when the source has one, is cut to its first ``train_fraction``.
    """
    if not 0.0 < train_fraction <= 1.0:
        raise ValueError(f"train_fraction must be in (0, 1], got {train_fraction}")
    resolved = resolve_source(source, settings)
    if resolved.kind == TFDS:
        data_dir = (settings or load_settings()).cache_dir / "tensorflow_datasets"
        split_examples, info = load_tfds_splits(DATASET_NAME, data_dir=str(data_dir))
        total = int(info.splits["train"].num_examples)
        return snli_from_tfds_examples(split_examples, tfds_train_rows(total, train_fraction))
    with local_copy(resolved, store) as path:
        frame = read_snli_dir(path) if path.is_dir() else read_snli_file(path)
    if (frame["split"] == "train").any() and train_fraction < 1.0:
        frame = take_fraction(frame, "train", train_fraction)
    return frame
