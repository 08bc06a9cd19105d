"""Benchmark the job-similarity pipeline on ESCO + STS-B with the real MiniLM encoder (or USE
multilingual v3 with ``--set model.preset=use-multilingual-v3``).

Runs every stage as the flow does (same plain functions), times each, and prints one JSON line per
variant plus Markdown tables for docs/benchmarks.md: base vs tuned encoder on STS-B test and on
held-out ESCO pairs, and wall time per stage. It needs object storage: the local stack is started
when MODELGATE_S3_ENDPOINT is unset.

    python benchmarks/job_similarity.py                       # the quick profile
    python benchmarks/job_similarity.py --variant default --set train.epochs=4
"""

from __future__ import annotations

import argparse
import json
import sys

import harness  # first: it puts the repository root on sys.path
from modelgate.pipelines import job_similarity

SHOWN = ["stsb_pearson", "stsb_spearman", "esco_pearson", "esco_spearman"]
CHANGES = ["stsb_pearson_change", "stsb_spearman_change", "esco_pearson_gain", "esco_spearman_gain"]


def run_variant(profile: str, store, overrides: list[str]) -> dict:
    cfg = job_similarity.PIPELINE.load_config(profile, None, overrides)
    run = harness.run_stages(job_similarity.PIPELINE, cfg, store, profile)
    return {
        "profile": profile,
        "overrides": overrides,
        **run.common(),
        "pairs": run.snapshot.split_counts,
        "epochs_run": run.trained.epochs_run,
        "val_loss": run.trained.history.get("val_loss"),
        "details": {k: v for k, v in run.evaluation.details.items() if not isinstance(v, list)},
    }


def _label(result: dict) -> str:
    return result["profile"] + (" " + " ".join(result["overrides"]) if result["overrides"] else "")


def markdown(results: list[dict]) -> str:
    lines = ["| run | encoder | " + " | ".join(SHOWN) + " |", "|" + "---|" * (len(SHOWN) + 2)]
    for r in results:
        m = r["metrics"]
        for who, prefix in (("base", "base_"), ("tuned", "")):
            lines.append(f"| {_label(r)} | {who} | " + " | ".join(harness.interval(m[prefix + s]) for s in SHOWN) + " |")
        lines.append(f"| {_label(r)} | tuned - base | " + " | ".join(harness.interval(m[c]) for c in CHANGES) + " |")
    extra = {"epochs": lambda r: r["epochs_run"], "gate": lambda r: r["decision"]}
    return "\n".join(lines + [""] + harness.stage_table([(_label(r), r) for r in results], extra))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", choices=["quick", "default", "recipe"])
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", default="benchmarks/out/job_similarity.json")
    args = parser.parse_args()
    store = harness.open_store()
    results = []
    for profile in args.variant or ["quick"]:
        results.append(run_variant(profile, store, args.overrides))
        print(json.dumps(results[-1]), flush=True)
    return harness.finish(results, args.out, markdown)


if __name__ == "__main__":
    sys.exit(main())
