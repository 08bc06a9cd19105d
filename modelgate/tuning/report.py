"""What a person reads about a study: one table row per trial and a PNG of the trials."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from modelgate.storage import ObjectStore


def trials_table(records: list[dict[str, Any]], metric: str, best_number: int) -> list[dict[str, Any]]:
    rows = []
    for r in sorted(records, key=lambda r: r["number"]):
        row: dict[str, Any] = {"trial": r["number"], **{k: _short(v) for k, v in r["params"].items()}}
        row[f"validation {metric}"] = round(r["value"], 4)
        row["train s"] = round(r.get("train_seconds", 0.0), 1)
        row["worker"] = r.get("worker", "")
        row["best"] = "yes" if r["number"] == best_number else ""
        rows.append(row)
    return rows


def _short(value: Any) -> Any:
    return float(f"{value:.4g}") if isinstance(value, float) else value


def plot_trials(records: list[dict[str, Any]], metric: str, direction: str, path: Path, title: str) -> Path:
    """Each trial's validation score in trial order, and the best so far."""
    ordered = sorted(records, key=lambda r: r["number"])
    numbers = [r["number"] for r in ordered]
    values = [r["value"] for r in ordered]
    pick = max if direction == "maximize" else min
    running = [pick(values[: i + 1]) for i in range(len(values))]
    fig = Figure(figsize=(6.4, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(numbers, values, "o", label="trial")
    ax.step(numbers, running, where="post", label=f"best so far ({direction})")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"validation {metric}")
    ax.set_title(title)
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def upload_trials_plot(store: ObjectStore, records: list[dict[str, Any]], metric: str, direction: str,
                       prefix: str, title: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = plot_trials(records, metric, direction, Path(tmp) / "trials.png", title)
        key = f"{prefix}/trials.png"
        store.upload_file(path, key)
    return store.uri(key)
