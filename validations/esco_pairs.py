"""The job-title pair suite: filters and quality expectations on scored pairs, bounds in a config.

The pair checks need facts that span rows (is this unordered pair repeated? with another score?),
so the suite runs on the pairs annotated with those facts (``annotate_pairs``); the annotation
columns travel with the kept rows into the validated snapshot.

Filters (rows flagged are dropped and quarantined, each with its reason):

- ``empty_title``: left or right has no non-space character;
- ``similarity_out_of_range``: similarity missing, not a number, or outside [0, 1];
- ``self_pair``: left and right are the same title;
- ``conflicting_score``: the same unordered pair occurs with different similarities (every copy
  goes: which one is right cannot be told);
- ``duplicate_pair``: a repeat of an earlier row's unordered pair with the same score.

Quality expectations on the kept rows (all must pass):

- exact column set; unique row ids; split in train/validation/test; kind known;
- titles normalised (no upper case, no leading/trailing/double whitespace) and at most
  ``max_title_chars`` long;
- similarity mean and standard deviation within bounds (the score distribution);
- per-split row counts within bounds;
- no leakage: no title of a validation or test pair occurs in a training pair.
"""

from __future__ import annotations

import great_expectations as gx
import pandas as pd
from pydantic import BaseModel, Field, model_validator

from modelgate.data.esco import COLUMNS, DATASET_NAME, SPLITS, TIERS, USER_KIND, pair_key
from modelgate.data.snapshot import DatasetSnapshot
from modelgate.storage import ObjectStore
from modelgate.validations.runner import FilterRule, QualityBatch, SuiteInputError, ValidationReport, ValidationSuite, run_validation

ANNOTATIONS = ("pair_key", "self_pair", "conflicting_score", "repeated_pair")
LEAK_COLUMN = "title_also_in_train"
# No upper case (ASCII or accented Latin) and whitespace only as single inner spaces.
NORMALISED_TITLE = r"^(?!\s)(?!.*\s$)(?!.*\s\s)[^A-Z\u00C0-\u00DE\t\n\r]*$"


class EscoPairsValidationConfig(BaseModel):
    """Bounds for the pair suite. Defaults fit tier-balanced ESCO pairs and most user files."""

    split_rows: dict[str, tuple[int, int]] = Field(
        default_factory=lambda: {"train": (100, 1_000_000), "validation": (20, 1_000_000), "test": (20, 1_000_000)}
    )
    similarity_mean: tuple[float, float] = (0.2, 0.8)
    similarity_min_stdev: float = Field(0.1, ge=0.0, description="targets must spread, not sit on one value")
    max_title_chars: int = Field(200, ge=1)
    max_filtered_fraction: float = Field(0.05, ge=0.0, le=1.0)
    max_leak_fraction: float = Field(0.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _check_bounds(self) -> "EscoPairsValidationConfig":
        unknown = sorted(set(self.split_rows) - set(SPLITS))
        if unknown:
            raise ValueError(f"split_rows names unknown splits {unknown}; expected some of {SPLITS}")
        for split, (low, high) in self.split_rows.items():
            if not 0 <= low <= high:
                raise ValueError(f"split_rows[{split!r}] = ({low}, {high}) must satisfy 0 <= min <= max")
        low, high = self.similarity_mean
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"similarity_mean = ({low}, {high}) must satisfy 0 <= min <= max <= 1")
        return self


def annotate_pairs(frame: pd.DataFrame) -> pd.DataFrame:
    """The pairs plus ``pair_key``, ``self_pair``, ``conflicting_score`` and ``repeated_pair``."""
    missing = [c for c in ("row_id", "left", "right", "similarity") if c not in frame.columns]
    if missing:
        raise SuiteInputError(f"cannot check pairs: rows lack columns {missing}")
    out = frame.copy()
    left = out["left"].map(lambda t: t if isinstance(t, str) else "")
    right = out["right"].map(lambda t: t if isinstance(t, str) else "")
    out["pair_key"] = [pair_key(a, b) for a, b in zip(left, right)]
    out["self_pair"] = pd.array([a == b and a != "" for a, b in zip(left, right)], dtype="bool")
    scores = pd.to_numeric(out["similarity"], errors="coerce").round(6)
    distinct = scores.groupby(out["pair_key"]).transform("nunique")
    out["conflicting_score"] = pd.array((distinct > 1).to_numpy(), dtype="bool")
    ordered = out.sort_values("row_id", kind="stable")
    repeated = ordered["pair_key"].duplicated(keep="first").reindex(out.index)
    out["repeated_pair"] = pd.array((repeated & ~out["conflicting_score"]).to_numpy(), dtype="bool")
    return out


