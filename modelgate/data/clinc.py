"""CLINC150 (intent classification with out-of-scope queries) as one normalised table.

Every reader returns the same columns: ``row_id`` (int, stable order), ``split`` (one of
``CLINC_SPLITS``), ``text`` (str) and ``intent`` (str; ``"oos"`` for out-of-scope). Out-of-scope
rows always live in the ``oos_*`` splits, whatever the source's own layout.

Readers:

- the original JSON layout (``data_full.json`` / ``data_small.json`` / ...: an object of splits,
  each a list of ``[text, intent]``; keys ``train, val, test, oos_train, oos_val, oos_test``),
  found in the mirror at ``clinc_oos/data_VARIANT.json`` or given as a file;
- a CSV or JSON Lines file with columns ``split, text, intent``;
- TensorFlow Datasets ``clinc_oos`` (splits ``train, validation, test`` plus ``train_oos,
  validation_oos, test_oos``; features ``text``, ``intent`` (int), ``intent_name``).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from modelgate.data.sources import (
    MIRROR,
    PATH,
    S3,
    TFDS,
    DataSourceError,
    Source,
    find_in_layout,
    load_tfds_splits,
    decode_text,
    local_copy,
    read_s3_bytes,
    read_text_file,
    resolve_source,
)
from modelgate.messages import one_line
from modelgate.settings import Settings, load_settings
from modelgate.storage import ObjectStore

DATASET_NAME = "clinc_oos"
OOS_INTENT = "oos"
IN_SCOPE_SPLITS = ("train", "validation", "test")
OOS_SPLITS = ("oos_train", "oos_validation", "oos_test")
CLINC_SPLITS = IN_SCOPE_SPLITS + OOS_SPLITS
COLUMNS = ("row_id", "split", "text", "intent")
VARIANTS = ("full", "small", "imbalanced", "oos_plus")
# CLINC150's small variant: 50 training queries per intent, every other split as in full.
SMALL_TRAIN_PER_INTENT = 50
SMALL_SEED = 150

# The original JSON files abbreviate "validation".
_JSON_SPLIT_NAMES = {
    "train": "train",
    "val": "validation",
    "test": "test",
    "oos_train": "oos_train",
    "oos_val": "oos_validation",
    "oos_test": "oos_test",
}
_JSON_LAYOUT = (
    "clinc_oos/data_VARIANT.json: a JSON object with keys train, val, test, oos_train, oos_val, "
    "oos_test, each a list of [text, intent] pairs"
)


def _table(rows: Iterable[tuple[str, Any, Any]]) -> pd.DataFrame:
    """(split, text, intent) rows in canonical split order -> the normalised table."""
    rows = list(rows)
    order = {name: i for i, name in enumerate(CLINC_SPLITS)}
    unknown = sorted({split for split, _, _ in rows} - set(order))
    if unknown:
        raise DataSourceError(f"CLINC rows name unknown splits {unknown}; expected {CLINC_SPLITS}")
    # A stable sort keeps the source's order inside each split, so row ids are reproducible.
    rows.sort(key=lambda row: order[row[0]])
    frame = pd.DataFrame(rows, columns=["split", "text", "intent"])
    frame.insert(0, "row_id", pd.RangeIndex(len(frame)).astype("int64"))
    return frame


def clinc_from_json_layout(payload: Mapping[str, Any]) -> pd.DataFrame:
    """The original CLINC JSON object of splits -> the normalised table."""
    if not isinstance(payload, Mapping):
        raise DataSourceError(f"CLINC JSON must be an object of splits; got {type(payload).__name__}")
    unknown = sorted(set(payload) - set(_JSON_SPLIT_NAMES))
    if unknown:
        raise DataSourceError(
            f"CLINC JSON has unknown keys {unknown}; the layout is {_JSON_LAYOUT}"
        )
    rows = []
    for key, split in _JSON_SPLIT_NAMES.items():
        for position, pair in enumerate(payload.get(key, [])):
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise DataSourceError(
                    f"CLINC JSON split {key!r} item {position} is not a [text, intent] pair: {pair!r}"
                )
            rows.append((split, pair[0], pair[1]))
    return _table(rows)


def _decode(value: Any) -> Any:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def clinc_from_tfds_examples(
    split_examples: Mapping[str, Iterable[Mapping[str, Any]]],
    intent_names: Sequence[str] | None = None,
) -> pd.DataFrame:
    """TFDS ``clinc_oos`` examples (numpy dicts per split) -> the normalised table.

    The intent name comes from the ``intent_name`` feature when present, else from
    ``intent_names[intent]`` (a ClassLabel's names). Rows of the ``*_oos`` splits, and any row
    whose intent is ``oos`` in an in-scope split, go to the matching ``oos_*`` split: the tfds
    copy keeps OOS queries apart by split, which is the source of truth for being out of scope.
    """
    rows = []
    for tfds_split, examples in split_examples.items():
        oos_split = tfds_split.endswith("_oos")
        base = tfds_split[: -len("_oos")] if oos_split else tfds_split
        if base not in IN_SCOPE_SPLITS:
            raise DataSourceError(f"unexpected clinc_oos split {tfds_split!r} from tfds")
        for example in examples:
            if "intent_name" in example:
                intent = _decode(example["intent_name"])
            elif intent_names is not None:
                intent = intent_names[int(example["intent"])]
            else:
                raise DataSourceError(
                    "tfds clinc_oos example has no intent_name and no label names were given"
                )
            if oos_split:
                intent = OOS_INTENT
            split = f"oos_{base}" if intent == OOS_INTENT else base
            rows.append((split, _decode(example["text"]), intent))
    return _table(rows)


def clinc_from_records(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """A CSV/JSONL table with columns split, text, intent -> the normalised table."""
    missing = {"split", "text", "intent"} - set(frame.columns)
    if missing:
        raise DataSourceError(
            f"{where} lacks columns {sorted(missing)}; a CLINC table has columns split, text, intent"
        )
    splits = frame["split"].map(lambda s: _JSON_SPLIT_NAMES.get(s, s))
    return _table(zip(splits, frame["text"], frame["intent"]))


def small_from_full(frame: pd.DataFrame, per_intent: int = SMALL_TRAIN_PER_INTENT,
                    seed: int = SMALL_SEED) -> pd.DataFrame:
    """CLINC150's small variant derived from the full table: ``per_intent`` training queries of
    each intent drawn with a fixed seed (the published ``data_small.json`` is also a random 50 of
    each intent's 100), every other split unchanged; row ids renumbered as ``_table`` does."""
    train = frame["split"] == "train"
    keep = pd.Series(True, index=frame.index)
    rng = np.random.default_rng(seed)
    for intent in sorted(frame.loc[train, "intent"].unique()):
        rows = frame.index[train & (frame["intent"] == intent)]
        if len(rows) > per_intent:
            dropped = np.setdiff1d(rows, rng.choice(rows, size=per_intent, replace=False))
            keep[dropped] = False
    return _table(frame.loc[keep, ["split", "text", "intent"]].itertuples(index=False, name=None))


def read_clinc_file(path: Path) -> pd.DataFrame:
    """Read a CLINC JSON-layout, CSV or JSON Lines file, chosen by its suffix."""
    suffix = path.suffix.lower()
    if suffix not in (".json", ".csv", ".jsonl", ".ndjson"):
        raise DataSourceError(
            f"cannot read CLINC from {path}: expected .json ({_JSON_LAYOUT}), .csv or .jsonl "
            "with columns split, text, intent"
        )
    text = read_text_file(path)
    if suffix == ".json":
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataSourceError(f"{path} is not valid JSON: {exc}") from exc
        return clinc_from_json_layout(payload)
    try:
        if suffix == ".csv":
            frame = pd.read_csv(io.StringIO(text), dtype={"text": str}, keep_default_na=False)
        else:
            frame = pd.read_json(io.StringIO(text), lines=True, dtype=False)
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataSourceError(f"{path} is not a readable {suffix[1:].upper()} table: {one_line(exc)}") from exc
    return clinc_from_records(frame, str(path))


def load_clinc(
    source: str = "auto",
    variant: str = "full",
    *,
    store: ObjectStore | None = None,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """Load CLINC150 from a source spec (see modelgate.data.sources) as the normalised table."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown CLINC variant {variant!r}; choose one of {VARIANTS}")
    resolved = resolve_source(source, settings)
    if resolved.kind == TFDS:
        if variant not in ("full", "small"):
            raise DataSourceError(
                f"tfds clinc_oos has the 'full' variant (and 'small', derived from it); for "
                f"{variant!r} use the mirror"
            )
        # Keep tfds downloads with the rest of modelgate's local state, not in ~/tensorflow_datasets.
        data_dir = (settings or load_settings()).cache_dir / "tensorflow_datasets"
        split_examples, info = load_tfds_splits(DATASET_NAME, data_dir=str(data_dir))
        label = info.features["intent"]
        names = list(label.names) if hasattr(label, "names") else None
        full = clinc_from_tfds_examples(split_examples, names)
        return small_from_full(full) if variant == "small" else full
    with local_copy(resolved, store) as path:
        if path.is_dir():
            path = find_in_layout(path, f"{DATASET_NAME}/data_{variant}.json", _JSON_LAYOUT)
        return read_clinc_file(path)


def load_known_intents(
    source: str = "auto",
    frame: pd.DataFrame | None = None,
    *,
    store: ObjectStore | None = None,
    settings: Settings | None = None,
) -> list[str]:
    """The sorted in-scope intent names (150 for CLINC150).

    From ``clinc_oos/domains.json`` (domain -> list of intents) when the source is a directory
    that has it; otherwise the distinct intents of the ``train`` split of ``frame`` (or of the
    source loaded with ``load_clinc``). The training split defines the label space a model learns,
    so it is the right fallback; ``domains.json`` is preferred because it is independent of the
    rows being validated.
    """
    resolved = resolve_source(source, settings)
    if resolved.kind in (MIRROR, PATH, S3):
        domains = _read_domains(resolved, store)
        if domains is not None:
            return domains
    if frame is None:
        frame = load_clinc(source, store=store, settings=settings)
    train = frame.loc[frame["split"] == "train", "intent"]
    return sorted({str(intent) for intent in train if intent != OOS_INTENT})


def _read_domains(source: Source, store: ObjectStore | None) -> list[str] | None:
    candidates = (f"{DATASET_NAME}/domains.json", "domains.json")
    raw, where = None, ""
    if source.kind == S3:
        if not source.location.endswith("/"):
            return None  # a single file: no domains.json beside it that we may assume
        for relative in candidates:
            where = source.location + relative
            try:
                raw = read_s3_bytes(where, store)
                break
            except DataSourceError:
                continue
    else:
        root = Path(source.location)
        for relative in candidates:
            where = str(root / relative)
            if root.is_dir() and (root / relative).is_file():
                raw = (root / relative).read_bytes()
                break
    if raw is None:
        return None
    try:
        domains = json.loads(decode_text(raw, where))
    except json.JSONDecodeError as exc:
        raise DataSourceError(f"{where} is not valid JSON: {exc}") from exc
    if not isinstance(domains, dict) or not all(isinstance(v, list) for v in domains.values()):
        raise DataSourceError(f"{where} must be an object mapping each domain to a list of intents")
    return sorted({intent for intents in domains.values() for intent in intents})
