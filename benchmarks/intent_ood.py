"""Benchmark the intent-ood pipeline on full CLINC150 with the real MiniLM encoder.

Runs every stage as the flow does (same plain functions), times each, and prints one JSON line per
variant plus a Markdown table for docs/benchmarks.md. It needs object storage: the local stack is
started when MODELGATE_S3_ENDPOINT is unset.

    python benchmarks/intent_ood.py                # quick (SNGP and softmax), default SNGP and softmax
    python benchmarks/intent_ood.py --variant quick --variant quick-softmax
"""

from __future__ import annotations

import argparse
import json
import sys

import harness  # first: it puts the repository root on sys.path
from modelgate.pipelines import intent_ood

VARIANTS = {
    "quick": ("quick", []),
    "quick-softmax": ("quick", ["model.head=softmax"]),
    "sngp": ("default", []),
    "softmax": ("default", ["model.head=softmax"]),
}
METRICS = ["accuracy", "ece", "ood_auprc", "ood_auroc", "ood_average_precision"]


def run_variant(name: str, store, extra_overrides: list[str]) -> dict:
    profile, overrides = VARIANTS[name]
    cfg = intent_ood.PIPELINE.load_config(profile, None, overrides + extra_overrides)
    run = harness.run_stages(intent_ood.PIPELINE, cfg, store, name)
    details = run.evaluation.details
    return {
        "variant": name,
        "profile": profile,
        "overrides": overrides + extra_overrides,
        **run.common(),
        "ood_threshold": details["ood_threshold"],
        "temperature": details.get("temperature"),
        "mean_field_factor": details.get("mean_field_factor"),
    }


def markdown(results: list[dict]) -> str:
    lines = ["| variant | " + " | ".join(METRICS) + " | gate | train s | total s |", "|" + "---|" * (len(METRICS) + 4)]
    for r in results:
        cells = [harness.interval(r["metrics"][m]) for m in METRICS]
        lines.append(f"| {r['variant']} | " + " | ".join(cells)
                     + f" | {r['decision']} | {r['timings_s']['train']} | {r['total_s']} |")
    return "\n".join(lines + [""] + harness.stage_table([(r["variant"], r) for r in results]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", default="benchmarks/out/intent_ood.json")
    args = parser.parse_args()
    store = harness.open_store()
    results = []
    for name in args.variant or ["quick", "quick-softmax", "sngp", "softmax"]:
        results.append(run_variant(name, store, args.overrides))
        print(json.dumps(results[-1]), flush=True)
    return harness.finish(results, args.out, markdown)


if __name__ == "__main__":
    sys.exit(main())
