"""The CLINC suite on real Great Expectations and a real SeaweedFS: the published dataset passes,
and each kind of bad data is dropped (and quarantined) or stops the suite with a clear message."""

from __future__ import annotations

import time
import urllib.request

import pandas as pd
import pytest

from modelgate.data.clinc import DATASET_NAME, clinc_from_json_layout, load_clinc, load_known_intents
from modelgate.data.snapshot import load_snapshot, snapshot_table
from fixtures_clinc import FIXTURE_INTENTS, fixture_config_kwargs, make_clinc_payload
from modelgate.validations.clinc import ClincValidationConfig, validate_clinc
from modelgate.validations.quarantine import read_quarantine
from modelgate.validations.runner import ValidationFailed, ValidationReport

from mirror import REAL_MIRROR as MIRROR  # noqa: E402


def _validate(store, frame: pd.DataFrame, run_id: str = "run-1", **overrides) -> ValidationReport:
    snapshot = snapshot_table(store, DATASET_NAME, frame, source="test fixture")
    config = ClincValidationConfig(**{**fixture_config_kwargs(), **overrides})
    return validate_clinc(store, snapshot, FIXTURE_INTENTS, run_id, config)


def _failed(store, frame: pd.DataFrame, **overrides) -> ValidationReport:
    with pytest.raises(ValidationFailed) as caught:
        _validate(store, frame, **overrides)
    assert caught.value.report.success is False
    return caught.value.report


def _row_ids(frame: pd.DataFrame, mask) -> set[int]:
    return {int(i) for i in frame.loc[mask, "row_id"]}


def _assert_nothing_lost(store, report: ValidationReport, frame: pd.DataFrame, dropped_ids: set[int]):
    assert report.rows_in == len(frame)
    assert report.rows_out + sum(report.dropped.values()) == report.rows_in
    assert report.rows_in - report.rows_out == len(dropped_ids)
    records = read_quarantine(store, report.quarantine_files["filtered"])
    assert {r["row"]["row_id"] for r in records} == dropped_ids
    original = frame.set_index("row_id")
    for record in records:  # the quarantined rows are the original rows, unchanged
        row = record["row"]
        assert (row["split"], row["text"], row["intent"]) == tuple(
            original.loc[row["row_id"], ["split", "text", "intent"]]
        )
    if report.filtered_snapshot is not None:
        kept = load_snapshot(store, report.filtered_snapshot)
        assert set(kept["row_id"]) == set(frame["row_id"]) - dropped_ids


def _failed_types(report: ValidationReport) -> set[tuple[str, str | None]]:
    return {(o.expectation_type, o.column) for o in report.failed}


def test_published_clinc_full_passes_with_default_config(object_store):
    frame = load_clinc(str(MIRROR), "full")
    counts = frame["split"].value_counts().to_dict()
    assert counts == {"train": 15000, "validation": 3000, "test": 4500,
                      "oos_train": 100, "oos_validation": 100, "oos_test": 1000}
    known = load_known_intents(str(MIRROR))
    assert len(known) == 150
    snapshot = snapshot_table(object_store, DATASET_NAME, frame, source="mirror")

    started = time.monotonic()
    report = validate_clinc(object_store, snapshot, known, "published-full")
    elapsed = time.monotonic() - started
    print(f"\nCLINC150 full ({len(frame)} rows) validated in {elapsed:.1f}s")

    assert report.success and report.dropped == {} and report.rows_out == 23700
    assert all(o.success for o in report.expectations)
    overlap = next(o for o in report.expectations if o.batch == "train_test_overlap")
    assert overlap.unexpected_count == 2  # the two published test queries that repeat train ones
    # nothing was filtered, so the validated snapshot is the same content
    assert report.filtered_snapshot.sha256 == snapshot.sha256
    _assert_nothing_lost(object_store, report, frame, set())


def test_clean_fixture_passes_and_publishes_docs_results_and_report(object_store):
    frame = clinc_from_json_layout(make_clinc_payload())
    report = _validate(object_store, frame, run_id="clean-1")
    assert report.success and report.rows_out == report.rows_in == len(frame)
    assert report.filtered_snapshot.rows == len(frame)
    prefix = f"validation/{DATASET_NAME}/{report.snapshot_sha256}/clean-1"
    assert report.docs_uri == object_store.uri(f"{prefix}/docs/index.html")
    assert object_store.exists(f"{prefix}/docs/index.html")
    assert object_store.exists(f"{prefix}/report.json")
    assert object_store.get_json(f"{prefix}/report.json")["rows_out"] == len(frame)
    results = list(object_store.list_keys(f"{prefix}/results/"))
    assert f"{prefix}/results/{DATASET_NAME}.filters.json" in results
    assert f"{prefix}/results/{DATASET_NAME}.quality.rows.json" in results
    with urllib.request.urlopen(object_store.presigned_url(report.docs_uri), timeout=10) as response:
        assert response.status == 200
        assert b"<html" in response.read().lower()
    assert read_quarantine(object_store, report.quarantine_files["filtered"]) == []


def test_unknown_intent_in_train_is_dropped_counted_and_quarantined(object_store):
    frame = clinc_from_json_layout(make_clinc_payload())
    bad = (frame["split"] == "train") & frame["row_id"].isin([0, 7])
    frame.loc[bad, "intent"] = "order_pizza"
    report = _validate(object_store, frame)
    assert report.success
    assert report.dropped == {"unknown_intent": 2}
    _assert_nothing_lost(object_store, report, frame, _row_ids(frame, bad))
    records = read_quarantine(object_store, report.quarantine_files["filtered"])
    assert {r["reason"] for r in records} == {"unknown_intent"}


