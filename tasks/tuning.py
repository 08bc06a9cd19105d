"""Tuning tasks: one trial (train with the trial's values, score on validation), and the summary
of a study a person reads (a table artifact, a plot, the best config). The work is in
``modelgate.tuning``."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from modelgate.config import PipelineConfig
from modelgate.pipelines.base import Pipeline
from modelgate.pipelines.results import FeatureSet
from modelgate.task_runners import worker_name
from modelgate.tuning import report
from modelgate.tuning.objective import tuning_report
from modelgate.tuning.study import BEST_FILE, best_config_yaml, best_trial, study_prefix
from modelgate.tuning.trial import run_trial
from modelgate.tasks.context import object_store
from modelgate.tasks.ui import artifact_key, png_data_uri
from modelgate.validations.runner import ValidationReport


@task(name="tuning-data")
def tuning_data(pipeline: Pipeline, validated: ValidationReport) -> ValidationReport:
    """The validated data trials train and score on (toxicity: the training rows, a tail held out)."""
    return tuning_report(object_store(), pipeline, validated)


# A trial whose Dask worker dies is rescheduled by Dask; retries cover a trial that raises. Either
# way its training resumes from the S3 checkpoints the first attempt wrote.
@task(name="tuning-trial", tags=["gpu"], retries=1, task_run_name="trial-{number}")
def tuning_trial(
    pipeline: Pipeline, base: PipelineConfig, features: FeatureSet, params: dict[str, Any], number: int,
    study: str, metric: str,
) -> dict[str, Any]:
    """Train with this trial's values and score it on validation (never on test)."""
    record = run_trial(pipeline, base, features, params, number, study, metric, object_store(), worker_name())
    print(f"trial {number} {params}: validation {metric} {record['value']:.4f} on {record['worker']}")
    return record


@task(name="summarise-study")
def summarise_study(
    base: PipelineConfig, records: list[dict[str, Any]], study: str, metric: str, direction: str,
) -> dict[str, Any]:
    """The trials table, the trials plot (PNG in S3, shown in a markdown artifact) and the best
    config as YAML in S3; the flow's result."""
    store = object_store()
    best = best_trial(records, direction)
    prefix = study_prefix(base.pipeline, study)
    create_table_artifact(key=artifact_key(base.pipeline, "tuning-trials"), table=report.trials_table(records, metric, best["number"]),
                          description=f"{base.pipeline}: every trial's values and validation {metric}")
    plot_uri = report.upload_trials_plot(store, records, metric, direction, prefix,
                                         f"{base.pipeline}: validation {metric} per trial")
    best_yaml = best_config_yaml(base, best, study, metric)
    store.put_bytes(f"{prefix}/{BEST_FILE}", best_yaml.encode(), content_type="application/yaml")
    create_markdown_artifact(key=artifact_key(base.pipeline, "tuning-plot"), description="validation score per trial", markdown=(
        f"## {base.pipeline}: study `{study}`\n\n![trials]({png_data_uri(store.get_bytes(store.key_of(plot_uri)))})\n\n"
        f"Plot: `{plot_uri}`. Best: trial {best['number']}, validation {metric} {best['value']:.4f}, "
        f"config `{store.uri(f'{prefix}/{BEST_FILE}')}`\n"))
    return {"study": study, "metric": metric, "direction": direction, "best": best, "trials": records,
            "plot_uri": plot_uri, "best_config_uri": store.uri(f"{prefix}/{BEST_FILE}"), "best_config": best_yaml}
