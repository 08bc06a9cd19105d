"""The SNLI suite on real Great Expectations and a real SeaweedFS: rows without a gold label are
filtered, counted and quarantined; each kind of bad data stops the suite with a clear message."""

from __future__ import annotations

import pandas as pd
import pytest

from fixtures_snli import fixture_validation_config, make_snli_rows
from mirror import REAL_MIRROR
from modelgate.data.snapshot import load_snapshot, snapshot_table
from modelgate.data.snli import DATASET_NAME, apply_offline_protocol, load_snli, snli_table
from modelgate.validations.quarantine import read_quarantine
from modelgate.validations.runner import ValidationFailed, ValidationReport
from modelgate.validations.snli import SnliValidationConfig, validate_snli


def fixture_frame(changes: dict | None = None) -> pd.DataFrame:
    """train/validation/test fixture rows (5 with label -1) as the normalised table."""
    rows = [(split, r["premise"], r["hypothesis"], r["label"])
            for split in ("train", "validation", "test") for r in make_snli_rows(split)]
    frame = snli_table(rows, "fixture")
    for (row_id, column), value in (changes or {}).items():
        frame.loc[frame["row_id"] == row_id, column] = value
    return frame


def _validate(store, frame: pd.DataFrame, **overrides) -> ValidationReport:
    snapshot = snapshot_table(store, DATASET_NAME, frame, source="test fixture")
    config = SnliValidationConfig(**{**fixture_validation_config(), **overrides})
    return validate_snli(store, snapshot, "run-1", config)


def _failed(store, frame: pd.DataFrame, **overrides) -> ValidationReport:
    with pytest.raises(ValidationFailed) as caught:
        _validate(store, frame, **overrides)
    return caught.value.report


def _failed_types(report: ValidationReport) -> set[tuple[str, str | None]]:
    return {(o.expectation_type, o.column) for o in report.failed}


def test_no_gold_label_rows_are_filtered_counted_and_quarantined(object_store):
    frame = fixture_frame()
    no_gold = set(frame.loc[frame["label"] == -1, "row_id"])
    assert len(no_gold) == 5
    report = _validate(object_store, frame)
    assert report.success
    assert report.dropped == {"no_gold_label": 5}
    assert report.rows_out == len(frame) - 5
    records = read_quarantine(object_store, report.quarantine_files["filtered"])
    assert {r["row"]["row_id"] for r in records} == no_gold
    assert all(r["reason"] == "no_gold_label" and r["row"]["label"] == -1 for r in records)
    kept = load_snapshot(object_store, report.filtered_snapshot)
    assert set(kept["label"]) == {0, 1, 2}
    assert set(kept["row_id"]) == set(frame["row_id"]) - no_gold


def test_too_many_rows_without_gold_label_fail_the_filter(object_store):
    report = _failed(object_store, fixture_frame(), max_filtered_fraction=0.01)
    assert not report.filter_success
    assert "no_gold_label=5" in ValidationFailed(report).args[0]


def test_empty_sentences_unknown_labels_and_overlong_premises_stop_the_suite(object_store):
    frame = fixture_frame({(3, "hypothesis"): "", (6, "premise"): "   \t", (4, "label"): 7,
                           (5, "premise"): "a man " * 300})
    report = _failed(object_store, frame)
    failed = _failed_types(report)
    assert {("expect_column_values_to_match_regex", "hypothesis"),
            ("expect_column_values_to_match_regex", "premise"),
            ("expect_column_values_to_be_in_set", "label"),
            ("expect_column_value_lengths_to_be_between", "premise")} <= failed
    flagged = read_quarantine(object_store, report.quarantine_files["quality"])
    assert {r["row"]["row_id"] for r in flagged} == {3, 4, 5, 6}
    message = ValidationFailed(report).args[0]
    assert "label" in message and "premise" in message and "Data Docs" in message


def test_conflicting_labels_for_the_same_pair_stop_the_suite(object_store):
    frame = fixture_frame()
    # Row 1 becomes a copy of row 0's pair (up to case and spacing) with another label.
    frame.loc[1, ["premise", "hypothesis"]] = [frame.loc[0, "premise"].upper(), frame.loc[0, "hypothesis"] + "  "]
    report = _failed(object_store, frame)
    assert _failed_types(report) == {("expect_column_values_to_be_in_set", "pair_has_conflicting_labels")}
    flagged = read_quarantine(object_store, report.quarantine_files["quality"])
    assert {r["row"]["row_id"] for r in flagged} == {0, 1}
    assert "conflicting_labels" in ValidationFailed(report).args[0]


def test_train_test_overlap_split_sizes_and_label_shares_stop_the_suite(object_store):
    frame = fixture_frame()
    frame = frame[~((frame["split"] == "test") & (frame["label"] == 2))].copy()
    test_rows = frame.index[frame["split"] == "test"][:2]
    train_rows = frame.index[frame["split"] == "train"][:2]
    frame.loc[test_rows, ["premise", "hypothesis", "label"]] = frame.loc[
        train_rows, ["premise", "hypothesis", "label"]].to_numpy()
    report = _failed(object_store, frame, split_rows={"train": (10, 200), "validation": (3, 200),
                                                      "test": (30, 200)})
    assert {o.batch for o in report.failed} == {"train_test_overlap", "split_sizes", "label_shares"}
    assert ("expect_column_values_to_be_in_set", "pair_also_in_train") in _failed_types(report)


def test_missing_column_is_named(object_store):
    frame = fixture_frame().drop(columns=["hypothesis"])
    report = _failed(object_store, frame)
    assert ("expect_table_columns_to_match_set", None) in _failed_types(report)
    assert any(o.error and "hypothesis" in o.error for o in report.failed)


def test_real_mirror_passes_under_the_offline_protocol(object_store):
    frame = apply_offline_protocol(load_snli(str(REAL_MIRROR)), 0.1, seed=42)
    snapshot = snapshot_table(object_store, DATASET_NAME, frame, source="mirror")
    report = validate_snli(object_store, snapshot, "published", SnliValidationConfig())
    assert report.success and report.dropped == {}
    assert report.rows_out == 9831 + 9824
    assert report.filtered_snapshot.sha256 == snapshot.sha256
