"""Evaluation plots as PNG files: reliability diagram, PR and ROC curves, confusion matrix.

Figures are built on matplotlib's object API with the Agg canvas, never pyplot: no global figure
state, no display needed, safe in worker threads. Each function takes arrays and an output path
and returns the path it wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from modelgate.evaluation import metrics as m

DPI = 120
ANNOTATE_MAX_CLASSES = 20


def _save(fig: Figure, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", dpi=DPI)
    return path


def plot_reliability_diagram(
    probs, labels, path, n_bins: int = m.DEFAULT_ECE_BINS, title: str = "Reliability diagram"
) -> Path:
    """Per-bin accuracy vs mean confidence, the gap to the diagonal, and the bin sizes below."""
    bins = m.reliability_bins(probs, labels, n_bins)
    width = bins.upper - bins.lower
    filled = bins.count > 0
    fig = Figure(figsize=(6, 6.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    top.bar(bins.lower[filled], bins.accuracy[filled], width=width[filled], align="edge",
            color="#4C72B0", edgecolor="black", linewidth=0.5, label="accuracy in bin")
    gap = bins.confidence[filled] - bins.accuracy[filled]
    top.bar(bins.lower[filled], gap, bottom=bins.accuracy[filled], width=width[filled],
            align="edge", color="#DD8452", alpha=0.45, edgecolor="#C44E52", hatch="//",
            linewidth=0.5, label="gap to mean confidence")
    top.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfect calibration")
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy",
            title=f"{title}\nECE = {bins.ece:.4f} ({n_bins} bins, n = {int(bins.count.sum())})")
    top.legend(loc="upper left")
    top.grid(alpha=0.3)
    bottom.bar(bins.lower, bins.count, width=width, align="edge", color="#8C8C8C",
               edgecolor="black", linewidth=0.5)
    bottom.set(xlabel="confidence (max probability)", ylabel="examples")
    bottom.grid(alpha=0.3)
    return _save(fig, path)


def plot_pr_curve(
    y_true, scores, path, positive_name: str = "out-of-scope",
    title: str = "Precision-recall curve",
) -> Path:
    """Precision vs recall with ``positive_name`` as the positive class; AUPRC and AP in legend."""
    precision, recall, _ = m.precision_recall_curve(y_true, scores)
    area = m.auprc(y_true, scores)
    ap = m.average_precision(y_true, scores)
    prevalence = float(np.mean(np.asarray(y_true) == 1))
    fig = Figure(figsize=(6, 5), layout="constrained")
    ax = fig.subplots()
    ax.plot(recall, precision, color="#4C72B0", linewidth=1.8,
            label=f"AUPRC = {area:.4f} (AP = {ap:.4f})")
    ax.axhline(prevalence, linestyle="--", color="gray",
               label=f"chance (prevalence {prevalence:.3f})")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel=f"recall ({positive_name})",
           ylabel=f"precision ({positive_name})", title=f"{title}\npositive class: {positive_name}")
    ax.legend(loc="lower left")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_roc_curve(
    y_true, scores, path, positive_name: str = "out-of-scope", title: str = "ROC curve"
) -> Path:
    fpr, tpr, _ = m.roc_curve(y_true, scores)
    area = m.roc_auc(y_true, scores)
    fig = Figure(figsize=(6, 5), layout="constrained")
    ax = fig.subplots()
    ax.plot(fpr, tpr, color="#4C72B0", linewidth=1.8, label=f"AUROC = {area:.4f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", label="chance")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="false positive rate", ylabel="true positive rate",
           title=f"{title}\npositive class: {positive_name}")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_confusion_matrix(
    labels, predictions, path, class_names: Sequence[str] | None = None,
    normalize: bool = True, title: str = "Confusion matrix",
) -> Path:
    """Heatmap with true classes as rows; rows normalised to recall when ``normalize``."""
    num_classes = len(class_names) if class_names is not None else None
    counts = m.confusion_matrix(labels, predictions, num_classes)
    k = len(counts)
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    with np.errstate(invalid="ignore", divide="ignore"):
        shown = counts / counts.sum(axis=1, keepdims=True) if normalize else counts.astype(float)
    shown = np.nan_to_num(shown)
    size = min(4 + 0.45 * k, 16)
    fig = Figure(figsize=(size + 1, size), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(image, ax=ax, label="fraction of true class" if normalize else "examples")
    # Tick labels and cell numbers only while they stay legible; 150 intents get a bare heatmap.
    if k <= ANNOTATE_MAX_CLASSES:
        ax.set_xticks(range(k), names, rotation=45, ha="right")
        ax.set_yticks(range(k), names)
        for i in range(k):
            for j in range(k):
                text = f"{shown[i, j]:.2f}" if normalize else str(counts[i, j])
                ax.text(j, i, text, ha="center", va="center", fontsize=8,
                        color="white" if shown[i, j] > 0.6 * (shown.max() or 1) else "black")
    accuracy = np.trace(counts) / counts.sum()
    ax.set(xlabel="predicted class", ylabel="true class",
           title=f"{title}\naccuracy = {accuracy:.4f}, n = {int(counts.sum())}")
    return _save(fig, path)


def plot_similarity_heatmaps(
    matrices: dict[str, np.ndarray], labels: Sequence[str], path,
    title: str = "Pairwise similarity",
) -> Path:
    """Square similarity matrices side by side (e.g. base vs tuned encoder), one shared colour scale."""
    if not matrices:
        raise ValueError("plot_similarity_heatmaps needs at least one matrix")
    k = len(labels)
    for name, matrix in matrices.items():
        if np.shape(matrix) != (k, k):
            raise ValueError(f"matrix {name!r} has shape {np.shape(matrix)}, expected ({k}, {k})")
    panels = len(matrices)
    fig = Figure(figsize=(5.2 * panels + 1, 5.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, panels))
    image = None
    for ax, (name, matrix) in zip(axes, matrices.items()):
        matrix = np.asarray(matrix, dtype=float)
        image = ax.imshow(matrix, cmap="viridis", vmin=0.0, vmax=1.0)
        ax.set_xticks(range(k), labels, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(k), labels if ax is axes[0] else [""] * k, fontsize=8)
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if matrix[i, j] > 0.6 else "white")
        ax.set_title(name)
    fig.colorbar(image, ax=list(axes), label="similarity", shrink=0.8)
    fig.suptitle(title)
    return _save(fig, path)


def plot_learning_curves(
    points: Sequence[dict], path, metrics: Sequence[str], x: str = "epochs", group: str = "examples",
    title: str = "Learning curves",
) -> Path:
    """One panel per metric: its value (and 95% interval band when ``METRIC_low``/``_high`` are
    given) against ``x``, one line per value of ``group``. ``points`` are flat dicts."""
    fig = Figure(figsize=(5.5 * len(metrics), 4.5), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(metrics)))
    groups = sorted({p[group] for p in points})
    for ax, metric in zip(axes, metrics):
        for value in groups:
            rows = sorted((p for p in points if p[group] == value), key=lambda p: p[x])
            xs = [p[x] for p in rows]
            line = ax.plot(xs, [p[metric] for p in rows], marker="o", label=f"{group} = {value}")[0]
            if all(p.get(f"{metric}_low") is not None for p in rows):
                ax.fill_between(xs, [p[f"{metric}_low"] for p in rows], [p[f"{metric}_high"] for p in rows],
                                color=line.get_color(), alpha=0.12)
        ax.set(xlabel=x, ylabel=metric, title=metric)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    fig.suptitle(title)
    return _save(fig, path)
