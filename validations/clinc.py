"""The CLINC150 validation suite: label filters and quality expectations, with bounds in a config.

Label filters (rows flagged here are dropped and quarantined):

- the intent is present;
- in-scope splits (train/validation/test) hold no ``oos`` rows and only the known intents;
- OOS splits (oos_train/oos_validation/oos_test) hold only ``oos``.

Quality expectations (all must pass on the kept rows):

- exact column set ``row_id, split, text, intent``; unique row ids; known split names;
- text is a string, not null, has a non-space character, and is at most ``max_text_chars`` long;
- each split's row count within bounds (missing splits count as 0);
- each known intent's row count per in-scope split within bounds (absent intents count as 0);
- test queries do not repeat training queries (lowercased, stripped), up to a small tolerance.
"""

from __future__ import annotations

from typing import Sequence

import great_expectations as gx
import pandas as pd
from pydantic import BaseModel, Field, model_validator

from modelgate.data.clinc import CLINC_SPLITS, COLUMNS, DATASET_NAME, IN_SCOPE_SPLITS, OOS_INTENT, OOS_SPLITS
from modelgate.data.snapshot import DatasetSnapshot
from modelgate.storage import ObjectStore
from modelgate.validations.runner import (
    FilterRule,
    QualityBatch,
    SuiteInputError,
    ValidationReport,
    ValidationSuite,
    run_validation,
)

LEAK_COLUMN = "text_also_in_train"
_TRAIN_SPLITS = ("train", "oos_train")
_TEST_SPLITS = ("test", "oos_test")


