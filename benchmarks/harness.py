"""What every pipeline benchmark shares: object storage (the local stack started when
MODELGATE_S3_ENDPOINT is unset), the seven stages run and timed exactly as the flow chains them,
metric cells with their intervals, the per-stage time table, and the JSON results file."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

STAGES = ("ingest", "validate", "preprocess", "train", "evaluate", "gate", "register")


def open_store():
    """The configured bucket (starting the local stack if needed); prints the machine line."""
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
    return store


@dataclass
class StageRun:
    """The outputs of one pipeline run, stage by stage, with each stage's wall time in seconds."""

    snapshot: dict
    validated: dict
    features: dict
    trained: dict
    evaluation: dict
    verdict: dict
    summary: dict
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def total_s(self) -> float:
        return round(sum(self.timings_s.values()), 1)

    def metrics(self) -> dict[str, dict[str, float]]:
        return {k: {"value": v["value"], "low": v["low"], "high": v["high"]}
                for k, v in self.evaluation["metrics"].items()}

    def common(self) -> dict[str, Any]:
        """The fields every benchmark reports."""
        return {
            "version": self.summary["version"],
            "decision": self.verdict["decision"],
            "timings_s": self.timings_s,
            "total_s": self.total_s,
            "train_examples_per_s": round(self.trained["examples_per_second"], 1),
            "reused_training": self.trained["reused"],
            "metrics": self.metrics(),
        }


def run_stages(recipe, cfg, store, label: str) -> StageRun:
    """ingest -> validate -> preprocess -> train -> evaluate -> gate -> register, as the flow runs
    them (the same plain functions), printing each stage's time as it ends."""
    from modelgate import release

    run_id = f"bench-{label}-{int(time.time())}".replace(" ", "-")
    timings: dict[str, float] = {}

    def timed(stage: str, fn: Callable, *args):
        start = time.perf_counter()
        out = fn(*args)
        timings[stage] = round(time.perf_counter() - start, 1)
        print(f"  [{label}] {stage}: {timings[stage]} s", flush=True)
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
    return StageRun(snapshot, validated, features, trained, evaluation, verdict, summary, timings)


def interval(metric: dict, digits: int = 4) -> str:
    """'value [low, high]' for a metric with its bootstrap interval."""
    return f"{metric['value']:.{digits}f} [{metric['low']:.{digits}f}, {metric['high']:.{digits}f}]"


def stage_table(rows: list[tuple[str, dict]], extra: dict[str, Callable[[dict], Any]] | None = None) -> list[str]:
    """Markdown rows of wall time per stage: ``rows`` are (label, result) pairs; ``extra`` adds
    columns computed from a result."""
    extra = extra or {}
    head = ["run", *STAGES, "total", *extra]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, result in rows:
        t = result["timings_s"]
        cells = [label, *(str(t[s]) for s in STAGES), str(result["total_s"]), *(str(f(result)) for f in extra.values())]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def finish(results: list[dict], out: str, markdown: Callable[[list[dict]], str]) -> int:
    """Write the results as JSON to ``out`` and print the Markdown tables."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(results, indent=2))
    print(markdown(results))
    return 0
