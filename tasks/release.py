"""Gate and register: hold the model against its thresholds, then version it in the registry."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from modelgate.config import PipelineConfig
from modelgate.data.snapshot import DatasetSnapshot
from modelgate.evaluation.result import Evaluation
from modelgate.gate import Verdict
from modelgate.pipelines.base import Pipeline
from modelgate.pipelines.results import TrainedModel
from modelgate.registry import release
from modelgate.summary import checks_rows
from tasks.context import current_run_id, object_store
from validations.runner import ValidationReport


@task(name="gate")
def gate_model(cfg: PipelineConfig, evaluation: Evaluation) -> Verdict:
    """Absolute thresholds from the config and change thresholds against production."""
    verdict = release.gate(cfg, object_store(), evaluation)
    create_table_artifact(
        key="gate-verdict",
        table=[
            dict(zip(["kind", "metric", "rule", "observed", "95% interval", "result"], row))
            for row in checks_rows(verdict.to_dict()["checks"])
        ],
        description=f"Gate decision: {verdict.decision} - {verdict.summary()}",
    )
    print(f"gate: {verdict.decision}: {verdict.summary()}")
    return verdict


@task(name="register")
def register_model(
    pipeline: Pipeline,
    cfg: PipelineConfig,
    snapshot: DatasetSnapshot,
    validated: ValidationReport,
    trained: TrainedModel,
    evaluation: Evaluation,
    verdict: Verdict,
) -> dict:
    """Write an immutable version (manifest last); a failed gate is registered as failed."""
    store = object_store()
    candidate = release.Candidate(
        pipeline=pipeline, cfg=cfg, snapshot=snapshot, validated=validated, trained=trained,
        evaluation=evaluation, verdict=verdict,
    )
    summary = release.register(candidate, store, current_run_id())
    create_markdown_artifact(key="report", markdown=summary["report_markdown"], description="Model report")
    create_link_artifact(
        key="model-version",
        link=summary["report_link"],
        link_text=f"{summary['model']} v{summary['version']} report (HTML)",
        description=f"Manifest: {summary['manifest_uri']}",
    )
    return {k: v for k, v in summary.items() if k != "report_markdown"}
