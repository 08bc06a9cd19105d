"""The SNLI validation suite: the recipe's label filter plus quality expectations, bounds in a config.

Label filter (rows flagged here are dropped, counted and quarantined; the recipe's filter_labels):

- label -1 (no gold label: the annotators did not agree).

Quality expectations (all must pass on the kept rows):

- exact column set ``row_id, split, premise, hypothesis, label``; unique row ids; known split names;
- label is an integer in {0, 1, 2} once the -1 rows are gone (anything else is a broken source);
- premise and hypothesis are strings, not null, have a non-space character, and their lengths are
  within ``sentence_chars``;
- the same (premise, hypothesis) pair never carries two different labels;
- test pairs do not repeat training pairs, up to a small tolerance;
- each split's row count, and each label's share of a split, within bounds.
"""

from __future__ import annotations

from typing import Sequence

import great_expectations as gx
import pandas as pd
from pydantic import BaseModel, Field, model_validator

from modelgate.data.snapshot import DatasetSnapshot
from modelgate.data.snli import COLUMNS, DATASET_NAME, LABEL_NAMES, NO_GOLD_LABEL, SNLI_SPLITS
from modelgate.storage import ObjectStore
from modelgate.validations.runner import (
    FilterRule,
    QualityBatch,
    SuiteInputError,
    ValidationReport,
    ValidationSuite,
    run_validation,
)

CONFLICT_COLUMN = "pair_has_conflicting_labels"
LEAK_COLUMN = "pair_also_in_train"
GOLD_LABELS = list(range(len(LABEL_NAMES)))


