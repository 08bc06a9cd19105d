"""ETHOS ingestion and its validation suite: the CSV reader, the seeded split, and the
expectations that quarantine bad labels and stop bad data before training."""

from __future__ import annotations

import pytest
from fixtures_ethos import ethos_csv, make_ethos_rows, write_ethos_mirror
from mirror import REAL_MIRROR


def test_real_ethos_split_and_labels():
    from modelgate.data.ethos import load_ethos, training_rows

    frame, where = load_ethos(str(REAL_MIRROR), seed=32, train_size=800)
    assert where.endswith(str(REAL_MIRROR)) and len(frame) == 998
    assert frame["split"].value_counts().to_dict() == {"train": 800, "test": 198}
    assert int(frame["hateful"].sum()) == 433  # the dataset README's count at isHate >= 0.5
    assert sorted(frame["order"]) == list(range(998))
    again, _ = load_ethos(str(REAL_MIRROR), seed=32, train_size=800)
    assert again.equals(frame)  # the same seed gives the same split
    other, _ = load_ethos(str(REAL_MIRROR), seed=7, train_size=800)
    assert not other["split"].equals(frame["split"])
    first = training_rows(frame, 200)
    assert len(first) == 200 and list(first["order"]) == list(range(200))
    with pytest.raises(ValueError, match="train split has 800"):
        training_rows(frame, 801)


def test_reader_errors_say_what_and_where(tmp_path):
    from modelgate.data.ethos import load_ethos, parse_ethos_csv, split_and_label
    from modelgate.data.sources import DataSourceError

    with pytest.raises(DataSourceError, match=r"lacks columns \['isHate'\]"):
        parse_ethos_csv(b"comment;score\nhello;1\n", "bad.csv")
    with pytest.raises(DataSourceError, match="ethos/Ethos_Dataset_Binary.csv"):
        load_ethos(str(tmp_path))  # a directory without the file
    rows = parse_ethos_csv(ethos_csv([("fine text", "0.2"), ("odd value", "n/a")]).encode(), "x.csv")
    assert rows["is_hate"][0] == 0.2 and rows["is_hate"].isna()[1]  # kept, for validation to quarantine
    labelled = split_and_label(rows, seed=0, train_size=1)
    assert labelled["hateful"].isna().tolist() == [False, True]  # unknown, not "not hateful"
    with pytest.raises(ValueError, match="train_size must be between"):
        load_ethos(str(write_ethos_mirror(tmp_path / "m")), train_size=60)


def _validate(store, rows, tmp_path, **config):
    from modelgate.data.ethos import load_ethos
    from modelgate.data.snapshot import snapshot_table
    from modelgate.validations.ethos import EthosValidationConfig, validate_ethos

    frame, _ = load_ethos(str(write_ethos_mirror(tmp_path / "mirror", rows)), train_size=40)
    snapshot = snapshot_table(store, "ethos", frame)
    bounds = {"split_rows": {"train": (10, 100), "test": (5, 100)}, "hateful_fraction": (0.1, 0.9), **config}
    return validate_ethos(store, snapshot, "run-1", EthosValidationConfig(**bounds), frame=frame)


def test_bad_labels_and_conflicting_duplicates_are_quarantined(object_store, tmp_path):
    from modelgate.validations.quarantine import read_quarantine

    rows = make_ethos_rows(60)
    rows[3] = (rows[3][0], 1.7)  # isHate outside [0, 1]
    rows[5] = (rows[5][0], "")  # missing
    rows[7] = (rows[0][0], 0.0)  # the text of row 0 (hateful) again, labelled not hateful
    report = _validate(object_store, rows, tmp_path, max_filtered_fraction=0.1)
    assert report.success and report.rows_in == 60 and report.rows_out == 56
    assert report.dropped == {"is_hate_outside_0_1": 1, "missing_is_hate": 1, "conflicting_duplicate": 2}
    quarantined = read_quarantine(object_store, report.quarantine_files["filtered"])
    assert sorted(r["row"]["row_id"] for r in quarantined) == [0, 3, 5, 7]
    assert {r["reason"] for r in quarantined if r["row"]["row_id"] in (0, 7)} == {"conflicting_duplicate"}


def test_quality_failures_stop_the_data(object_store, tmp_path):
    from modelgate.validations.runner import ValidationFailed

    rows = make_ethos_rows(60)
    rows[2] = ("   ", 1.0)  # a blank comment
    with pytest.raises(ValidationFailed) as failed:
        _validate(object_store, rows, tmp_path, hateful_fraction=(0.6, 0.9))
    message = str(failed.value)
    assert "expect_column_values_to_match_regex on text" in message
    assert "hateful_fraction" in message  # about half the fixture is hateful, below 0.6
    assert not failed.value.report.success and failed.value.report.filtered_snapshot is None
