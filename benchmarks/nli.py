"""Benchmark the nli pipeline with the real encoders (MPNet by default, MiniLM in `minilm`), on
the offline protocol when the source has no SNLI train split (train on a seeded 90% of validation,
select on the other 10%, report test).

Runs every stage as the flow does (same plain functions), times each, and prints one JSON line per
variant plus a Markdown table for docs/benchmarks.md. It needs object storage: the local stack is
started when MODELGATE_S3_ENDPOINT is unset.

    MODELGATE_DATA_MIRROR=/path/to/shared/data python benchmarks/nli.py              # quick, default
    python benchmarks/nli.py --variant default --set model.sequence_length=64
"""

from __future__ import annotations

import argparse
import json
import sys

import harness  # first: it puts the repository root on sys.path
from modelgate.pipelines import nli

VARIANTS = {
    "quick": ("quick", []),
    "default": ("default", []),
    "minilm": ("minilm", []),
}
METRICS = ["accuracy", "macro_f1", "ece", "f1_entailment", "f1_neutral", "f1_contradiction"]


def run_variant(name: str, store, extra_overrides: list[str]) -> dict:
    profile, overrides = VARIANTS[name]
    cfg = nli.PIPELINE.load_config(profile, None, overrides + extra_overrides)
    run = harness.run_stages(nli.PIPELINE, cfg, store, name)
    return {
        "variant": name,
        "profile": profile,
        "overrides": overrides + extra_overrides,
        "preset": cfg.model.preset,
        "sequence_length": cfg.model.sequence_length,
        "rows": run.features.rows,
        "dropped": run.validated.dropped,
        **run.common(),
        "history": run.trained.history,
        "details": run.evaluation.details,
    }


def markdown(results: list[dict]) -> str:
    lines = ["| variant | train pairs | " + " | ".join(METRICS) + " | gate | train s | total s |",
             "|" + "---|" * (len(METRICS) + 5)]
    for r in results:
        cells = [harness.interval(r["metrics"][m]) for m in METRICS]
        lines.append(f"| {r['variant']} | {r['rows'].get('train')} | " + " | ".join(cells)
                     + f" | {r['decision']} | {r['timings_s']['train']} | {r['total_s']} |")
    extra = {"train examples/s": lambda r: r["train_examples_per_s"]}
    return "\n".join(lines + [""] + harness.stage_table([(r["variant"], r) for r in results], extra))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", default="benchmarks/out/nli.json")
    args = parser.parse_args()
    store = harness.open_store()
    results = []
    for name in args.variant or ["quick", "default"]:
        results.append(run_variant(name, store, args.overrides))
        print(json.dumps(results[-1]), flush=True)
    return harness.finish(results, args.out, markdown)


if __name__ == "__main__":
    sys.exit(main())
