"""Benchmark the toxicity pipeline on real ETHOS: the default profile's encoder (all-mpnet-base-v2)
+ LoRA rank 4, or MiniLM with ``--set model.preset=all-minilm-l6-v2 --set evaluate.threshold=0.5``
(the default profile before 2026-11-30).

Runs every stage as the flow does (the same plain functions), times each, and prints one JSON line
per training size plus a Markdown table for docs/benchmarks.md. It needs object storage: the local
stack is started when MODELGATE_S3_ENDPOINT is unset.

    python benchmarks/toxicity.py                      # 200 and 800 training comments
    python benchmarks/toxicity.py --examples 800 --set train.epochs=10
"""

from __future__ import annotations

import argparse
import json
import sys

import harness  # first: it puts the repository root on sys.path
from modelgate.pipelines import toxicity

METRICS = ["f1", "roc_auc", "accuracy"]


def run_size(examples: int, store, profile: str, overrides: list[str]) -> dict:
    cfg = toxicity.PIPELINE.load_config(profile, None, [f"train.examples={examples}", *overrides])
    run = harness.run_stages(toxicity.PIPELINE, cfg, store, f"toxicity-{examples}")
    manifest = store.get_json(store.key_of(run.summary["manifest_uri"]))
    return {
        "examples": examples,
        "profile": profile,
        "overrides": overrides,
        "preset": cfg.model.preset,
        "epochs": cfg.train.epochs,
        "sequence_length": cfg.model.sequence_length,
        **run.common(),
        "parameters": run.trained.parameters,
        "trainable_parameters": run.trained.trainable_parameters,
        "registered_bytes": sum(int(f.get("size", 0)) for f in manifest["files"].values()),
        "registered_files": sorted(manifest["files"]),
        "confusion": {k: run.evaluation.details[k] for k in
                      ("true_negatives", "false_positives", "false_negatives", "true_positives")},
    }


def markdown(results: list[dict]) -> str:
    lines = ["| training comments | epochs | " + " | ".join(METRICS)
             + " | gate | trainable params | train s | total s |",
             "|" + "---|" * (len(METRICS) + 6)]
    for r in results:
        cells = [harness.interval(r["metrics"][m], digits=3) for m in METRICS]
        lines.append(f"| {r['examples']} | {r['epochs']} | " + " | ".join(cells)
                     + f" | {r['decision']} | {r['trainable_parameters']:,} | {r['timings_s']['train']}"
                     f" | {r['total_s']} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, action="append", help="training comments (repeatable)")
    parser.add_argument("--profile", default="default")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", default="benchmarks/out/toxicity.json")
    args = parser.parse_args()
    store = harness.open_store()
    results = []
    for examples in args.examples or [200, 800]:
        results.append(run_size(examples, store, args.profile, args.overrides))
        print(json.dumps(results[-1]), flush=True)
    return harness.finish(results, args.out, markdown)


if __name__ == "__main__":
    sys.exit(main())