def test_oos_in_the_in_scope_test_split_is_filtered(object_store):
    frame = clinc_from_json_layout(make_clinc_payload())
    bad = frame["row_id"] == frame.loc[frame["split"] == "test", "row_id"].iloc[0]
    frame.loc[bad, "intent"] = "oos"
    report = _validate(object_store, frame)
    assert report.success and report.dropped == {"oos_in_in_scope_split": 1}
    _assert_nothing_lost(object_store, report, frame, _row_ids(frame, bad))


def test_in_scope_intent_in_an_oos_split_is_filtered(object_store):
    frame = clinc_from_json_layout(make_clinc_payload())
    bad = frame["row_id"] == frame.loc[frame["split"] == "oos_test", "row_id"].iloc[0]
    frame.loc[bad, "intent"] = "weather"
    report = _validate(object_store, frame)
    assert report.dropped == {"in_scope_intent_in_oos_split": 1}
    _assert_nothing_lost(object_store, report, frame, _row_ids(frame, bad))


def test_too_many_invalid_labels_fail_the_filter_phase(object_store):
    frame = clinc_from_json_layout(make_clinc_payload())
    bad = (frame["split"] == "train") & (frame["intent"] == "alarm")  # 6 of 66 rows: 9% > 5%
    frame.loc[bad, "intent"] = "not_an_intent"
    report = _failed(object_store, frame)
    assert report.filter_success is False and report.filtered_snapshot is None
    assert report.dropped == {"unknown_intent": 6}
    assert "label filtering dropped 6 of 66 rows" in str(report.failure_message())
    assert "more than the allowed 5.00%" in report.failure_message()
    _assert_nothing_lost(object_store, report, frame, _row_ids(frame, bad))


def test_empty_and_whitespace_text_fails_and_names_the_expectation(object_store):
    frame = clinc_from_json_layout(make_clinc_payload())
    bad = frame["row_id"].isin([3, 40])
    frame.loc[frame["row_id"] == 3, "text"] = "   "
    frame.loc[frame["row_id"] == 40, "text"] = ""
    with pytest.raises(ValidationFailed) as caught:
        _validate(object_store, frame)
    message, report = str(caught.value), caught.value.report
    assert "expect_column_values_to_match_regex on text" in message
    assert "2 unexpected" in message
    assert f"modelgate open {report.run_id} docs" in message and report.docs_uri in message
    assert ("expect_column_values_to_match_regex", "text") in _failed_types(report)
    quality = read_quarantine(object_store, report.quarantine_files["quality"])
    assert {r["row"]["row_id"] for r in quality} == _row_ids(frame, bad)
    assert object_store.exists(object_store.key_of(report.docs_uri))
    _assert_nothing_lost(object_store, report, frame, set())


def test_wrong_column_set_fails(object_store):
    frame = clinc_from_json_layout(make_clinc_payload())
    frame["label_id"] = 1
    report = _failed(object_store, frame)
    assert _failed_types(report) == {("expect_table_columns_to_match_set", None)}
    assert report.filter_success  # the labels themselves were fine


def test_non_string_text_fails(object_store):
    frame = clinc_from_json_layout(make_clinc_payload())
    frame["text"] = frame["text"].astype(object)
    frame.loc[frame["row_id"] == 5, "text"] = 12345
    report = _failed(object_store, frame)
    assert ("expect_column_values_to_be_of_type", "text") in _failed_types(report)
    quality = read_quarantine(object_store, report.quarantine_files["quality"])
    assert 5 in {r["row"]["row_id"] for r in quality}


def test_split_too_small_fails(object_store):
    frame = clinc_from_json_layout(make_clinc_payload(oos_rows={"oos_val": 0}))
    report = _failed(object_store, frame)
    failed = [o for o in report.failed]
    assert [(o.batch, o.kwargs["row_condition"]) for o in failed] == [
        ("split_sizes", "split == 'oos_validation'")
    ]
    assert failed[0].unexpected_sample == [{"rows": 0, "split": "oos_validation"}]


def test_train_test_overlap_fails(object_store):
    frame = clinc_from_json_layout(make_clinc_payload())
    train_text = frame.loc[frame["split"] == "train", "text"].iloc[2]
    leaked_id = int(frame.loc[frame["split"] == "test", "row_id"].iloc[4])
    frame.loc[frame["row_id"] == leaked_id, "text"] = "  " + train_text.upper() + " "
    report = _failed(object_store, frame)
    assert _failed_types(report) == {("expect_column_values_to_be_in_set", "text_also_in_train")}
    assert "train_test_overlap" in report.failure_message()
    quality = read_quarantine(object_store, report.quarantine_files["quality"])
    assert [r["row"]["row_id"] for r in quality] == [leaked_id]


def test_per_class_count_out_of_bounds_fails(object_store):
    frame = clinc_from_json_layout(make_clinc_payload())
    frame = frame[~((frame["split"] == "test") & (frame["intent"] == "weather"))]
    report = _failed(object_store, frame)
    (failure,) = report.failed
    assert failure.batch == "class_counts" and failure.kwargs["row_condition"] == "split == 'test'"
    assert failure.unexpected_sample == [{"intent": "weather", "rows": 0, "split": "test"}]
    assert "class_counts" in report.failure_message() and "weather" in report.failure_message()


def test_missing_label_column_fails_with_the_error_named(object_store):
    frame = clinc_from_json_layout(make_clinc_payload()).drop(columns="intent")
    report = _failed(object_store, frame)
    assert report.filter_success is False and report.dropped == {}
    assert ("expect_table_columns_to_match_set", None) in _failed_types(report)
    errors = [o for o in report.failed if o.error]
    assert {o.phase for o in errors} == {"filter", "quality"}  # filters and the count tables
    assert "intent" in report.failure_message()
    _assert_nothing_lost(object_store, report, frame, set())
