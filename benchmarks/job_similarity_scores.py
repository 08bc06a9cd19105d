"""Choose job-similarity's tier scores on validation data only: train each candidate profile and
score tuned against base encoder on ESCO's validation pairs and STS-B dev (never the test splits).

The rule, fixed before any run: a candidate passes when both gate checks hold on validation
(STS-B Pearson change >= the gate's minimum, ESCO Spearman gain >= the gate's minimum); among
those that pass, the larger ESCO Spearman gain wins; when none passes, the one closest to passing.
Prints one JSON line per candidate and a Markdown table for docs/benchmarks.md.

    MODELGATE_DATA_MIRROR=/path/to/shared/data python benchmarks/job_similarity_scores.py
    python benchmarks/job_similarity_scores.py --profile recipe --profile default --set model.preset=use-multilingual-v3
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import harness  # first: it puts the repository root on sys.path
from modelgate.pipelines import job_similarity
from modelgate.training.backend import check_process_backend

GATED = ("stsb_pearson_change", "esco_spearman_gain")
SHOWN = ("base_stsb_pearson", "stsb_pearson", "stsb_pearson_change",
         "base_esco_spearman", "esco_spearman", "esco_spearman_gain")


def gate_minimums(cfg) -> dict[str, float]:
    return {t.metric: t.min for t in cfg.gate.thresholds if t.metric in GATED}


def run_candidate(profile: str, store, overrides: list[str]) -> dict:
    pipeline = job_similarity.PIPELINE
    cfg = pipeline.load_config(profile, None, overrides)
    run_id = f"bench-scores-{profile}-{int(time.time())}"
    start = time.perf_counter()
    snapshot = pipeline.ingest(cfg, store)
    validated = pipeline.validate(cfg, store, snapshot, run_id)
    features = pipeline.preprocess(cfg, store, validated)
    check_process_backend(cfg)
    trained = pipeline.train(cfg, store, features)
    metrics = job_similarity.validation_comparison(cfg, store, trained, features)
    minimums = gate_minimums(cfg)
    margins = {name: metrics[name].value - minimums[name] for name in GATED}
    return {
        "profile": profile,
        "overrides": overrides,
        "scores": dict(cfg.data.scores),
        "epochs_run": trained.epochs_run,
        "reused_training": trained.reused,
        "seconds": round(time.perf_counter() - start, 1),
        "metrics": {k: {"value": v.value, "low": v.low, "high": v.high} for k, v in metrics.items()},
        "passes_on_validation": all(v >= 0 for v in margins.values()),
        "worst_margin": min(margins.values()),
    }


def choose(results: list[dict]) -> dict:
    passing = [r for r in results if r["passes_on_validation"]]
    if passing:
        return max(passing, key=lambda r: r["metrics"]["esco_spearman_gain"]["value"])
    return max(results, key=lambda r: r["worst_margin"])


def markdown(results: list[dict]) -> str:
    lines = ["| profile | tier scores | " + " | ".join(SHOWN) + " | passes on validation | epochs |",
             "|" + "---|" * (len(SHOWN) + 4)]
    for r in results:
        scores = " / ".join(f"{v:g}" for v in r["scores"].values())
        cells = [harness.interval(r["metrics"][name]) for name in SHOWN]
        lines.append(f"| {r['profile']} | {scores} | " + " | ".join(cells)
                     + f" | {'yes' if r['passes_on_validation'] else 'no'} | {r['epochs_run']} |")
    return "\n".join(lines + ["", f"chosen on validation: {choose(results)['profile']}"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="append", help="candidate profiles (default: recipe, default)")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", default="benchmarks/out/job_similarity_scores.json")
    args = parser.parse_args()
    store = harness.open_store()
    results = []
    for profile in args.profile or ["recipe", "default"]:
        results.append(run_candidate(profile, store, args.overrides))
        print(json.dumps(results[-1]), flush=True)
    return harness.finish(results, args.out, markdown)


if __name__ == "__main__":
    sys.exit(main())
