"""Compare toxicity configurations on training comments held out from training, never on test.

The split is ``modelgate tune``'s (``modelgate.tuning.objective.tuning_report``): the last 20% of
the training comments, in the recipe's shuffled order, are held out and scored; the test comments
are left out altogether. For each variant it prints F1 (hateful), ROC-AUC and accuracy on the
held-out comments at the configured threshold, the threshold that would maximise F1 there, and
F1 at each cut of a fixed grid (0.05 to 0.5): the training does not depend on the threshold, so a
variant that only changes ``evaluate.threshold`` reuses the trained model.

    MODELGATE_DATA_MIRROR=/path/to/shared/data python benchmarks/toxicity_holdout.py \
        --variant "" --variant "train.epochs=6" --variant "model.preset=all-minilm-l6-v2"
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

import harness  # first: it puts the repository root on sys.path
from modelgate.evaluation import metrics as m
from modelgate.pipelines import toxicity
from modelgate.training.backend import check_process_backend
from modelgate.tuning import objective

THRESHOLD_GRID = np.round(np.arange(0.05, 0.501, 0.05), 2)


def best_f1_threshold(y_true: np.ndarray, hateful: np.ndarray) -> tuple[float, float]:
    """(threshold, F1) maximising F1 over the observed probabilities as cut points."""
    best = (0.5, -1.0)
    for cut in np.unique(hateful):
        f1 = m.binary_f1(y_true, (hateful >= cut).astype(np.int64))
        if f1 > best[1]:
            best = (float(cut), float(f1))
    return best


def f1_by_threshold(y_true: np.ndarray, hateful: np.ndarray) -> dict[str, float]:
    """F1 at each cut of a coarse grid (0.05 to 0.5): a threshold a profile can hold, less tied to
    the single best cut of a small held-out set."""
    return {f"{cut:.2f}": float(m.binary_f1(y_true, (hateful >= cut).astype(np.int64))) for cut in THRESHOLD_GRID}


def run_variant(overrides: list[str], store) -> dict:
    pipeline = toxicity.PIPELINE
    cfg = pipeline.load_config("default", None, overrides)
    run_id = f"bench-holdout-{int(time.time())}"
    start = time.perf_counter()
    snapshot = pipeline.ingest(cfg, store)
    held_out = objective.tuning_report(store, pipeline, pipeline.validate(cfg, store, snapshot, run_id))
    features = pipeline.preprocess(cfg, store, held_out)
    check_process_backend(cfg)
    trained = pipeline.train(cfg, store, features)
    train_s = round(time.perf_counter() - start, 1)
    scores = objective.validation_score(pipeline, cfg, store, features, trained, run_id)
    y_true, hateful = toxicity.test_probabilities(store, trained, features)
    cut, f1_at_cut = best_f1_threshold(y_true, hateful)
    return {
        "overrides": overrides, "train_rows": features.rows["train"], "held_out_rows": int(len(y_true)),
        "held_out": scores, "best_f1_threshold": cut, "f1_at_best_threshold": f1_at_cut,
        "f1_by_threshold": f1_by_threshold(y_true, hateful),
        "train_loss": trained.history.get("loss"), "train_s": train_s,
        "seconds": round(time.perf_counter() - start, 1),
    }


def markdown(results: list[dict]) -> str:
    lines = ["| overrides | train / held out | F1 | ROC-AUC | accuracy | F1-best threshold (F1) | s |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        s = r["held_out"]
        lines.append(f"| {' '.join(r['overrides']) or '(default)'} | {r['train_rows']} / {r['held_out_rows']} | "
                     f"{s['f1']:.4f} | {s['roc_auc']:.4f} | {s['accuracy']:.4f} | "
                     f"{r['best_f1_threshold']:.3f} ({r['f1_at_best_threshold']:.4f}) | {r['seconds']} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", default=None,
                        help="space-separated KEY=VALUE overrides of one variant ('' = the default profile)")
    parser.add_argument("--out", default="benchmarks/out/toxicity_holdout.json")
    args = parser.parse_args()
    store = harness.open_store()
    results = []
    for variant in args.variant or [""]:
        results.append(run_variant(variant.split(), store))
        print(json.dumps(results[-1]), flush=True)
    return harness.finish(results, args.out, markdown)


if __name__ == "__main__":
    sys.exit(main())
