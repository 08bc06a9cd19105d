"""A small CLINC-like dataset for tests: a few intents, a few rows per split, the same dict layout
as ``clinc_oos/data_full.json`` (keys train/val/test/oos_train/oos_val/oos_test, each a list of
[text, intent]). Texts are unique across splits, so a fresh fixture has no train/test overlap."""

from __future__ import annotations

import json
from pathlib import Path

FIXTURE_INTENTS = ("alarm", "book_flight", "translate", "weather", "transfer")
FIXTURE_DOMAINS = {"travel": ["book_flight", "weather"], "utility": ["alarm", "translate"],
                   "banking": ["transfer"]}
# rows per in-scope intent, and OOS rows, for each split of the JSON layout
PER_INTENT = {"train": 6, "val": 2, "test": 3}
OOS_ROWS = {"oos_train": 4, "oos_val": 2, "oos_test": 5}


def make_clinc_payload(
    intents: tuple[str, ...] = FIXTURE_INTENTS,
    per_intent: dict[str, int] | None = None,
    oos_rows: dict[str, int] | None = None,
) -> dict[str, list[list[str]]]:
    """A data_full.json-shaped dict: in-scope splits grouped by intent, then the OOS splits."""
    per_intent = {**PER_INTENT, **(per_intent or {})}
    oos_rows = {**OOS_ROWS, **(oos_rows or {})}
    payload: dict[str, list[list[str]]] = {}
    for split, count in per_intent.items():
        payload[split] = [
            [f"please help with {intent.replace('_', ' ')}, {split} query {i}", intent]
            for intent in intents
            for i in range(count)
        ]
    for split, count in oos_rows.items():
        payload[split] = [[f"something unrelated number {i} from {split}", "oos"] for i in range(count)]
    return payload


def fixture_config_kwargs() -> dict:
    """ClincValidationConfig keyword arguments whose bounds fit the default fixture (with slack:
    half to twice each split's size and each intent's rows)."""
    names = {"train": "train", "val": "validation", "test": "test", "oos_train": "oos_train",
             "oos_val": "oos_validation", "oos_test": "oos_test"}
    split_rows = {names[k]: (max(1, len(v) // 2), len(v) * 2) for k, v in make_clinc_payload().items()}
    class_rows = {names[k]: (max(1, n // 2), n * 2) for k, n in PER_INTENT.items()}
    return {"split_rows": split_rows, "class_rows": class_rows}


def write_clinc_mirror(root: Path, payload: dict | None = None, variant: str = "full") -> Path:
    """Lay out ``root/clinc_oos/data_VARIANT.json`` and ``domains.json`` like the data mirror."""
    folder = root / "clinc_oos"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"data_{variant}.json").write_text(json.dumps(payload or make_clinc_payload()))
    (folder / "domains.json").write_text(json.dumps(FIXTURE_DOMAINS))
    return root


def clinc_tiny_preset(root: Path) -> Path:
    """A tiny random BERT preset whose vocabulary covers the fixture's words."""
    import re

    from tiny_preset import build_tiny_preset

    words = set()
    for rows in make_clinc_payload().values():
        for text, _ in rows:
            words.update(re.findall(r"[a-z]+", text.lower()))
    return build_tiny_preset(Path(root) / "tiny-bert", extra_words=sorted(words))


def write_clinc_config(tmp_path, mirror, preset, gate: dict | None = None) -> str:
    """An intent-ood config file for the fixture: tiny encoder, two epochs, fixture bounds."""
    import yaml

    validation = {k: {split: list(b) for split, b in v.items()} for k, v in fixture_config_kwargs().items()}
    config = {
        "data": {"source": str(mirror), "variant": "full"},
        "model": {"preset": str(preset), "sequence_length": 16, "num_inducing": 64},
        # The caller's backend, not the default profile's JAX (tests/test_training_backend.py).
        "train": {"epochs": 2, "batch_size": 8, "learning_rate": 1.0e-3, "backend": "inherit"},
        "evaluate": {"bootstrap_samples": 100},
        "validation": validation,
    }
    if gate is not None:
        config["gate"] = gate
    path = Path(tmp_path) / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)
