"""Scored job-title pairs: built from the ESCO occupation taxonomy, or read from a user's own file.

Every reader returns one table with columns ``row_id, split, left, right, similarity, kind``:
``split`` is train, validation or test; ``similarity`` is the target in [0, 1]; ``kind`` says where
the pair came from (an ESCO tier below, or ``user``). Titles are normalised the same way everywhere
(``normalise_title``: whitespace collapsed, lowercased), as the encoder's tokenizer is uncased.

Scoring scheme for ESCO (occupations_en.csv: preferred label, alternative labels, ISCO-08 unit
group). Each occupation contributes its preferred label and its alternative labels as titles:

==============  ==================================================================  ===========
tier            the two titles are...                                               similarity
==============  ==================================================================  ===========
``synonym``     an occupation's preferred label and one of its alternative labels   0.90
``unit_group``  labels of two occupations in the same ISCO unit group (4 digits)    0.65
``major_group`` labels of two occupations sharing only the ISCO major group         0.35
                (1st digit the same, 2-digit sub-major group different)
``unrelated``   labels of two occupations in different ISCO major groups            0.05
==============  ==================================================================  ===========

The scores are config (``data.scores``). Sampling is balanced (the same number of pairs per tier
in each split), seeded, and never repeats an unordered pair. Splits are drawn by ISCO unit group
(within each major group, so every split spans the taxonomy): an occupation, its titles and its
unit-group mates all sit in one split. A title shared by occupations of different splits (ESCO
reuses a few alternative labels) is kept for train only, so no title of validation or test pairs
occurs in training.

A user's pairs file (the recipe's ``training_data.csv``: columns ``left, right, similarity``, CSV or
tab-separated; an optional ``split`` column) is read as it is, titles normalised. Without a split
column, pairs are split by connected components of titles, so no title crosses splits either.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from modelgate.data.sources import TFDS, DataSourceError, local_copy, read_text_file, resolve_source
from modelgate.messages import one_line
from modelgate.storage import ObjectStore

DATASET_NAME = "esco_title_pairs"
COLUMNS = ("row_id", "split", "left", "right", "similarity", "kind")
SPLITS = ("train", "validation", "test")
TIERS = ("synonym", "unit_group", "major_group", "unrelated")
USER_KIND = "user"
DEFAULT_SCORES = {"synonym": 0.90, "unit_group": 0.65, "major_group": 0.35, "unrelated": 0.05}
VARIANT_FILES = {"v1.0": "esco/occupations_en.csv", "v1.2.0": "esco/v1.2.0/occupations_en.csv"}
OCCUPATION_COLUMNS = ("conceptUri", "iscoGroup", "preferredLabel", "altLabels")
PAIR_COLUMNS = ("left", "right", "similarity")
DOWNLOAD_HINT = (
    "ESCO is not in TensorFlow Datasets: download the ESCO classification as CSV "
    "(https://esco.ec.europa.eu/en/use-esco/download, English) and set data.source to the folder "
    "holding occupations_en.csv, or set MODELGATE_DATA_MIRROR to a mirror with esco/"
)


def normalise_title(title: object) -> str:
    """Whitespace collapsed, ends stripped, lowercased; missing values become ''."""
    if title is None or (isinstance(title, float) and np.isnan(title)):
        return ""
    return " ".join(str(title).split()).lower()


def pair_key(left: str, right: str) -> str:
    """The same key for (a, b) and (b, a)."""
    return "\t".join(sorted((left, right)))


@dataclass(frozen=True)
class Occupation:
    uri: str
    unit_group: str  # 4-digit ISCO-08 code, zero-padded (armed forces are 0xxx)
    titles: tuple[str, ...]  # preferred label first, then unique alternative labels

    @property
    def major(self) -> str:
        return self.unit_group[0]

    @property
    def sub_major(self) -> str:
        return self.unit_group[:2]


# -- reading ---------------------------------------------------------------------------------
def _read_csv(text: str, where: str, sep: str = ",") -> pd.DataFrame:
    try:
        return pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, quoting=csv.QUOTE_MINIMAL)
    except pd.errors.ParserError as exc:
        raise DataSourceError(f"{where} is not a readable CSV table: {one_line(exc)}") from exc


def read_occupations(path: Path) -> list[Occupation]:
    """ESCO ``occupations_en.csv`` -> occupations with normalised titles; errors name the line."""
    frame = _read_csv(read_text_file(path), str(path))
    missing = [c for c in OCCUPATION_COLUMNS if c not in frame.columns]
    if missing:
        raise DataSourceError(f"{path} lacks ESCO columns {missing}; expected {list(OCCUPATION_COLUMNS)}")
    occupations = []
    for index, row in enumerate(frame.itertuples(index=False)):
        line = index + 2  # header is line 1 (multi-line fields aside)
        code = str(row.iscoGroup).strip()
        if not code.isdigit() or len(code) > 4:
            raise DataSourceError(f"{path} row {line}: iscoGroup {code!r} is not an ISCO-08 unit group code")
        preferred = normalise_title(row.preferredLabel)
        if not preferred:
            raise DataSourceError(f"{path} row {line}: occupation {row.conceptUri} has no preferredLabel")
        titles = dict.fromkeys([preferred, *(normalise_title(t) for t in str(row.altLabels).split("\n"))])
        titles.pop("", None)
        occupations.append(Occupation(str(row.conceptUri), code.zfill(4), tuple(titles)))
    if not occupations:
        raise DataSourceError(f"{path} holds no occupations")
    return occupations


def assign_unit_group_splits(
    occupations: list[Occupation], validation_fraction: float, test_fraction: float, seed: int
) -> dict[str, str]:
    """unit group -> split, drawn within each major group so every split spans the taxonomy."""
    by_major: dict[str, list[str]] = defaultdict(list)
    for unit in sorted({o.unit_group for o in occupations}):
        by_major[unit[0]].append(unit)
    rng = np.random.default_rng([seed, 1])
    splits = {}
    for major in sorted(by_major):
        units = [by_major[major][i] for i in rng.permutation(len(by_major[major]))]
        n_test = int(round(len(units) * test_fraction))
        n_val = int(round(len(units) * validation_fraction))
        for position, unit in enumerate(units):
            splits[unit] = "test" if position < n_test else "validation" if position < n_test + n_val else "train"
    return splits


def _allowed_titles(occupations: list[Occupation], unit_splits: dict[str, str]) -> dict[str, list[tuple[str, ...]]]:
    """Per split, each occupation's titles that occur in no other split (train keeps all)."""
    where: dict[str, set[str]] = defaultdict(set)
    for occ in occupations:
        for title in occ.titles:
            where[title].add(unit_splits[occ.unit_group])
    allowed: dict[str, list[tuple[str, ...]]] = {split: [] for split in SPLITS}
    for occ in occupations:
        split = unit_splits[occ.unit_group]
        titles = occ.titles if split == "train" else tuple(t for t in occ.titles if where[t] == {split})
        allowed[split].append(titles)
    return allowed


