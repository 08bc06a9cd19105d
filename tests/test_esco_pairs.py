"""Building scored job-title pairs from an ESCO-like taxonomy, reading a user's pairs file, and
reading STS-B: the scheme's tiers and scores, balance, seeding, the split-by-unit-group guarantee,
and clear errors for malformed sources."""

from __future__ import annotations

import pytest

from fixtures_esco import FIXTURE_DATA, occupation_rows, write_esco_mirror
from modelgate.data.esco import (
    DEFAULT_SCORES,
    TIERS,
    USER_KIND,
    component_splits,
    esco_pairs,
    load_title_pairs,
    normalise_title,
    read_occupations,
)
from modelgate.data.sources import DataSourceError
from modelgate.data.stsb import load_stsb


def _pairs(tmp_path, **kwargs):
    mirror = write_esco_mirror(tmp_path / "mirror")
    options = {**FIXTURE_DATA, **kwargs}
    return load_title_pairs(str(mirror), **options)


def test_tiers_are_balanced_scored_and_follow_the_taxonomy(tmp_path):
    occupations = read_occupations(write_esco_mirror(tmp_path / "m") / "esco" / "occupations_en.csv")
    by_title = {t: o for o in occupations for t in o.titles}
    frame = _pairs(tmp_path)
    counts = frame.groupby(["split", "kind"]).size()
    for split, n in FIXTURE_DATA["pairs_per_tier"].items():
        for tier in TIERS:
            assert counts[(split, tier)] == n, (split, tier)
    for row in frame.itertuples():
        a, b = by_title[row.left], by_title[row.right]
        assert row.similarity == DEFAULT_SCORES[row.kind]
        if row.kind == "synonym":
            assert a is b and row.left == a.titles[0]
        elif row.kind == "unit_group":
            assert a is not b and a.unit_group == b.unit_group
        elif row.kind == "major_group":
            assert a.major == b.major and a.sub_major != b.sub_major
        else:
            assert a.major != b.major
    keys = {tuple(sorted(p)) for p in zip(frame["left"], frame["right"])}
    assert len(keys) == len(frame)  # no unordered pair twice
    assert all(normalise_title(t) == t for t in frame["left"]) and "software analyst" in set(frame["left"]) | set(frame["right"])


def test_splits_share_no_title_or_unit_group_and_are_seeded(tmp_path):
    occupations = read_occupations(write_esco_mirror(tmp_path / "m") / "esco" / "occupations_en.csv")
    unit_of = {t: o.unit_group for o in occupations for t in o.titles}
    frame = _pairs(tmp_path)
    units = {s: {unit_of[t] for t in set(g["left"]) | set(g["right"])} for s, g in frame.groupby("split")}
    titles = {s: set(g["left"]) | set(g["right"]) for s, g in frame.groupby("split")}
    for held in ("validation", "test"):
        assert not units[held] & units["train"]
        assert not titles[held] & titles["train"]
    assert frame.equals(_pairs(tmp_path))
    assert not frame.equals(_pairs(tmp_path, seed=7))


def test_a_title_shared_across_splits_stays_in_train_only(tmp_path):
    rows = occupation_rows()
    # Give every occupation the same extra alternative label: it may only appear in train pairs.
    for row in rows:
        row["altLabels"] += "\nGeneral  Worker"
    occupations = read_occupations(write_esco_mirror(tmp_path / "m", rows) / "esco" / "occupations_en.csv")
    frame = esco_pairs(occupations, {"train": 200, "validation": 40, "test": 40},
                       validation_fraction=0.25, test_fraction=0.25)
    held = frame[frame["split"] != "train"]
    assert "general worker" not in set(held["left"]) | set(held["right"])
    assert "general worker" in set(frame["left"]) | set(frame["right"])


