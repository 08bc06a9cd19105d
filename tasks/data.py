"""Ingest and validate: the raw data becomes an immutable snapshot, then a validated one."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact

from modelgate.config import PipelineConfig
from modelgate.data.snapshot import DatasetSnapshot
from modelgate.pipelines.base import Pipeline
from tasks.context import current_run_id, object_store
from validations.runner import ValidationFailed, ValidationReport


@task(name="ingest", retries=2, retry_delay_seconds=10)
def ingest_dataset(pipeline: Pipeline, cfg: PipelineConfig) -> DatasetSnapshot:
    """Read the configured source and snapshot it to object storage by content hash."""
    snapshot = pipeline.ingest(cfg, object_store())
    counts = ", ".join(f"{split} {n}" for split, n in snapshot.split_counts.items())
    print(f"snapshot {snapshot.uri} ({snapshot.rows} rows: {counts})")
    return snapshot


@task(name="validate")
def validate_dataset(pipeline: Pipeline, cfg: PipelineConfig, snapshot: DatasetSnapshot) -> ValidationReport:
    """Filter invalid labels into quarantine, then run the Great Expectations suite.

    A failing suite raises ValidationFailed, which stops the flow before any training.
    """
    try:
        report = pipeline.validate(cfg, object_store(), snapshot, current_run_id())
    except ValidationFailed as exc:
        _publish_validation(exc.report)
        raise
    _publish_validation(report)
    return report


def _publish_validation(report: ValidationReport) -> None:
    data = report.to_dict()
    if data.get("docs_url"):
        create_link_artifact(
            key="data-docs",
            link=data["docs_url"],
            link_text="Great Expectations Data Docs",
            description=f"Validation results ({data.get('docs_uri')})",
        )
    create_markdown_artifact(key="validation", markdown=validation_markdown(data), description="Data validation")


def validation_markdown(data: dict) -> str:
    """What a person wants from a validation run: verdict, row accounting, each expectation."""
    dropped = ", ".join(f"{reason}: {n}" for reason, n in sorted(data["dropped"].items())) or "none"
    lines = [
        f"## Validation of `{data['dataset']}`: {'passed' if data['success'] else 'FAILED'}",
        "",
        f"- rows in: {data['rows_in']}, rows kept: {data['rows_out']}",
        f"- dropped by label filtering: {dropped} "
        f"({data['dropped_fraction']:.2%}; allowed {data['max_filtered_fraction']:.2%})",
        f"- rows flagged by the quality suite: {data['quality_flagged_rows']}",
        f"- quarantine: `{data['quarantine_uri']}`",
        f"- Data Docs: `{data['docs_uri']}`",
        "",
        "| phase | expectation | column | result | unexpected |",
        "|---|---|---|---|---|",
    ]
    for outcome in data["expectations"]:
        lines.append(
            f"| {outcome.get('phase', '')} | {outcome.get('expectation_type', '')} | "
            f"{outcome.get('column') or ''} | {'pass' if outcome.get('success') else 'FAIL'} | "
            f"{outcome.get('unexpected_count') or 0} |"
        )
    return "\n".join(lines)
