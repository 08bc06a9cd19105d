"""Benchmark the toxicity pipeline on real ETHOS with the offline MiniLM encoder + LoRA rank 4.

Runs every stage as the flow does (the same plain functions), times each, and prints one JSON line
per training size plus a Markdown table for docs/benchmarks.md. It needs object storage: the local
stack is started when MODELGATE_S3_ENDPOINT is unset.

    python benchmarks/toxicity.py                      # 200 and 800 training comments
    python benchmarks/toxicity.py --examples 800 --set train.epochs=10
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


def run_size(examples: int, store, profile: str, overrides: list[str]) -> dict:
    from modelgate import release
    from modelgate.pipelines import toxicity

    cfg = toxicity.load_config(profile, None, [f"train.examples={examples}", *overrides])
    run_id = f"bench-toxicity-{examples}-{int(time.time())}"
    timings: dict[str, float] = {}

    def timed(stage, fn, *args):
        start = time.perf_counter()
        out = fn(*args)
        timings[stage] = round(time.perf_counter() - start, 1)
        print(f"  [{examples}] {stage}: {timings[stage]} s", flush=True)
        return out

    snapshot = timed("ingest", toxicity.ingest, cfg, store).to_dict()
    validated = timed("validate", toxicity.validate, cfg, store, snapshot, run_id).to_dict()
    features = timed("preprocess", toxicity.preprocess, cfg, store, validated).to_dict()
    trained = timed("train", toxicity.train, cfg, store, features).to_dict()
    evaluation = timed("evaluate", toxicity.evaluate, cfg, store, trained, features, run_id).to_dict()
    verdict = timed("gate", release.gate, cfg, store, evaluation)
    summary = timed(
        "register", release.register, cfg, store, trained, evaluation, verdict,
        {"raw_snapshot": snapshot, "validated_snapshot": validated}, run_id,
    )
    manifest = store.get_json(store.key_of(summary["manifest_uri"]))
    return {
        "examples": examples,
        "profile": profile,
        "overrides": overrides,
        "preset": cfg.model.preset,
        "epochs": cfg.train.epochs,
        "sequence_length": cfg.model.sequence_length,
        "version": summary["version"],
        "decision": verdict["decision"],
        "timings_s": timings,
        "total_s": round(sum(timings.values()), 1),
        "train_examples_per_s": round(trained["examples_per_second"], 1),
        "parameters": trained["parameters"],
        "trainable_parameters": trained["trainable_parameters"],
        "registered_bytes": sum(int(f.get("size", 0)) for f in manifest["files"].values()),
        "registered_files": sorted(manifest["files"]),
        "reused_training": trained["reused"],
        "metrics": {k: {"value": v["value"], "low": v["low"], "high": v["high"]}
                    for k, v in evaluation["metrics"].items()},
        "confusion": {k: evaluation["details"][k] for k in
                      ("true_negatives", "false_positives", "false_negatives", "true_positives")},
    }


def markdown(results: list[dict]) -> str:
    metrics = ["f1", "roc_auc", "accuracy"]
    lines = ["| training comments | epochs | " + " | ".join(metrics)
             + " | gate | trainable params | train s | total s |",
             "|" + "---|" * (len(metrics) + 6)]
    for r in results:
        cells = [f"{r['metrics'][m]['value']:.3f} [{r['metrics'][m]['low']:.3f}, {r['metrics'][m]['high']:.3f}]"
                 for m in metrics]
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
    for examples in args.examples or [200, 800]:
        result = run_size(examples, store, args.profile, args.overrides)
        print(json.dumps(result), flush=True)
        results.append(result)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
