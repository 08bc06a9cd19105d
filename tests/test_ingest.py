"""Ingestion: source specs, the CLINC readers (mirror, files, s3://, tfds-shaped examples), and
content-addressed snapshots on a real SeaweedFS."""

from __future__ import annotations

import json
import threading
import uuid

import numpy as np
import pandas as pd
import pytest

from fixtures_clinc import FIXTURE_INTENTS, make_clinc_payload, write_clinc_mirror
from modelgate.data.clinc import (
    clinc_from_json_layout,
    clinc_from_tfds_examples,
    load_clinc,
    load_known_intents,
)
from modelgate.data.snapshot import (
    DatasetSnapshot,
    SnapshotError,
    canonical_jsonl,
    load_snapshot,
    read_manifest,
    snapshot_table,
)
from modelgate.data.sources import (
    MIRROR,
    TFDS,
    DataSourceError,
    load_tfds_splits,
    resolve_source,
)

from mirror import REAL_MIRROR  # noqa: E402


# -- sources -----------------------------------------------------------------------------------
def test_auto_uses_the_mirror_when_configured_else_tfds(monkeypatch, tmp_path):
    monkeypatch.setenv("MODELGATE_DATA_MIRROR", str(tmp_path))
    assert resolve_source("auto") == resolve_source("mirror")
    assert resolve_source("auto").kind == MIRROR
    monkeypatch.delenv("MODELGATE_DATA_MIRROR")
    assert resolve_source("auto").kind == TFDS
    with pytest.raises(DataSourceError, match="MODELGATE_DATA_MIRROR"):
        resolve_source("mirror")


def test_unknown_source_spec_says_what_is_accepted(tmp_path):
    with pytest.raises(DataSourceError, match="is not 'auto', 'tfds', 'mirror', an s3:// URI"):
        resolve_source(str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="no bucket"):
        resolve_source("s3:///key")


def test_missing_mirror_file_names_the_expected_path_and_layout(monkeypatch, tmp_path):
    write_clinc_mirror(tmp_path)  # only data_full.json
    monkeypatch.setenv("MODELGATE_DATA_MIRROR", str(tmp_path))
    with pytest.raises(DataSourceError) as caught:
        load_clinc("auto", "small")
    message = str(caught.value)
    assert str(tmp_path / "clinc_oos" / "data_small.json") in message
    assert "list of [text, intent] pairs" in message


def test_tfds_failure_says_to_set_the_mirror(tmp_path):
    # A real tfds call that fails without the network: the dataset name does not exist.
    with pytest.raises(DataSourceError, match="set MODELGATE_DATA_MIRROR"):
        load_tfds_splits("modelgate_no_such_dataset", data_dir=str(tmp_path))


# -- CLINC readers -----------------------------------------------------------------------------
def test_real_mirror_full_and_small_counts_and_known_intents(monkeypatch):
    monkeypatch.setenv("MODELGATE_DATA_MIRROR", str(REAL_MIRROR))
    full = load_clinc("auto", "full")
    assert list(full.columns) == ["row_id", "split", "text", "intent"]
    assert full["split"].value_counts().to_dict() == {
        "train": 15000, "validation": 3000, "test": 4500,
        "oos_train": 100, "oos_validation": 100, "oos_test": 1000,
    }
    assert full["row_id"].tolist() == list(range(len(full)))
    assert set(full.loc[full["split"].str.startswith("oos_"), "intent"]) == {"oos"}
    assert full.loc[0, "text"].startswith("what expression would i use")
    small = load_clinc("mirror", "small")
    assert (small["split"] == "train").sum() == 7500
    known = load_known_intents("auto")  # from domains.json
    assert len(known) == 150 and "oos" not in known
    assert known == sorted(set(full.loc[full["split"] == "train", "intent"]))


def test_known_intents_fall_back_to_the_training_split(tmp_path):
    payload = make_clinc_payload()
    path = tmp_path / "clinc.json"
    path.write_text(json.dumps(payload))
    assert load_known_intents(str(path)) == sorted(FIXTURE_INTENTS)


def test_json_layout_maps_val_to_validation_and_keeps_order():
    frame = clinc_from_json_layout({"val": [["b", "x"]], "train": [["a", "x"]], "oos_val": [["c", "oos"]]})
    assert frame.to_dict("records") == [
        {"row_id": 0, "split": "train", "text": "a", "intent": "x"},
        {"row_id": 1, "split": "validation", "text": "b", "intent": "x"},
        {"row_id": 2, "split": "oos_validation", "text": "c", "intent": "oos"},
    ]
    with pytest.raises(DataSourceError, match="unknown keys"):
        clinc_from_json_layout({"training": []})
    with pytest.raises(DataSourceError, match="not a \\[text, intent\\] pair"):
        clinc_from_json_layout({"train": [["only text"]]})


