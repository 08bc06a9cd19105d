"""Benchmark the nli pipeline with the real MiniLM encoder, on the offline protocol when the source
has no SNLI train split (train on a seeded 90% of validation, select on the other 10%, report test).

Runs every stage as the flow does (same plain functions), times each, and prints one JSON line per
variant plus a Markdown table for docs/benchmarks.md. It needs object storage: the local stack is
started when MODELGATE_S3_ENDPOINT is unset.

    MODELGATE_DATA_MIRROR=/path/to/shared/data python benchmarks/nli.py              # quick, default
    python benchmarks/nli.py --variant default --set model.sequence_length=64
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

VARIANTS = {
    "quick": ("quick", []),
    "default": ("default", []),
}
METRICS = ["accuracy", "macro_f1", "ece", "f1_entailment", "f1_neutral", "f1_contradiction"]
STAGES = ["ingest", "validate", "preprocess", "train", "evaluate", "gate", "register"]


def run_variant(name: str, store, extra_overrides: list[str]) -> dict:
    from modelgate import release
    from modelgate.pipelines import nli

    profile, overrides = VARIANTS[name]
    cfg = nli.load_config(profile, None, overrides + extra_overrides)
    run_id = f"bench-{name}-{int(time.time())}"
    timings: dict[str, float] = {}

    def timed(stage, fn, *args):
        start = time.perf_counter()
        out = fn(*args)
        timings[stage] = round(time.perf_counter() - start, 1)
        print(f"  [{name}] {stage}: {timings[stage]} s", flush=True)
        return out

    snapshot = timed("ingest", nli.ingest, cfg, store).to_dict()
    print(f"  [{name}] splits: {snapshot['split_counts']}", flush=True)
    validated = timed("validate", nli.validate, cfg, store, snapshot, run_id).to_dict()
    features = timed("preprocess", nli.preprocess, cfg, store, validated).to_dict()
    trained = timed("train", nli.train, cfg, store, features).to_dict()
    evaluation = timed("evaluate", nli.evaluate, cfg, store, trained, features, run_id).to_dict()
    verdict = timed("gate", release.gate, cfg, store, evaluation)
    summary = timed(
        "register", release.register, cfg, store, trained, evaluation, verdict,
        {"raw_snapshot": snapshot, "validated_snapshot": validated}, run_id,
    )
    return {
        "variant": name,
        "profile": profile,
        "overrides": overrides + extra_overrides,
        "preset": cfg.model.preset,
        "sequence_length": cfg.model.sequence_length,
        "rows": features["rows"],
        "dropped": validated["dropped"],
        "version": summary["version"],
        "decision": verdict["decision"],
        "timings_s": timings,
        "total_s": round(sum(timings.values()), 1),
        "train_examples_per_s": round(trained["examples_per_second"], 1),
        "reused_training": trained["reused"],
        "history": trained["history"],
        "metrics": {k: {"value": v["value"], "low": v["low"], "high": v["high"]} for k, v in evaluation["metrics"].items()},
        "details": evaluation["details"],
    }


def markdown(results: list[dict]) -> str:
    lines = ["| variant | train pairs | " + " | ".join(METRICS) + " | gate | train s | total s |",
             "|" + "---|" * (len(METRICS) + 5)]
    for r in results:
        cells = [
            f"{r['metrics'][m]['value']:.4f} [{r['metrics'][m]['low']:.4f}, {r['metrics'][m]['high']:.4f}]"
            for m in METRICS
        ]
        lines.append(
            f"| {r['variant']} | {r['rows'].get('train')} | " + " | ".join(cells)
            + f" | {r['decision']} | {r['timings_s']['train']} | {r['total_s']} |"
        )
    lines += ["", "| variant | " + " | ".join(STAGES) + " | train examples/s |", "|" + "---|" * (len(STAGES) + 2)]
    for r in results:
        t = r["timings_s"]
        lines.append(f"| {r['variant']} | " + " | ".join(str(t[s]) for s in STAGES)
                     + f" | {r['train_examples_per_s']} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", default="benchmarks/out/nli.json")
    args = parser.parse_args()

    from modelgate import stack
    from modelgate.settings import load_settings
    from modelgate.storage import ObjectStore

    settings = load_settings()
    if settings.uses_local_stack:
        stack.ensure_stack(settings)
    store = ObjectStore.from_settings(settings)
    store.ensure_bucket()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"KERAS_BACKEND={os.environ.get('KERAS_BACKEND', 'tensorflow')}", flush=True)
    results = []
    for name in args.variant or ["quick", "default"]:
        result = run_variant(name, store, args.overrides)
        print(json.dumps(result), flush=True)
        results.append(result)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