def _sample_tier(tier, occs, titles, count, rng, seen) -> list[tuple[str, str]]:
    """Up to ``count`` new unordered pairs of one tier from one split's occupations."""
    pairs: list[tuple[str, str]] = []

    def add(left: str, right: str) -> None:
        key = pair_key(left, right)
        if left != right and key not in seen:
            seen.add(key)
            pairs.append((left, right))

    if tier == "synonym":
        candidates = [(t[0], alt) for o, t in zip(occs, titles) if t and t[0] == o.titles[0] for alt in t[1:]]
        for i in rng.permutation(len(candidates)):
            if len(pairs) == count:
                break
            add(*candidates[i])
        return pairs
    usable = [i for i, t in enumerate(titles) if t]
    if len(usable) < 2:
        return pairs
    same = {
        "unit_group": lambda a, b: a.unit_group == b.unit_group,
        "major_group": lambda a, b: a.major == b.major and a.sub_major != b.sub_major,
        "unrelated": lambda a, b: a.major != b.major,
    }[tier]
    by_key: dict[str, list[int]] = defaultdict(list)
    for i in usable:
        by_key[occs[i].unit_group if tier == "unit_group" else occs[i].major].append(i)
    for _ in range(count * 50):  # rejection sampling with a bound: small splits give what they can
        if len(pairs) == count:
            break
        a = usable[rng.integers(len(usable))]
        pool = by_key[occs[a].unit_group if tier == "unit_group" else occs[a].major] if tier != "unrelated" else usable
        b = pool[rng.integers(len(pool))]
        if a == b or not same(occs[a], occs[b]):
            continue
        add(titles[a][rng.integers(len(titles[a]))], titles[b][rng.integers(len(titles[b]))])
    return pairs


