"""Gate and register: hold the model against its thresholds, then version it in the registry."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from modelgate.config import PipelineConfig
from modelgate import events
from modelgate.data.snapshot import DatasetSnapshot
from modelgate.evaluation.report import embed_images
from modelgate.evaluation.result import Evaluation
from modelgate.gate import Verdict
from modelgate.pipelines.base import Pipeline
from modelgate.pipelines.results import TrainedModel
from modelgate.registry import release
from modelgate.summary import checks_rows, unchanged_line
from modelgate.tasks.context import current_run_id, object_store
from modelgate.tasks.ui import artifact_key, open_lines
from modelgate.validations.runner import ValidationReport


@task(name="gate")
def gate_model(cfg: PipelineConfig, evaluation: Evaluation) -> Verdict:
    """Absolute thresholds from the config and change thresholds against production."""
    verdict = release.gate(cfg, object_store(), evaluation)
    create_table_artifact(
        key=artifact_key(cfg.pipeline, "gate-verdict"),
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
    """Write an immutable version (manifest last); a failed gate is registered as failed. When the
    latest version already holds this model (an unchanged re-run), nothing is written: the summary
    names that version with status "unchanged" and the verdict decided now."""
    store = object_store()
    candidate = release.Candidate(
        pipeline=pipeline, cfg=cfg, snapshot=snapshot, validated=validated, trained=trained,
        evaluation=evaluation, verdict=verdict,
    )
    summary = release.register(candidate, store, current_run_id())
    ref = f"{summary['model']}:{summary['version']}"
    unchanged = summary["status"] == release.UNCHANGED
    if unchanged:
        print(unchanged_line(summary))
    # The report's plots are embedded (data URIs), so the UI shows them without any link.
    report_dir = store.key_of(summary["report_uri"]).rsplit("/", 1)[0]
    report = embed_images(summary["report_markdown"], lambda path: store.get_bytes(f"{report_dir}/{path}"))
    create_markdown_artifact(key=artifact_key(cfg.pipeline, "report"), markdown=report,
                             description=f"Model report of {ref}")
    create_markdown_artifact(
        key=artifact_key(cfg.pipeline, "model-version"),
        markdown="\n".join([f"## {ref} ({summary['status']})", "",
                            "Fresh links on demand (a signed URL, or a local copy of the Data Docs):", "",
                            *open_lines(ref, "report", "docs", "report/model_card.md", "metrics.json"),
                            f"- manifest: `{summary['manifest_uri']}`", ""]),
        description=f"{ref}: where its files are",
    )
    # After registration, so that both events name the version (an automation's notification can).
    # An unchanged re-run registered nothing, so it announces nothing an automation could act on twice.
    if not unchanged:
        events.emit_gate(summary["model"], summary["version"], summary["verdict"], summary["metrics"])
        events.emit_registered(summary)
    return {k: v for k, v in summary.items() if k != "report_markdown"}
