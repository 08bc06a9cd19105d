"""Evaluate on the held-out test splits; the run page shows the metrics table and the plots."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from modelgate.config import PipelineConfig
from modelgate.evaluation.result import Evaluation
from modelgate.pipelines.base import Pipeline
from modelgate.pipelines.results import FeatureSet, TrainedModel
from modelgate.pipelines.stages import evaluation_cache_record
from modelgate.summary import metrics_rows
from modelgate.tasks.context import current_run_id, object_store
from modelgate.tasks.ui import artifact_key, png_markdown


@task(name="evaluate")
def evaluate_model(
    pipeline: Pipeline, cfg: PipelineConfig, trained: TrainedModel, features: FeatureSet
) -> Evaluation:
    """Metrics with bootstrap 95% intervals, and plots stored in object storage. An evaluation
    whose model, data, evaluate config and code are unchanged is read back from the evaluation
    cache (``reuse_or_evaluate``) instead of computed again."""
    store = object_store()
    evaluation = pipeline.evaluate(cfg, store, trained, features, current_run_id())
    cache = evaluation_cache_record(evaluation)
    origin = (f"reused the evaluation of run {cache['computed_in_run']}" if cache.get("reused")
              else "computed in this run")
    create_table_artifact(
        key=artifact_key(cfg.pipeline, "metrics"),
        table=[
            {"metric": name, "value": value, "95% interval": interval}
            for name, value, interval in metrics_rows(evaluation.metrics)
        ],
        description=f"{cfg.pipeline}: test metrics with bootstrap 95% intervals ({origin})",
    )
    # The PNG itself, embedded in a Markdown artifact: an image artifact holds only a URL, and a
    # presigned one is dead after a week.
    for name, uri in evaluation.plots.items():
        title = name.replace("_", " ")
        create_markdown_artifact(
            key=artifact_key(cfg.pipeline, f"plot-{name}"),
            markdown=png_markdown(title, store.get_bytes(store.key_of(uri))),
            description=f"{cfg.pipeline}: {title} ({uri})",
        )
    return evaluation
