"""The ETHOS validation suite: label filters and quality expectations, with bounds in a config.

Label filters (rows flagged here are dropped and quarantined):

- ``is_hate`` is present and within [0, 1] (it is a fraction of annotators);
- a comment that occurs more than once (lowercased, stripped) carries one label: every copy of
  a comment whose copies disagree is dropped, since no one of them can be trusted.

Quality expectations (all must pass on the kept rows):

- exact column set; unique row ids and shuffle positions; split names train/test;
- text is a string with a non-space character, its length within ``text_chars``;
- each split's row count within ``split_rows``;
- the hateful fraction of each split within ``hateful_fraction`` (class balance).
"""

from __future__ import annotations

import great_expectations as gx
import pandas as pd
from pydantic import BaseModel, Field, model_validator

from modelgate.data.ethos import COLUMNS, DATASET_NAME, SPLITS
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

CONFLICT_COLUMN = "conflicting_duplicate"


class EthosValidationConfig(BaseModel):
    """Bounds for the ETHOS suite. Defaults accept the published CSV (998 comments, 43% hateful,
    10 to 3347 characters) split 800/198, and reject anything far from it."""

    split_rows: dict[str, tuple[int, int]] = Field(
        default_factory=lambda: {"train": (100, 1_000), "test": (50, 1_000)}
    )
    hateful_fraction: tuple[float, float] = (0.25, 0.65)
    text_chars: tuple[int, int] = (3, 5_000)
    max_filtered_fraction: float = Field(0.05, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _check_bounds(self) -> EthosValidationConfig:
        unknown = sorted(set(self.split_rows) - set(SPLITS))
        if unknown:
            raise ValueError(f"split_rows names unknown splits {unknown}; expected some of {SPLITS}")
        for name, (low, high) in [*self.split_rows.items(), ("hateful_fraction", self.hateful_fraction),
                                  ("text_chars", self.text_chars)]:
            if not 0 <= low <= high:
                raise ValueError(f"bounds for {name!r} = ({low}, {high}) must satisfy 0 <= min <= max")
        if self.hateful_fraction[1] > 1.0:
            raise ValueError("hateful_fraction bounds are fractions: at most 1.0")
        return self


def _normalise(text: object) -> object:
    return text.strip().lower() if isinstance(text, str) else None


def with_conflict_flags(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows plus a column telling whether a copy of the comment carries the other label."""
    if "text" not in frame.columns or "hateful" not in frame.columns:
        raise SuiteInputError("cannot flag conflicting duplicates: rows lack text or hateful")
    keys = frame["text"].map(_normalise)
    labels = frame["hateful"].map(lambda v: None if v is None or pd.isna(v) else bool(v))
    distinct = pd.DataFrame({"key": keys, "label": labels}).dropna().groupby("key")["label"].nunique()
    conflicting = set(distinct[distinct > 1].index)
    out = frame.copy()
    out[CONFLICT_COLUMN] = pd.array([k in conflicting for k in keys], dtype="bool")
    return out


def balance_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per split: its row count and its fraction of hateful rows (0 rows -> fraction 0)."""
    if "split" not in frame.columns or "hateful" not in frame.columns:
        raise SuiteInputError("cannot build the class balance table: rows lack split or hateful")
    rows = []
    for split in SPLITS:
        part = frame.loc[frame["split"] == split, "hateful"]
        fraction = float(part.astype(bool).mean()) if len(part) else 0.0
        rows.append((split, len(part), fraction))
    return pd.DataFrame(rows, columns=["split", "rows", "hateful_fraction"])


def build_ethos_suite(config: EthosValidationConfig | None = None) -> ValidationSuite:
    config = config or EthosValidationConfig()
    E = gx.expectations
    filters = [
        FilterRule("missing_is_hate", E.ExpectColumnValuesToNotBeNull(column="is_hate")),
        FilterRule("is_hate_outside_0_1", E.ExpectColumnValuesToBeBetween(
            column="is_hate", min_value=0.0, max_value=1.0)),
        FilterRule("conflicting_duplicate", E.ExpectColumnValuesToBeInSet(
            column=CONFLICT_COLUMN, value_set=[False])),
    ]
    low_chars, high_chars = config.text_chars
    rows = QualityBatch("rows", [
        E.ExpectTableColumnsToMatchSet(column_set=[*COLUMNS, CONFLICT_COLUMN], exact_match=True),
        E.ExpectColumnValuesToBeUnique(column="row_id"),
        E.ExpectColumnValuesToBeUnique(column="order"),
        E.ExpectColumnValuesToBeInSet(column="split", value_set=list(SPLITS)),
        E.ExpectColumnValuesToNotBeNull(column="text"),
        E.ExpectColumnValuesToBeOfType(column="text", type_="str"),
        E.ExpectColumnValuesToMatchRegex(column="text", regex=r"\S"),
        E.ExpectColumnValueLengthsToBeBetween(column="text", min_value=low_chars, max_value=high_chars),
        E.ExpectColumnValuesToNotBeNull(column="hateful"),
    ])
    low_share, high_share = config.hateful_fraction
    balance = QualityBatch("class_balance", [
        *[
            E.ExpectColumnValuesToBeBetween(column="rows", min_value=low, max_value=high,
                                            row_condition=f"split == {split!r}", condition_parser="pandas")
            for split, (low, high) in config.split_rows.items()
        ],
        E.ExpectColumnValuesToBeBetween(column="hateful_fraction", min_value=low_share,
                                        max_value=high_share),
    ], build=balance_table, index_columns=("split",))
    return ValidationSuite(
        dataset=DATASET_NAME,
        filters=filters,
        batches=[rows, balance],
        max_filtered_fraction=config.max_filtered_fraction,
    )


def validate_ethos(
    store: ObjectStore,
    snapshot: DatasetSnapshot,
    run_id: str,
    config: EthosValidationConfig | None = None,
    *,
    frame: pd.DataFrame,
) -> ValidationReport:
    """Run the ETHOS suite on a snapshot's rows; raises ValidationFailed (with its report).

    The conflict flag is computed here from the rows themselves; the validated snapshot keeps it
    (all false once the conflicting copies are quarantined).
    """
    flagged = with_conflict_flags(frame)
    suite = build_ethos_suite(config)
    return run_validation(store, snapshot, suite, run_id, frame=flagged)