class SnliValidationConfig(BaseModel):
    """Bounds for the SNLI suite. Defaults accept both protocols (train[:20%] of the published
    train split, or the offline seeded split of validation) and reject anything far from them."""

    split_rows: dict[str, tuple[int, int]] = Field(
        default_factory=lambda: {
            "train": (500, 560_000),  # offline ~8.8k; train[:20%] 110k; all of train 550k
            "validation": (100, 10_000),  # offline ~1k; published 10k (9842 with a gold label)
            "test": (9_000, 10_000),  # published 10k (9824 with a gold label)
        }
    )
    # Each label's share of each split; SNLI is balanced (each about a third).
    label_fraction: tuple[float, float] = (0.2, 0.5)
    # The published splits have 0.2% (train) to 1.6% (validation) rows without a gold label.
    max_filtered_fraction: float = Field(0.05, ge=0.0, le=1.0)
    # Published premises run to 300 characters, hypotheses to 232 (validation and test).
    sentence_chars: tuple[int, int] = (1, 1000)
    max_conflicting_fraction: float = Field(0.0, ge=0.0, le=1.0)
    max_train_test_overlap_fraction: float = Field(0.001, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _check_bounds(self) -> "SnliValidationConfig":
        unknown = sorted(set(self.split_rows) - set(SNLI_SPLITS))
        if unknown:
            raise ValueError(f"split_rows names unknown splits {unknown}; expected some of {SNLI_SPLITS}")
        for name, (low, high) in [*self.split_rows.items(), ("label_fraction", self.label_fraction),
                                  ("sentence_chars", self.sentence_chars)]:
            if not 0 <= low <= high:
                raise ValueError(f"bounds {name} = ({low}, {high}) must satisfy 0 <= min <= max")
        return self


def _require(frame: pd.DataFrame, columns: Sequence[str], table: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SuiteInputError(f"cannot build the {table} table: rows lack columns {missing}")


def _pair_keys(frame: pd.DataFrame) -> pd.Series:
    """A normalised (premise, hypothesis) key; non-text values never match anything."""

    def norm(value: object) -> str | None:
        return " ".join(value.lower().split()) if isinstance(value, str) else None

    return pd.Series(
        [(norm(p), norm(h)) if norm(p) is not None and norm(h) is not None else None
         for p, h in zip(frame["premise"], frame["hypothesis"])],
        index=frame.index, dtype=object,
    )


def conflict_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Every row, flagged when another row has the same pair (normalised) but another label."""
    _require(frame, ("row_id", "premise", "hypothesis", "label"), "conflicting labels")
    keys = _pair_keys(frame)
    labels_per_pair = pd.DataFrame({"key": keys, "label": frame["label"]}).dropna().groupby("key")["label"].nunique()
    conflicting = {key for key, n in labels_per_pair.items() if n > 1}
    flags = [key in conflicting for key in keys]
    return pd.DataFrame({"row_id": frame["row_id"].to_numpy(), CONFLICT_COLUMN: pd.array(flags, dtype="bool")})


def leakage_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Test rows, flagged when their normalised pair also occurs in train."""
    _require(frame, ("row_id", "split", "premise", "hypothesis"), "train/test overlap")
    keys = _pair_keys(frame)
    train = set(keys[frame["split"] == "train"].dropna())
    test = frame["split"] == "test"
    flags = [key is not None and key in train for key in keys[test]]
    return pd.DataFrame({"row_id": frame.loc[test, "row_id"].to_numpy(), LEAK_COLUMN: pd.array(flags, dtype="bool")})


def split_size_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per SNLI split with its row count (0 when the split is missing)."""
    _require(frame, ("split",), "split size")
    counts = frame["split"].value_counts()
    return pd.DataFrame({"split": list(SNLI_SPLITS), "rows": [int(counts.get(s, 0)) for s in SNLI_SPLITS]})


def label_share_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Each gold label's share of each split present (0.0 for a label a split lacks)."""
    _require(frame, ("split", "label"), "label share")
    rows = []
    for split, part in frame.groupby("split", sort=False):
        counts = part["label"].value_counts()
        for label in GOLD_LABELS:
            rows.append((str(split), LABEL_NAMES[label], float(counts.get(label, 0)) / len(part)))
    return pd.DataFrame(rows, columns=["split", "label", "fraction"])


def build_snli_suite(config: SnliValidationConfig | None = None) -> ValidationSuite:
    """The SNLI suite (fresh expectation objects every call)."""
    config = config or SnliValidationConfig()
    E = gx.expectations
    low_chars, high_chars = config.sentence_chars
    filters = [
        FilterRule("no_gold_label", E.ExpectColumnValuesToNotBeInSet(column="label", value_set=[NO_GOLD_LABEL])),
    ]
    text = []
    for column in ("premise", "hypothesis"):
        text += [
            E.ExpectColumnValuesToNotBeNull(column=column),
            E.ExpectColumnValuesToBeOfType(column=column, type_="str"),
            E.ExpectColumnValuesToMatchRegex(column=column, regex=r"\S"),
            E.ExpectColumnValueLengthsToBeBetween(column=column, min_value=low_chars, max_value=high_chars),
        ]
    rows = QualityBatch("rows", [
        E.ExpectTableColumnsToMatchSet(column_set=list(COLUMNS), exact_match=True),
        E.ExpectColumnValuesToBeUnique(column="row_id"),
        E.ExpectColumnValuesToNotBeNull(column="split"),
        E.ExpectColumnValuesToBeInSet(column="split", value_set=list(SNLI_SPLITS)),
        E.ExpectColumnValuesToBeOfType(column="label", type_="int64"),
        E.ExpectColumnValuesToBeInSet(column="label", value_set=GOLD_LABELS),
        *text,
    ])
    conflicts = QualityBatch("conflicting_labels", [
        E.ExpectColumnValuesToBeInSet(column=CONFLICT_COLUMN, value_set=[False],
                                      mostly=1.0 - config.max_conflicting_fraction),
    ], build=conflict_table)
    leakage = QualityBatch("train_test_overlap", [
        E.ExpectColumnValuesToBeInSet(column=LEAK_COLUMN, value_set=[False],
                                      mostly=1.0 - config.max_train_test_overlap_fraction),
    ], build=leakage_table)
    split_sizes = QualityBatch("split_sizes", [
        E.ExpectColumnValuesToBeBetween(column="rows", min_value=low, max_value=high,
                                        row_condition=f"split == {split!r}", condition_parser="pandas")
        for split, (low, high) in config.split_rows.items()
    ], build=split_size_table, index_columns=("split",))
    low_share, high_share = config.label_fraction
    label_shares = QualityBatch("label_shares", [
        E.ExpectColumnValuesToBeBetween(column="fraction", min_value=low_share, max_value=high_share),
    ], build=label_share_table, index_columns=("split", "label"))
    return ValidationSuite(
        dataset=DATASET_NAME,
        filters=filters,
        batches=[rows, conflicts, leakage, split_sizes, label_shares],
        max_filtered_fraction=config.max_filtered_fraction,
    )


def validate_snli(
    store: ObjectStore,
    snapshot: DatasetSnapshot,
    run_id: str,
    config: SnliValidationConfig | None = None,
    *,
    frame: pd.DataFrame | None = None,
) -> ValidationReport:
    """Run the SNLI suite on a snapshot; raises ValidationFailed (with its report) on failure."""
    return run_validation(store, snapshot, build_snli_suite(config), run_id, frame=frame)
