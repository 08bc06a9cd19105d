"""Benchmark the job-similarity pipeline on ESCO + STS-B with the real MiniLM encoder.

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
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

STAGES = ["ingest", "validate", "preprocess", "train", "evaluate", "gate", "register"]
SHOWN = ["stsb_pearson", "stsb_spearman", "esco_pearson", "esco_spearman"]


def run_variant(profile: str, store, overrides: list[str]) -> dict:
    from modelgate import release
    from modelgate.pipelines import job_similarity as recipe

    cfg = recipe.load_config(profile, None, overrides)
    run_id = f"bench-{profile}-{int(time.time())}"
    timings: dict[str, float] = {}

    def timed(stage, fn, *args):
        start = time.perf_counter()
        out = fn(*args)
        timings[stage] = round(time.perf_counter() - start, 1)
        print(f"  [{profile}] {stage}: {timings[stage]} s", flush=True)
        return out

    snapshot = timed("ingest", recipe.ingest, cfg, store).to_dict()
    validated = timed("validate", recipe.validate, cfg, store, snapshot, run_id).to_dict()
    features = timed("preprocess", recipe.preprocess, cfg, store, validated).to_dict()
    trained = timed("train", recipe.train, cfg, store, features).to_dict()
    evaluation = timed("evaluate", recipe.evaluate, cfg, store, trained, features, run_id).to_dict()
    verdict = timed("gate", release.gate, cfg, store, evaluation)
    summary = timed(
        "register", release.register, cfg, store, trained, evaluation, verdict,
        {"raw_snapshot": snapshot, "validated_snapshot": validated}, run_id,
    )
    return {
        "profile": profile,
        "overrides": overrides,
        "version": summary["version"],
        "decision": verdict["decision"],
        "pairs": snapshot["split_counts"],
        "timings_s": timings,
        "total_s": round(sum(timings.values()), 1),
        "epochs_run": trained["epochs_run"],
        "val_loss": trained["history"].get("val_loss"),
        "train_pairs_per_s": round(trained["examples_per_second"], 1),
        "reused_training": trained["reused"],
        "metrics": {k: {"value": v["value"], "low": v["low"], "high": v["high"]} for k, v in evaluation["metrics"].items()},
        "details": {k: v for k, v in evaluation["details"].items() if not isinstance(v, list)},
    }


def markdown(results: list[dict]) -> str:
    def cell(metric: dict) -> str:
        return f"{metric['value']:.4f} [{metric['low']:.4f}, {metric['high']:.4f}]"

    lines = ["| run | encoder | " + " | ".join(SHOWN) + " |", "|" + "---|" * (len(SHOWN) + 2)]
    for r in results:
        label = r["profile"] + (" " + " ".join(r["overrides"]) if r["overrides"] else "")
        for who, prefix in (("base", "base_"), ("tuned", "")):
            lines.append(f"| {label} | {who} | " + " | ".join(cell(r["metrics"][prefix + m]) for m in SHOWN) + " |")
        lines.append(
            f"| {label} | tuned - base | {cell(r['metrics']['stsb_pearson_change'])} | "
            f"{cell(r['metrics']['stsb_spearman_change'])} | {cell(r['metrics']['esco_pearson_gain'])} | "
            f"{cell(r['metrics']['esco_spearman_gain'])} |"
        )
    lines += ["", "| run | " + " | ".join(STAGES) + " | total | epochs | gate |", "|" + "---|" * (len(STAGES) + 4)]
    for r in results:
        label = r["profile"] + (" " + " ".join(r["overrides"]) if r["overrides"] else "")
        t = r["timings_s"]
        lines.append(f"| {label} | " + " | ".join(str(t[s]) for s in STAGES)
                     + f" | {r['total_s']} | {r['epochs_run']} | {r['decision']} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", choices=["quick", "default"])
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", default="benchmarks/out/job_similarity.json")
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
    for profile in args.variant or ["quick"]:
        result = run_variant(profile, store, args.overrides)
        print(json.dumps(result), flush=True)
        results.append(result)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
