"""Ingest and validate: the raw data becomes an immutable snapshot, then a validated one."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact

from modelgate.config import PipelineConfig
from modelgate.data import DataSourceError
from modelgate.data.snapshot import DatasetSnapshot
from modelgate.pipelines.base import Pipeline
from modelgate.tasks.context import current_run_id, object_store
from modelgate.tasks.ui import artifact_key
from modelgate.validations.runner import ValidationFailed, ValidationReport


def _worth_retrying(task, task_run, state) -> bool:
    """Retry what may pass next time (network, storage); a source that cannot be read as data
    (DataSourceError: bad bytes, bad JSON, missing columns) fails the same way every time."""
    try:
        state.result()
    except DataSourceError:
        return False
    except Exception:
        return True
    return True


@task(name="ingest", retries=2, retry_delay_seconds=10, retry_condition_fn=_worth_retrying)
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
    run_id = current_run_id()
    try:
        report = pipeline.validate(cfg, object_store(), snapshot, run_id)
    except ValidationFailed as exc:
        _publish_validation(pipeline.name, exc.report, run_id)
        raise
    _publish_validation(pipeline.name, report, run_id)
    return report


def _publish_validation(pipeline: str, report: ValidationReport, run_id: str) -> None:
    # No presigned link to the Data Docs: it would expire in a week, and it signs index.html only,
    # so the site's other pages fail on a private bucket. `modelgate open RUN docs` copies the site.
    create_markdown_artifact(key=artifact_key(pipeline, "validation"),
                             markdown=validation_markdown(report.to_dict(), run_id),
                             description=f"{pipeline}: data validation")


def validation_markdown(data: dict, run_id: str) -> str:
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
        f"- Data Docs: `modelgate open {run_id} docs` (stored at `{data['docs_uri']}`)",
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
