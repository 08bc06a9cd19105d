"""The job-title pair suite on real snapshots in a real SeaweedFS: each pair check flags what it
should, flagged rows are quarantined with their reason, and quality failures stop the run with a
message that names the expectation."""

from __future__ import annotations

import pandas as pd
import pytest

from modelgate.data.esco import COLUMNS, DATASET_NAME
from modelgate.data.snapshot import load_snapshot, snapshot_table
from modelgate.validations.esco_pairs import EscoPairsValidationConfig, annotate_pairs, validate_pairs
from modelgate.validations.quarantine import read_quarantine
from modelgate.validations.runner import ValidationFailed

CONFIG = EscoPairsValidationConfig(split_rows={"train": (10, 100), "validation": (2, 50), "test": (2, 50)},
                                   max_filtered_fraction=0.5)


def clean_rows() -> list[tuple]:
    rows = [("train", f"train title {i}", f"train other {i}", [0.05, 0.35, 0.65, 0.9][i % 4], "user") for i in range(20)]
    rows += [(s, f"{s} title {i}", f"{s} other {i}", [0.05, 0.9][i % 2], "user") for s in ("validation", "test") for i in range(4)]
    return rows


def frame_of(rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(COLUMNS[1:]))
    frame.insert(0, "row_id", pd.RangeIndex(len(frame)).astype("int64"))
    return frame


def run(store, rows, config=CONFIG):
    frame = frame_of(rows)
    snapshot = snapshot_table(store, DATASET_NAME, frame)
    return validate_pairs(store, snapshot, frame, "run-1", config)


def test_annotations_find_self_pairs_repeats_and_conflicts():
    frame = annotate_pairs(frame_of([
        ("train", "a", "b", 0.5, "user"), ("train", "b", "a", 0.5, "user"),  # repeat, reversed
        ("train", "c", "d", 0.2, "user"), ("train", "d", "c", 0.9, "user"),  # conflict
        ("train", "e", "e", 0.9, "user"),
    ]))
    assert frame["repeated_pair"].tolist() == [False, True, False, False, False]
    assert frame["conflicting_score"].tolist() == [False, False, True, True, False]
    assert frame["self_pair"].tolist() == [False, False, False, False, True]


def test_invalid_pairs_are_dropped_and_quarantined_with_reasons(object_store):
    bad = [
        ("train", "", "nurse", 0.5, "user"),
        ("train", "cook", "chef", 1.5, "user"),
        ("train", "cook", "chef helper", None, "user"),
        ("train", "baker", "baker", 0.9, "user"),
        ("train", "driver", "pilot", 0.2, "user"), ("train", "pilot", "driver", 0.7, "user"),
        ("train", "train title 0", "train other 0", 0.05, "user"),  # exact repeat of a clean row
    ]
    report = run(object_store, clean_rows() + bad)
    assert report.success
    assert report.dropped == {"empty_title": 1, "similarity_out_of_range": 2, "self_pair": 1,
                              "conflicting_score": 2, "duplicate_pair": 1}
    assert report.rows_out == len(clean_rows())
    quarantined = read_quarantine(object_store, report.quarantine_files["filtered"])
    assert len(quarantined) == 7
    assert {r["reason"] for r in quarantined if r["row"]["left"] == "driver" or r["row"]["left"] == "pilot"} == {"conflicting_score"}
    kept = load_snapshot(object_store, report.filtered_snapshot)
    assert "train title 0" in set(kept["left"]) and "baker" not in set(kept["left"])


def test_quality_failures_name_their_expectations_and_quarantine_rows(object_store):
    rows = [(s, l, r, 0.9, k) for s, l, r, _, k in clean_rows() if s != "test"]  # one score, no test split
    rows[20] = ("validation", "train title 1", "validation other 0", 0.9, "user")  # title seen in train
    rows[0] = ("train", "Train  Title 0", "train other 0", 0.9, "user")
    with pytest.raises(ValidationFailed) as failed:
        run(object_store, rows)
    message = str(failed.value)
    assert "title_also_in_train" in message
    assert "expect_column_values_to_match_regex on left" in message
    assert "expect_column_stdev_to_be_between on similarity" in message
    assert "expect_column_mean_to_be_between on similarity" in message
    assert "split == 'test'" in message
    assert "expect_column_values_to_match_regex on right" not in message
    quality = read_quarantine(object_store, failed.value.report.quarantine_files["quality"])
    assert {r["row"]["row_id"] for r in quality} == {0, 20}
