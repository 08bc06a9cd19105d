"""What every pipeline benchmark shares: object storage (the local stack started when
MODELGATE_S3_ENDPOINT is unset), the seven stages run and timed exactly as the flow chains them
(``flows.recipe.run_recipe``: a ``Pipeline``'s stages and typed results, shared gate and register),
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

# After the path line above: the benchmarks run as scripts from benchmarks/, not as a package.
from modelgate import stack  # noqa: E402
from modelgate.config import PipelineConfig  # noqa: E402
from modelgate.data.snapshot import DatasetSnapshot  # noqa: E402
from modelgate.evaluation.result import Evaluation  # noqa: E402
from modelgate.gate import Verdict  # noqa: E402
from modelgate.pipelines.base import Pipeline  # noqa: E402
from modelgate.pipelines.results import FeatureSet, TrainedModel  # noqa: E402
from modelgate.registry import release  # noqa: E402
from modelgate.settings import load_settings  # noqa: E402
from modelgate.storage import ObjectStore  # noqa: E402
from modelgate.training.backend import check_process_backend  # noqa: E402
from modelgate.validations.runner import ValidationReport  # noqa: E402

STAGES = ("ingest", "validate", "preprocess", "train", "evaluate", "gate", "register")


def open_store() -> ObjectStore:
    """The configured bucket (starting the local stack if needed); prints the machine line."""
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
    """The typed outputs of one pipeline run, stage by stage, with each stage's wall time in seconds."""

    snapshot: DatasetSnapshot
    validated: ValidationReport
    features: FeatureSet
    trained: TrainedModel
    evaluation: Evaluation
    verdict: Verdict
    summary: dict  # what release.register returns
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def total_s(self) -> float:
        return round(sum(self.timings_s.values()), 1)

    def metrics(self) -> dict[str, dict[str, float]]:
        return {k: {"value": v["value"], "low": v["low"], "high": v["high"]}
                for k, v in self.evaluation.metrics.items()}

    def common(self) -> dict[str, Any]:
        """The fields every benchmark reports."""
        return {
            "version": self.summary["version"],
            "decision": self.verdict.decision,
            "timings_s": self.timings_s,
            "total_s": self.total_s,
            "train_examples_per_s": round(self.trained.examples_per_second, 1),
            "reused_training": self.trained.reused,
            "metrics": self.metrics(),
        }

    def to_dict(self) -> dict[str, Any]:
        """Every stage's result as JSON (the typed results' own ``to_dict``), the summary and timings."""
        return {
            "snapshot": self.snapshot.to_dict(),
            "validated": self.validated.to_dict(),
            "features": self.features.to_dict(),
            "trained": self.trained.to_dict(),
            "evaluation": self.evaluation.to_dict(),
            "verdict": self.verdict.to_dict(),
            "summary": {k: v for k, v in self.summary.items() if k != "report_markdown"},
            "timings_s": self.timings_s,
            "total_s": self.total_s,
        }


def run_stages(pipeline: Pipeline, cfg: PipelineConfig, store: ObjectStore, label: str) -> StageRun:
    """ingest -> validate -> preprocess -> train -> evaluate -> gate -> register, chained as
    ``flows.recipe.run_recipe`` chains them (the same stage functions and typed results, without
    Prefect), printing each stage's time as it ends."""
    run_id = f"bench-{label}-{int(time.time())}".replace(" ", "-")
    timings: dict[str, float] = {}

    def timed(stage: str, fn: Callable, *args):
        start = time.perf_counter()
        out = fn(*args)
        timings[stage] = round(time.perf_counter() - start, 1)
        print(f"  [{label}] {stage}: {timings[stage]} s", flush=True)
        return out

    snapshot = timed("ingest", pipeline.ingest, cfg, store)
    validated = timed("validate", pipeline.validate, cfg, store, snapshot, run_id)
    features = timed("preprocess", pipeline.preprocess, cfg, store, validated)
    check_process_backend(cfg)  # stages run in this process: it must run train.backend
    trained = timed("train", pipeline.train, cfg, store, features)
    evaluation = timed("evaluate", pipeline.evaluate, cfg, store, trained, features, run_id)
    verdict = timed("gate", release.gate, cfg, store, evaluation)
    candidate = release.Candidate(
        pipeline=pipeline, cfg=cfg, snapshot=snapshot, validated=validated, trained=trained,
        evaluation=evaluation, verdict=verdict,
    )
    summary = timed("register", release.register, candidate, store, run_id)
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
