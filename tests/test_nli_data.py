"""SNLI readers and the training protocols: the mirror layout, single files, tfds examples,
train[:P%], the offline seeded split of validation, and clear errors on bad input."""

from __future__ import annotations

import gzip

import pandas as pd
import pytest

from fixtures_snli import make_snli_rows, write_csv_gz, write_snli_mirror
from mirror import REAL_MIRROR
from modelgate.data.sources import DataSourceError
from modelgate.data.snli import (
    COLUMNS,
    apply_offline_protocol,
    load_snli,
    snli_from_tfds_examples,
    subsample_split,
    take_fraction,
)


def test_mirror_layout_keeps_no_gold_rows_for_validation_to_filter(tmp_path):
    root = write_snli_mirror(tmp_path)
    frame = load_snli(str(root))
    assert tuple(frame.columns) == COLUMNS
    assert list(frame["row_id"]) == list(range(len(frame)))
    assert frame["split"].value_counts().to_dict() == {"validation": 94, "test": 25}
    assert (frame["label"] == -1).sum() == 5
    assert str(frame["label"].dtype) == "int64"
    # the source's order is kept inside each split: validation first, then test
    assert frame["split"].tolist() == ["validation"] * 94 + ["test"] * 25
    assert frame.loc[0, "premise"] == make_snli_rows("validation", premises=30, no_gold=4)[0]["premise"]


def test_real_mirror_has_validation_and_test_only():
    frame = load_snli(str(REAL_MIRROR))
    assert frame["split"].value_counts().to_dict() == {"validation": 9831, "test": 9824}
    assert set(frame["label"]) == {0, 1, 2}


def test_offline_protocol_splits_validation_by_premise_with_a_seed():
    frame = load_snli(str(REAL_MIRROR))
    split = apply_offline_protocol(frame, validation_fraction=0.1, seed=42)
    counts = split["split"].value_counts().to_dict()
    assert counts["test"] == 9824 and counts["train"] + counts["validation"] == 9831
    assert 0.08 < counts["validation"] / 9831 < 0.12
    train_premises = set(split.loc[split["split"] == "train", "premise"])
    assert not train_premises & set(split.loc[split["split"] == "validation", "premise"])
    # test rows are the source's test rows, untouched
    pd.testing.assert_frame_equal(
        split.loc[split["split"] == "test", ["premise", "hypothesis", "label"]].reset_index(drop=True),
        frame.loc[frame["split"] == "test", ["premise", "hypothesis", "label"]].reset_index(drop=True),
    )
    again = apply_offline_protocol(frame, validation_fraction=0.1, seed=42)
    pd.testing.assert_frame_equal(split, again)
    other = apply_offline_protocol(frame, validation_fraction=0.1, seed=7)
    assert set(other.loc[other["split"] == "validation", "premise"]) != set(
        split.loc[split["split"] == "validation", "premise"])
    with pytest.raises(ValueError, match="without a train split"):
        apply_offline_protocol(split, 0.1, 42)


def test_train_split_is_cut_to_its_first_fraction(tmp_path):
    root = write_snli_mirror(tmp_path, with_train=True)
    full = load_snli(str(root), train_fraction=1.0)
    assert (full["split"] == "train").sum() == 75
    cut = load_snli(str(root), train_fraction=0.2)
    train = cut[cut["split"] == "train"]
    assert len(train) == 15  # round(75 * 0.2), as tfds's train[:20%]
    assert train["premise"].tolist() == full.loc[full["split"] == "train", "premise"].tolist()[:15]
    assert (cut["split"] != "train").sum() == (full["split"] != "train").sum()
    assert list(cut["row_id"]) == list(range(len(cut)))
    with pytest.raises(ValueError, match="fraction"):
        take_fraction(full, "train", 0.0)


def test_subsample_is_seeded_and_leaves_other_splits_alone(tmp_path):
    frame = load_snli(str(write_snli_mirror(tmp_path, with_train=True)), train_fraction=1.0)
    small = subsample_split(frame, "train", 10, seed=1)
    assert (small["split"] == "train").sum() == 10
    assert (small["split"] == "test").sum() == (frame["split"] == "test").sum()
    pd.testing.assert_frame_equal(small, subsample_split(frame, "train", 10, seed=1))
    assert subsample_split(frame, "train", 1000, seed=1) is frame


def test_single_file_with_string_labels(tmp_path):
    path = tmp_path / "pairs.jsonl"
    rows = [
        {"split": "train", "premise": "a dog runs.", "hypothesis": "an animal runs.", "label": "entailment"},
        {"split": "dev", "premise": "a dog runs.", "hypothesis": "a cat sleeps.", "label": "contradiction"},
        {"split": "test", "premise": "a man eats.", "hypothesis": "a man is hungry.", "label": "neutral"},
        {"split": "test", "premise": "a man eats.", "hypothesis": "a man cooks.", "label": "-"},
    ]
    pd.DataFrame(rows).to_json(path, orient="records", lines=True)
    frame = load_snli(str(path), train_fraction=1.0)
    assert frame["split"].tolist() == ["train", "validation", "test", "test"]
    assert frame["label"].tolist() == [0, 2, 1, -1]


def test_bad_labels_and_missing_columns_are_clear_errors(tmp_path):
    bad = write_csv_gz(tmp_path / "bad" / "snli" / "validation.csv.gz",
                       [{"premise": "a", "hypothesis": "b", "label": "maybe"}])
    write_csv_gz(bad.parent / "test.csv.gz", [{"premise": "a", "hypothesis": "b", "label": 0}])
    with pytest.raises(DataSourceError, match=r"validation.csv.gz.*'maybe'"):
        load_snli(str(tmp_path / "bad"))

    folder = tmp_path / "cols" / "snli"
    folder.mkdir(parents=True)
    for split in ("validation", "test"):
        (folder / f"{split}.csv.gz").write_bytes(gzip.compress(b"sentence1,sentence2,gold\na,b,0\n"))
    with pytest.raises(DataSourceError, match=r"lacks columns \['premise', 'hypothesis', 'label'\]"):
        load_snli(str(tmp_path / "cols"))

    with pytest.raises(DataSourceError, match="no SNLI validation and test files"):
        load_snli(str(tmp_path / "cols" / "snli" / ".."  / ".."))  # a directory without snli/


def test_tfds_examples_take_the_first_train_rows():
    def examples(split, n):
        return [{"premise": f"{split} p{i}".encode(), "hypothesis": f"h{i}".encode(), "label": i % 4 - 1}
                for i in range(n)]

    frame = snli_from_tfds_examples(
        {"train": examples("train", 50), "validation": examples("validation", 8), "test": examples("test", 8)},
        train_rows=10,
    )
    assert frame["split"].value_counts().to_dict() == {"train": 10, "validation": 8, "test": 8}
    assert frame.loc[frame["split"] == "train", "premise"].tolist() == [f"train p{i}" for i in range(10)]
    assert set(frame["label"]) == {-1, 0, 1, 2}
    with pytest.raises(DataSourceError, match="unexpected snli split"):
        snli_from_tfds_examples({"extra": examples("x", 1)})


def test_s3_source_reads_the_same_layout(tmp_path, object_store):
    root = write_snli_mirror(tmp_path)
    for path in (root / "snli").iterdir():
        object_store.upload_file(path, f"sources/snli/{path.name}")
    frame = load_snli(object_store.uri("sources/"), store=object_store)
    pd.testing.assert_frame_equal(frame, load_snli(str(root)))
