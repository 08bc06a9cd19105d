"""A small ESCO-like taxonomy and STS-B-like file for tests, laid out like the data mirror.

Three ISCO major groups (2, 3, 5), eight unit groups each (each in its own sub-major group), three
occupations per unit group; every occupation has a preferred label and three alternative labels.
All titles are unique, so the split-leak guard removes nothing. With validation/test fractions of
0.25, each split gets two unit groups per major group: every tier has candidates in every split.
"""

from __future__ import annotations

import csv
from pathlib import Path

MAJORS = ("2", "3", "5")
FIELDS = {
    "2": ["software", "data", "finance", "legal", "research", "design", "network", "audit"],
    "3": ["laboratory", "electrical", "mechanical", "dental", "pharmacy", "survey", "building", "radio"],
    "5": ["retail", "kitchen", "garden", "hotel", "security", "beauty", "childcare", "travel"],
}
ROLES = ("analyst", "engineer", "manager")
STSB_DEV_ROWS = 9
STSB_ROWS = [
    ("A man is playing a guitar.", "A man plays the guitar.", 4.8),
    ("A woman is slicing an onion.", "A woman is cutting an onion.", 4.2),
    ("A dog is running in a park.", "A cat sleeps on a sofa.", 0.4),
    ("Two children are playing outside.", "Kids play in the yard.", 3.6),
    ("The stock market fell sharply today.", "Shares dropped a lot today.", 3.9),
    ("A chef is cooking pasta.", "Someone is making food.", 2.8),
    ("A bus drives down the street.", "A woman reads a book.", 0.0),
    ("The weather is sunny.", "It is a bright sunny day.", 4.0),
    ("A man is eating dinner.", "A man is having a meal.", 4.4),
    ("A nurse helps a patient.", "A teacher grades papers.", 0.6),
    ("People are walking on the beach.", "People walk along the shore.", 4.1),
    ("A train arrives at the station.", "The train pulls into the station.", 4.6),
]


def occupation_rows() -> list[dict[str, str]]:
    rows = []
    for major in MAJORS:
        for number, field in enumerate(FIELDS[major], start=1):
            unit = f"{major}{number}11"  # its own sub-major group: major + number
            for role in ROLES:
                preferred = f"{field} {role}"
                alts = [f"senior {preferred}", f"junior {preferred}", f"{preferred} lead"]
                rows.append({
                    "conceptType": "Occupation",
                    "conceptUri": f"http://data.europa.eu/esco/occupation/{unit}-{role}",
                    "iscoGroup": unit,
                    "preferredLabel": preferred.title(),  # the reader normalises case
                    "altLabels": "\n".join(alts),
                    "description": f"{preferred} description",
                })
    return rows


def fixture_words() -> list[str]:
    words = {"senior", "junior", "lead", *ROLES}
    for fields in FIELDS.values():
        words.update(fields)
    for left, right, _ in STSB_ROWS:
        words.update(w.strip(".").lower() for w in f"{left} {right}".split())
    return sorted(words)


def write_esco_mirror(root: Path, rows: list[dict[str, str]] | None = None) -> Path:
    """``root/esco/occupations_en.csv`` and ``root/stsb/sts-{test,dev}.csv`` like the data mirror."""
    folder = Path(root) / "esco"
    folder.mkdir(parents=True, exist_ok=True)
    rows = occupation_rows() if rows is None else rows
    with open(folder / "occupations_en.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    stsb = Path(root) / "stsb"
    stsb.mkdir(parents=True, exist_ok=True)
    lines = []
    for index, (left, right, score) in enumerate(STSB_ROWS):
        extra = "\tsource-a\tsource-b" if index % 4 == 0 else ""  # some rows carry 9 fields
        lines.append(f"main-captions\tMSRvid\t2012test\t{index:04d}\t{score:.3f}\t{left}\t{right}{extra}")
    (stsb / "sts-test.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    # A dev file of its own size, so a test can tell which split a comparison read.
    (stsb / "sts-dev.csv").write_text("\n".join(lines[:STSB_DEV_ROWS]) + "\n", encoding="utf-8")
    return Path(root)


FIXTURE_DATA = {
    "pairs_per_tier": {"train": 24, "validation": 8, "test": 8},
    "validation_fraction": 0.25,
    "test_fraction": 0.25,
}
FIXTURE_VALIDATION = {"split_rows": {"train": [40, 200], "validation": [16, 64], "test": [16, 64]}}