def test_csv_and_jsonl_files_read_the_same_as_the_json_layout(tmp_path):
    reference = clinc_from_json_layout(make_clinc_payload())
    table = reference[["split", "text", "intent"]]
    table.to_csv(tmp_path / "clinc.csv", index=False)
    table.to_json(tmp_path / "clinc.jsonl", orient="records", lines=True)
    for name in ("clinc.csv", "clinc.jsonl"):
        loaded = load_clinc(str(tmp_path / name))
        pd.testing.assert_frame_equal(loaded, reference, check_dtype=False)
    (tmp_path / "bad.csv").write_text("split,sentence\ntrain,hi\n")
    with pytest.raises(DataSourceError, match="lacks columns \\['intent', 'text'\\]"):
        load_clinc(str(tmp_path / "bad.csv"))


def test_tfds_shaped_examples_are_mapped_and_oos_rows_routed():
    # What tfds.as_numpy yields for clinc_oos: bytes text, int32 ids, intent_name bytes.
    def example(text, intent_id, name):
        return {"text": text.encode(), "intent": np.int32(intent_id), "domain": np.int32(0),
                "intent_name": name.encode(), "domain_name": b"d"}

    frame = clinc_from_tfds_examples({
        "train": [example("set an alarm", 3, "alarm"), example("what is love", 42, "oos")],
        "test": [example("wake me at 7", 3, "alarm")],
        "validation": [example("alarm please", 3, "alarm")],
        "train_oos": [example("tell me a riddle", 42, "oos")],
        "test_oos": [example("who won the game", 42, "oos")],
    })
    assert frame[["split", "text", "intent"]].values.tolist() == [
        ["train", "set an alarm", "alarm"],
        ["validation", "alarm please", "alarm"],
        ["test", "wake me at 7", "alarm"],
        ["oos_train", "what is love", "oos"],  # OOS mixed into train goes to oos_train
        ["oos_train", "tell me a riddle", "oos"],
        ["oos_test", "who won the game", "oos"],
    ]
    assert frame["row_id"].tolist() == list(range(6))


def test_the_small_variant_from_tfds_is_50_seeded_queries_per_intent(monkeypatch, tmp_path):
    """tfds has only CLINC150 full: the small variant is derived from it (50 training queries per
    intent, a fixed seed), every other split kept whole, the same on every call."""
    import modelgate.data.clinc as clinc

    def example(text, name):
        return {"text": text.encode(), "intent_name": name.encode()}

    splits = {
        "train": [example(f"{name} query {i}", name) for name in ("alarm", "weather") for i in range(80)]
        + [example(f"short {i}", "timer") for i in range(30)],
        "validation": [example("alarm please", "alarm")],
        "test": [example("wake me at 7", "alarm"), example("rain?", "weather")],
        "train_oos": [example("tell me a riddle", "oos")],
        "validation_oos": [example("sing", "oos")],
        "test_oos": [example("who won the game", "oos")],
    }

    class Info:
        features = {"intent": object()}

    monkeypatch.setattr(clinc, "load_tfds_splits", lambda name, data_dir: (splits, Info()))
    monkeypatch.setenv("MODELGATE_HOME", str(tmp_path))
    monkeypatch.delenv("MODELGATE_DATA_MIRROR", raising=False)
    full = load_clinc("tfds", "full")
    small = load_clinc("tfds", "small")
    train = small[small["split"] == "train"]
    assert train["intent"].value_counts().to_dict() == {"alarm": 50, "weather": 50, "timer": 30}
    assert set(train["text"]) <= set(full.loc[full["split"] == "train", "text"])
    for split in ("validation", "test", "oos_train", "oos_validation", "oos_test"):
        assert small.loc[small["split"] == split, "text"].tolist() == full.loc[full["split"] == split, "text"].tolist()
    assert small["row_id"].tolist() == list(range(len(small)))
    pd.testing.assert_frame_equal(load_clinc("tfds", "small"), small)  # deterministic
    with pytest.raises(DataSourceError, match="for 'imbalanced' use the mirror"):
        load_clinc("tfds", "imbalanced")


def test_tfds_int_labels_are_named_through_the_label_names():
    names = ["alarm", "oos", "weather"]
    frame = clinc_from_tfds_examples(
        {"train": [{"text": b"rain?", "intent": np.int64(2)}, {"text": b"hm", "intent": np.int64(1)}]},
        intent_names=names,
    )
    assert frame[["split", "intent"]].values.tolist() == [["train", "weather"], ["oos_train", "oos"]]
    with pytest.raises(DataSourceError, match="no intent_name"):
        clinc_from_tfds_examples({"train": [{"text": b"x", "intent": 0}]})