def test_user_pairs_file_is_read_as_given_and_split_by_components(tmp_path):
    path = tmp_path / "training_data.csv"
    lines = ["left,right,similarity", "Data Scientist, machine learning engineer,0.8", "nurse,,0.5",
             "chef,cook,high"]
    lines += [f"title {i},other {i},0.{i % 10}" for i in range(40)]
    path.write_text("\n".join(lines) + "\n")
    frame = load_title_pairs(str(path), pairs_per_tier={})
    assert list(frame.columns) == ["row_id", "split", "left", "right", "similarity", "kind"]
    assert len(frame) == 43 and set(frame["kind"]) == {USER_KIND}
    first = frame.iloc[0]
    assert (first["left"], first["right"], first["similarity"]) == ("data scientist", "machine learning engineer", 0.8)
    assert frame.iloc[1]["right"] == ""  # kept for validation to quarantine, not dropped here
    assert frame["similarity"].isna().sum() == 1
    assert set(frame["split"]) == {"train", "validation", "test"}
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("left\tright\tsimilarity\tsplit\na\tb\t0.3\ttest\n")
    assert load_title_pairs(str(tsv), pairs_per_tier={}).iloc[0]["split"] == "test"


def test_component_splits_keep_linked_titles_together():
    left = ["a", "b", "c", "x", "y", "p"] + [f"t{i}" for i in range(20)]
    right = ["b", "c", "d", "y", "z", "q"] + [f"u{i}" for i in range(20)]
    splits = component_splits(left, right, 0.2, 0.2, seed=1)
    assert splits[0] == splits[1] == splits[2]  # a-b-c-d is one component
    assert splits[3] == splits[4]
    assert {"train", "validation", "test"} <= set(splits)


def test_bad_sources_give_clear_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("MODELGATE_DATA_MIRROR", raising=False)
    with pytest.raises(DataSourceError, match="ESCO is not in TensorFlow Datasets"):
        load_title_pairs("auto", pairs_per_tier={})
    bad = tmp_path / "pairs.csv"
    bad.write_text("first,second,score\na,b,0.5\n")
    with pytest.raises(DataSourceError, match=r"lacks columns \['left', 'right', 'similarity'\]"):
        load_title_pairs(str(bad), pairs_per_tier={})
    rows = occupation_rows()
    rows[3]["iscoGroup"] = "12a4"
    mirror = write_esco_mirror(tmp_path / "m", rows)
    with pytest.raises(DataSourceError, match=r"row 5: iscoGroup '12a4'"):
        load_title_pairs(str(mirror), pairs_per_tier={"train": 1})
    with pytest.raises(DataSourceError, match="no esco/occupations_en.csv"):
        load_title_pairs(str(tmp_path / "m" / "stsb"), pairs_per_tier={})


def test_stsb_reads_first_seven_fields_and_rejects_bad_lines(tmp_path):
    mirror = write_esco_mirror(tmp_path / "m")
    frame = load_stsb(str(mirror), "test")
    assert len(frame) == 12 and frame["score"].between(0, 5).all()
    assert frame.iloc[0]["sentence2"] == "A man plays the guitar."  # a 9-field row
    path = mirror / "stsb" / "sts-test.csv"
    path.write_text(path.read_text() + "genre\tfile\t2012\t9\tfive\ta\tb\n")
    with pytest.raises(DataSourceError, match=r"sts-test.csv:13: score 'five' is not a number"):
        load_stsb(str(mirror), "test")


def test_recipe_profile_changes_only_the_scores_and_keeps_their_order(tmp_path):
    from modelgate.pipelines.job_similarity import PIPELINE

    default, recipe = PIPELINE.load_config("default"), PIPELINE.load_config("recipe")
    same = {"data", "train", "profile"}
    assert recipe.model_dump(exclude=same) == default.model_dump(exclude=same)
    assert recipe.train.model_dump(exclude={"min_delta"}) == default.train.model_dump(exclude={"min_delta"})
    assert default.train.min_delta == pytest.approx(recipe.train.min_delta / 10)
    assert recipe.data.model_dump(exclude={"scores"}) == default.data.model_dump(exclude={"scores"})
    assert recipe.data.scores == DEFAULT_SCORES  # the recipe's own targets
    for cfg in (default, recipe):
        scores = [cfg.data.scores[tier] for tier in TIERS]
        assert scores == sorted(scores, reverse=True) and len(set(scores)) == len(scores)
    assert default.data.scores["unrelated"] == 0.5  # orthogonal: 1 - arccos(0) / pi
    frame = _pairs(tmp_path, scores=default.data.scores)
    assert set(frame["similarity"]) == set(default.data.scores.values())