def leakage_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Validation/test rows with a flag: does one of their titles occur in a training pair?"""
    missing = [c for c in ("row_id", "split", "left", "right") if c not in frame.columns]
    if missing:
        raise SuiteInputError(f"cannot build the leakage table: rows lack columns {missing}")
    train = frame[frame["split"] == "train"]
    seen = set(train["left"]) | set(train["right"])
    held = frame[frame["split"] != "train"]
    flags = [a in seen or b in seen for a, b in zip(held["left"], held["right"])]
    return pd.DataFrame({"row_id": held["row_id"].to_numpy(), "split": held["split"].to_numpy(),
                         LEAK_COLUMN: pd.array(flags, dtype="bool")})


def split_size_table(frame: pd.DataFrame) -> pd.DataFrame:
    counts = frame["split"].value_counts()
    return pd.DataFrame({"split": list(SPLITS), "rows": [int(counts.get(s, 0)) for s in SPLITS]})


def build_pairs_suite(config: EscoPairsValidationConfig | None = None) -> ValidationSuite:
    config = config or EscoPairsValidationConfig()
    E = gx.expectations
    filters = [
        FilterRule("empty_title", E.ExpectColumnValuesToMatchRegex(column="left", regex=r"\S")),
        FilterRule("empty_title", E.ExpectColumnValuesToMatchRegex(column="right", regex=r"\S")),
        FilterRule("similarity_out_of_range", E.ExpectColumnValuesToNotBeNull(column="similarity")),
        FilterRule("similarity_out_of_range", E.ExpectColumnValuesToBeBetween(
            column="similarity", min_value=0.0, max_value=1.0)),
        FilterRule("self_pair", E.ExpectColumnValuesToBeInSet(column="self_pair", value_set=[False])),
        FilterRule("conflicting_score", E.ExpectColumnValuesToBeInSet(column="conflicting_score", value_set=[False])),
        FilterRule("duplicate_pair", E.ExpectColumnValuesToBeInSet(column="repeated_pair", value_set=[False])),
    ]
    low, high = config.similarity_mean
    rows = QualityBatch("rows", [
        E.ExpectTableColumnsToMatchSet(column_set=[*COLUMNS, *ANNOTATIONS], exact_match=True),
        E.ExpectColumnValuesToBeUnique(column="row_id"),
        E.ExpectColumnValuesToBeInSet(column="split", value_set=list(SPLITS)),
        E.ExpectColumnValuesToBeInSet(column="kind", value_set=[*TIERS, USER_KIND]),
        *[E.ExpectColumnValuesToMatchRegex(column=side, regex=NORMALISED_TITLE) for side in ("left", "right")],
        *[E.ExpectColumnValueLengthsToBeBetween(column=side, min_value=1, max_value=config.max_title_chars)
          for side in ("left", "right")],
        E.ExpectColumnMeanToBeBetween(column="similarity", min_value=low, max_value=high),
        E.ExpectColumnStdevToBeBetween(column="similarity", min_value=config.similarity_min_stdev),
    ])
    leakage = QualityBatch("split_leakage", [
        E.ExpectColumnValuesToBeInSet(column=LEAK_COLUMN, value_set=[False], mostly=1.0 - config.max_leak_fraction),
    ], build=leakage_table)
    split_sizes = QualityBatch("split_sizes", [
        E.ExpectColumnValuesToBeBetween(column="rows", min_value=lo, max_value=hi,
                                        row_condition=f"split == {split!r}", condition_parser="pandas")
        for split, (lo, hi) in config.split_rows.items()
    ], build=split_size_table, index_columns=("split",))
    return ValidationSuite(
        dataset=DATASET_NAME,
        filters=filters,
        batches=[rows, leakage, split_sizes],
        max_filtered_fraction=config.max_filtered_fraction,
    )


def validate_pairs(
    store: ObjectStore,
    snapshot: DatasetSnapshot,
    frame: pd.DataFrame,
    run_id: str,
    config: EscoPairsValidationConfig | None = None,
) -> ValidationReport:
    """Run the pair suite on a snapshot's rows; raises ValidationFailed (with its report) on failure."""
    return run_validation(store, snapshot, build_pairs_suite(config), run_id, frame=annotate_pairs(frame))