def esco_pairs(
    occupations: list[Occupation],
    pairs_per_tier: dict[str, int],
    scores: dict[str, float] | None = None,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 42,
) -> pd.DataFrame:
    """The scored pair table (see the module docstring for the scheme)."""
    scores = {**DEFAULT_SCORES, **(scores or {})}
    unit_splits = assign_unit_group_splits(occupations, validation_fraction, test_fraction, seed)
    allowed = _allowed_titles(occupations, unit_splits)
    rows, seen = [], set()
    for split in SPLITS:
        occs = [o for o in occupations if unit_splits[o.unit_group] == split]
        count = int(pairs_per_tier.get(split, 0))
        for number, tier in enumerate(TIERS):
            rng = np.random.default_rng([seed, SPLITS.index(split), number])
            for left, right in _sample_tier(tier, occs, allowed[split], count, rng, seen):
                rows.append((split, left, right, float(scores[tier]), tier))
    return _table(rows)


def _table(rows: Iterable[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows), columns=list(COLUMNS[1:]))
    frame.insert(0, "row_id", pd.RangeIndex(len(frame)).astype("int64"))
    return frame


# -- a user's own pairs -----------------------------------------------------------------------
def read_pairs_file(path: Path, validation_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 42) -> pd.DataFrame:
    """A CSV/TSV of ``left, right, similarity`` (+ optional ``split``) -> the pair table.

    Values are kept as given apart from title normalisation: an empty title or a similarity that
    is not a number in [0, 1] is left for validation to quarantine, never dropped here.
    """
    raw = read_text_file(path)
    first = raw.splitlines()[0] if raw.strip() else ""
    frame = _read_csv(raw, str(path), sep="\t" if "\t" in first else ",")
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    missing = [c for c in PAIR_COLUMNS if c not in frame.columns]
    if missing:
        raise DataSourceError(
            f"{path} lacks columns {missing}: a pairs file has a header with left, right, similarity "
            f"(and optionally split); found {list(frame.columns)}"
        )
    left = [normalise_title(t) for t in frame["left"]]
    right = [normalise_title(t) for t in frame["right"]]
    similarity = pd.to_numeric(frame["similarity"].str.strip(), errors="coerce").astype("float64")
    if "split" in frame.columns:
        splits = [s.strip().lower() for s in frame["split"]]
    else:
        splits = component_splits(left, right, validation_fraction, test_fraction, seed)
    return _table(zip(splits, left, right, similarity, [USER_KIND] * len(left)))


def component_splits(left, right, validation_fraction: float, test_fraction: float, seed: int) -> list[str]:
    """A split per pair such that titles linked by pairs stay together (union-find over titles)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(left, right):
        parent[find(a)] = find(b)
    sizes: dict[str, int] = defaultdict(int)
    for a in left:
        sizes[find(a)] += 1
    roots = sorted(sizes)
    order = [roots[i] for i in np.random.default_rng([seed, 2]).permutation(len(roots))]
    total, targets = len(left), {"test": test_fraction, "validation": validation_fraction}
    filled = {"test": 0, "validation": 0}
    split_of = {}
    for root in order:
        # Components go to test, then validation, until each reaches its share; a component
        # larger than the share left (e.g. one giant component) stays in train.
        split = next((s for s in ("test", "validation") if filled[s] + sizes[root] <= targets[s] * total), "train")
        if split != "train":
            filled[split] += sizes[root]
        split_of[root] = split
    return [split_of[find(a)] for a in left]


# -- entry point -------------------------------------------------------------------------------
def load_title_pairs(
    source: str = "auto",
    variant: str = "v1.0",
    *,
    pairs_per_tier: dict[str, int],
    scores: dict[str, float] | None = None,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 42,
    store: ObjectStore | None = None,
) -> pd.DataFrame:
    """The pair table from a source spec: an ESCO folder/mirror, occupations_en.csv, or a pairs file."""
    if variant not in VARIANT_FILES:
        raise ValueError(f"unknown ESCO variant {variant!r}; choose one of {sorted(VARIANT_FILES)}")
    resolved = resolve_source(source)
    if resolved.kind == TFDS:
        raise DataSourceError(DOWNLOAD_HINT)
    with local_copy(resolved, store) as path:
        if path.is_dir():
            candidates = [path / VARIANT_FILES[variant], path / "occupations_en.csv"]
            found = next((c for c in candidates if c.is_file()), None)
            if found is None:
                raise DataSourceError(f"no {VARIANT_FILES[variant]} (or occupations_en.csv) under {path}. {DOWNLOAD_HINT}")
            path = found
        header = read_text_file(path).split("\n", 1)[0]
        if "iscoGroup" in header and "preferredLabel" in header:
            return esco_pairs(read_occupations(path), pairs_per_tier, scores, validation_fraction, test_fraction, seed)
        return read_pairs_file(path, validation_fraction, test_fraction, seed)