def test_s3_file_in_another_bucket_and_s3_mirror_directory(s3_server, object_store, tmp_path):
    payload = make_clinc_payload()
    other = s3_server.store(f"other-{uuid.uuid4().hex[:12]}")
    other.ensure_bucket()
    try:
        other.put_bytes("raw/clinc.json", json.dumps(payload).encode())
        frame = load_clinc(f"s3://{other.bucket}/raw/clinc.json", store=object_store)
        pd.testing.assert_frame_equal(frame, clinc_from_json_layout(payload))
    finally:
        other.delete_prefix("")
        other.delete_bucket()
    object_store.upload_dir(write_clinc_mirror(tmp_path / "mirror", payload), "mirror")
    uri = f"s3://{object_store.bucket}/mirror/"
    assert len(load_clinc(uri, store=object_store)) == len(frame)
    assert load_known_intents(uri, store=object_store) == sorted(FIXTURE_INTENTS)
    with pytest.raises(DataSourceError, match="does not exist in object storage"):
        load_clinc(f"s3://{object_store.bucket}/missing.json", store=object_store)


# -- snapshots ---------------------------------------------------------------------------------
def test_snapshot_is_content_addressed_and_round_trips(object_store):
    frame = clinc_from_json_layout(make_clinc_payload())
    snapshot = snapshot_table(object_store, "clinc_oos", frame, source="fixture")
    assert snapshot.uri == object_store.uri(f"datasets/clinc_oos/{snapshot.sha256}/data.jsonl")
    assert snapshot.rows == len(frame)
    assert snapshot.split_counts == {"oos_test": 5, "oos_train": 4, "oos_validation": 2,
                                     "test": 15, "train": 30, "validation": 10}
    manifest = read_manifest(object_store, snapshot)
    assert manifest["sha256"] == snapshot.sha256 and manifest["source"] == "fixture"
    assert manifest["columns"] == ["row_id", "split", "text", "intent"] and manifest["created_at"]

    shuffled = frame.sample(frac=1.0, random_state=0)[["text", "intent", "row_id", "split"]]
    assert canonical_jsonl(shuffled) == canonical_jsonl(frame)
    again = snapshot_table(object_store, "clinc_oos", shuffled, source="another run")
    assert again.sha256 == snapshot.sha256
    assert read_manifest(object_store, again) == manifest  # not rewritten

    loaded = load_snapshot(object_store, DatasetSnapshot.from_dict(snapshot.to_dict()))
    pd.testing.assert_frame_equal(loaded, frame, check_dtype=False)
    assert loaded["row_id"].dtype == np.int64
    changed = frame.copy()
    changed.loc[0, "text"] = "a different query"
    assert snapshot_table(object_store, "clinc_oos", changed).sha256 != snapshot.sha256


def test_concurrent_writers_of_the_same_content_agree(object_store):
    frame = clinc_from_json_layout(make_clinc_payload())
    results, errors = [], []

    def write():
        try:
            results.append(snapshot_table(object_store, "clinc_oos", frame))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len({r.sha256 for r in results}) == 1
    keys = sorted(object_store.list_keys("datasets/clinc_oos/"))
    assert [k.rsplit("/", 1)[1] for k in keys] == ["data.jsonl", "manifest.json"]


def test_corrupted_snapshot_is_refused(object_store):
    frame = clinc_from_json_layout(make_clinc_payload())
    snapshot = snapshot_table(object_store, "clinc_oos", frame)
    key = object_store.key_of(snapshot.uri)
    object_store.put_bytes(key, object_store.get_bytes(key).replace(b"alarm", b"alarn", 1))
    expected = f"corrupted: its sha256 is .* the manifest records {snapshot.sha256}"
    with pytest.raises(SnapshotError, match=expected):
        load_snapshot(object_store, snapshot)


def test_snapshot_rejects_tables_it_cannot_address(object_store):
    frame = pd.DataFrame({"row_id": [1, 1], "split": ["train", "train"]})
    with pytest.raises(SnapshotError, match="row_id must be unique"):
        snapshot_table(object_store, "clinc_oos", frame)
    with pytest.raises(SnapshotError, match="needs a row_id column"):
        snapshot_table(object_store, "clinc_oos", frame.drop(columns="row_id"))
    with pytest.raises(SnapshotError, match="dataset name"):
        snapshot_table(object_store, "CLINC/../x", frame.drop_duplicates())
