"""A small SNLI-like dataset for tests, laid out like the data mirror (``snli/SPLIT.csv.gz``, gzip
CSV with header premise,hypothesis,label), with rows whose label is -1 (no gold label), which the
mirror's own copies lack.

Each premise gets one hypothesis per label, so every split is balanced; texts are unique across
splits, so a fresh fixture has no train/test overlap and no conflicting labels.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pandas as pd

SUBJECTS = ("a man", "a woman", "a dog", "a child", "two people", "a cat", "the teacher", "a driver",
            "the doctor", "a nurse", "the cook", "a girl", "a boy", "the engineer", "three men", "a manager")
PLACES = ("in the park", "on the beach", "in the street", "inside the house", "at the airport",
          "in the room", "at the table", "outside")
ACTIONS = {  # what the hypothesis says, for each label
    0: "is {place_free}",        # entailment: a looser restatement
    1: "is waiting for a friend",  # neutral
    2: "is sleeping at home",     # contradiction
}
NO_GOLD = {"train": 3, "validation": 1, "test": 1}  # rows with label -1 per split
PREMISES = {"train": 24, "validation": 6, "test": 8}  # premises per split (3 hypotheses each)


def make_snli_rows(split: str, premises: int | None = None, no_gold: int | None = None,
                   offset: int = 0) -> list[dict]:
    """``premises`` premises x 3 labelled hypotheses, then ``no_gold`` rows labelled -1."""
    premises = PREMISES[split] if premises is None else premises
    no_gold = NO_GOLD[split] if no_gold is None else no_gold
    start = {"train": 0, "validation": 1000, "test": 2000}[split] + offset
    rows = []
    for i in range(premises):
        n = start + i
        subject = SUBJECTS[n % len(SUBJECTS)]
        place = PLACES[(n // len(SUBJECTS)) % len(PLACES)]
        premise = f"{subject} is sitting {place} with number {n}."
        for label in (0, 1, 2):
            action = ACTIONS[label].format(place_free="outside" if label == 0 else place)
            rows.append({"premise": premise, "hypothesis": f"{subject} {action}.", "label": label})
    for i in range(no_gold):
        rows.append({"premise": f"{SUBJECTS[i]} is running with ball {start + i}.",
                     "hypothesis": f"{SUBJECTS[i]} is playing.", "label": -1})
    return rows


def write_csv_gz(path: Path, rows: list[dict]) -> Path:
    buffer = io.StringIO()
    pd.DataFrame(rows, columns=["premise", "hypothesis", "label"]).to_csv(buffer, index=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(buffer.getvalue().encode("utf-8"), mtime=0))
    return path


def write_snli_mirror(root: Path, splits: dict[str, list[dict]] | None = None,
                      with_train: bool = False) -> Path:
    """Lay out ``root/snli/{validation,test}.csv.gz`` (and ``train`` when asked) like the mirror.

    Without train (the mirror's case), validation gets the training premises too, so the offline
    protocol's seeded split leaves enough rows on both sides.
    """
    if splits is None:
        if with_train:
            splits = {s: make_snli_rows(s) for s in ("train", "validation", "test")}
        else:
            splits = {"validation": make_snli_rows("validation", premises=30, no_gold=4),
                      "test": make_snli_rows("test")}
    for split, rows in splits.items():
        write_csv_gz(root / "snli" / f"{split}.csv.gz", rows)
    return root


def fixture_validation_config() -> dict:
    """SnliValidationConfig keyword arguments whose bounds fit the fixtures (with slack)."""
    return {"split_rows": {"train": (10, 200), "validation": (3, 200), "test": (10, 200)}}


def fixture_words() -> list[str]:
    """Every word of the fixtures, for a tiny preset's vocabulary."""
    import re

    words = set()
    for split in ("train", "validation", "test"):
        for row in make_snli_rows(split, premises=40, no_gold=5):
            words.update(re.findall(r"[a-z]+", f"{row['premise']} {row['hypothesis']}".lower()))
    return sorted(words)