class ClincValidationConfig(BaseModel):
    """Bounds for the CLINC suite. Defaults accept the published variants (full, small,
    imbalanced, plus) after a little label filtering, and reject anything far from them."""

    split_rows: dict[str, tuple[int, int]] = Field(
        default_factory=lambda: {
            "train": (7_000, 16_000),  # full 15000, small 7500, imbalanced 10625
            "validation": (2_800, 3_100),  # 3000
            "test": (4_200, 4_600),  # 4500
            "oos_train": (50, 300),  # 100; "plus" has 250
            "oos_validation": (50, 150),  # 100
            "oos_test": (900, 1_100),  # 1000
        }
    )
    class_rows: dict[str, tuple[int, int]] = Field(
        default_factory=lambda: {
            "train": (20, 110),  # full 100, small 50, imbalanced 25..100
            "validation": (15, 25),  # 20
            "test": (25, 35),  # 30
        }
    )
    max_filtered_fraction: float = Field(0.05, ge=0.0, le=1.0)
    max_text_chars: int = Field(300, ge=1)  # the longest published query has 136 characters
    # The published full variant has 2 test queries that also occur in train (with other intents);
    # a tolerance of 0.1% of the test rows accepts those and catches any real leak.
    max_train_test_overlap_fraction: float = Field(0.001, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _check_bounds(self) -> "ClincValidationConfig":
        for name, bounds, allowed in (
            ("split_rows", self.split_rows, CLINC_SPLITS),
            ("class_rows", self.class_rows, IN_SCOPE_SPLITS),
        ):
            unknown = sorted(set(bounds) - set(allowed))
            if unknown:
                raise ValueError(f"{name} names unknown splits {unknown}; expected some of {allowed}")
            for split, (low, high) in bounds.items():
                if not 0 <= low <= high:
                    raise ValueError(f"{name}[{split!r}] = ({low}, {high}) must satisfy 0 <= min <= max")
        return self


def _in(splits: Sequence[str]) -> str:
    """A pandas row condition selecting the given splits."""
    return f"split.isin({list(splits)!r})"


def _require(frame: pd.DataFrame, columns: Sequence[str], table: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SuiteInputError(f"cannot build the {table} table: rows lack columns {missing}")


def _normalise(text: object) -> object:
    return text.strip().lower() if isinstance(text, str) else None


def leakage_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Test rows with a flag telling whether their normalised text also occurs in training."""
    _require(frame, ("row_id", "split", "text"), "train/test overlap")
    train_texts = {_normalise(t) for t in frame.loc[frame["split"].isin(_TRAIN_SPLITS), "text"]}
    train_texts.discard(None)
    test = frame.loc[frame["split"].isin(_TEST_SPLITS), ["row_id", "split", "text"]]
    flags = [_normalise(t) in train_texts for t in test["text"]]
    return pd.DataFrame({"row_id": test["row_id"].to_numpy(), "split": test["split"].to_numpy(),
                         LEAK_COLUMN: pd.array(flags, dtype="bool")})


def split_size_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per CLINC split with its row count (0 when the split is missing)."""
    _require(frame, ("split",), "split size")
    counts = frame["split"].value_counts()
    return pd.DataFrame({"split": list(CLINC_SPLITS),
                         "rows": [int(counts.get(split, 0)) for split in CLINC_SPLITS]})


def class_count_table(frame: pd.DataFrame, known_intents: Sequence[str]) -> pd.DataFrame:
    """Rows per (in-scope split, known intent), including intents with no rows at all."""
    _require(frame, ("split", "intent"), "per-class count")
    counts = frame.groupby(["split", "intent"]).size()
    rows = [
        (split, intent, int(counts.get((split, intent), 0)))
        for split in IN_SCOPE_SPLITS
        for intent in known_intents
    ]
    return pd.DataFrame(rows, columns=["split", "intent", "rows"])


def build_clinc_suite(
    known_intents: Sequence[str], config: ClincValidationConfig | None = None
) -> ValidationSuite:
    """The CLINC suite for the given in-scope intents (fresh expectation objects every call)."""
    config = config or ClincValidationConfig()
    known = sorted(set(known_intents))
    if not known or OOS_INTENT in known:
        raise ValueError(f"known intents must be the in-scope intents, without {OOS_INTENT!r}")
    E = gx.expectations
    filters = [
        FilterRule("missing_intent", E.ExpectColumnValuesToNotBeNull(column="intent")),
        FilterRule("oos_in_in_scope_split", E.ExpectColumnValuesToNotBeInSet(
            column="intent", value_set=[OOS_INTENT], row_condition=_in(IN_SCOPE_SPLITS),
            condition_parser="pandas")),
        FilterRule("unknown_intent", E.ExpectColumnValuesToBeInSet(
            column="intent", value_set=known, row_condition=_in(IN_SCOPE_SPLITS),
            condition_parser="pandas")),
        FilterRule("in_scope_intent_in_oos_split", E.ExpectColumnValuesToBeInSet(
            column="intent", value_set=[OOS_INTENT], row_condition=_in(OOS_SPLITS),
            condition_parser="pandas")),
    ]
    rows = QualityBatch("rows", [
        E.ExpectTableColumnsToMatchSet(column_set=list(COLUMNS), exact_match=True),
        E.ExpectColumnValuesToBeUnique(column="row_id"),
        E.ExpectColumnValuesToNotBeNull(column="split"),
        E.ExpectColumnValuesToBeInSet(column="split", value_set=list(CLINC_SPLITS)),
        E.ExpectColumnValuesToNotBeNull(column="text"),
        E.ExpectColumnValuesToBeOfType(column="text", type_="str"),
        E.ExpectColumnValuesToMatchRegex(column="text", regex=r"\S"),
        E.ExpectColumnValueLengthsToBeBetween(column="text", min_value=1,
                                              max_value=config.max_text_chars),
    ])
    leakage = QualityBatch("train_test_overlap", [
        E.ExpectColumnValuesToBeInSet(column=LEAK_COLUMN, value_set=[False],
                                      mostly=1.0 - config.max_train_test_overlap_fraction),
    ], build=leakage_table)
    split_sizes = QualityBatch("split_sizes", [
        E.ExpectColumnValuesToBeBetween(column="rows", min_value=low, max_value=high,
                                        row_condition=f"split == {split!r}", condition_parser="pandas")
        for split, (low, high) in config.split_rows.items()
    ], build=split_size_table, index_columns=("split",))
    class_counts = QualityBatch("class_counts", [
        E.ExpectColumnValuesToBeBetween(column="rows", min_value=low, max_value=high,
                                        row_condition=f"split == {split!r}", condition_parser="pandas")
        for split, (low, high) in config.class_rows.items()
    ], build=lambda frame: class_count_table(frame, known), index_columns=("split", "intent"))
    return ValidationSuite(
        dataset=DATASET_NAME,
        filters=filters,
        batches=[rows, leakage, split_sizes, class_counts],
        max_filtered_fraction=config.max_filtered_fraction,
    )


def validate_clinc(
    store: ObjectStore,
    snapshot: DatasetSnapshot,
    known_intents: Sequence[str],
    run_id: str,
    config: ClincValidationConfig | None = None,
    *,
    frame: pd.DataFrame | None = None,
) -> ValidationReport:
    """Run the CLINC suite on a snapshot; raises ValidationFailed (with its report) on failure."""
    suite = build_clinc_suite(known_intents, config)
    return run_validation(store, snapshot, suite, run_id, frame=frame)
