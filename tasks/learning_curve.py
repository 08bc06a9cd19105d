"""Learning-curve tasks: one grid point (train in a child process, then evaluate), and the summary
a person reads (a table artifact and a plot). The work is in ``modelgate.pipelines.toxicity_curve``."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from modelgate.pipelines import toxicity_curve as curve
from modelgate.pipelines.base import Pipeline
from modelgate.pipelines.results import FeatureSet
from modelgate.pipelines.toxicity import ToxicityConfig
from modelgate.task_runners import worker_name
from modelgate.tasks.context import object_store
from modelgate.tasks.ui import artifact_key, png_markdown


# retries: a point that raises runs once more (a dead Dask worker's point is rescheduled by Dask).
@task(name="learning-curve-point", tags=["gpu"], retries=1)
def learning_curve_point(
    pipeline: Pipeline, cfg: ToxicityConfig, features: FeatureSet, examples: int, epochs: int, run_id: str
) -> dict[str, Any]:
    """Train on the first `examples` training comments for `epochs` epochs, then evaluate."""
    point = {**curve.curve_point(pipeline, cfg, object_store(), features, examples, epochs, run_id),
             "worker": worker_name()}
    print(f"{examples} examples, {epochs} epochs: F1 {point['f1']:.4f}, ROC-AUC {point['roc_auc']:.4f}")
    return point


@task(name="summarise-learning-curve")
def summarise_learning_curve(points: list[dict[str, Any]], run_id: str) -> dict[str, Any]:
    """One table artifact of the grid and one plot of F1 and ROC-AUC against epochs per size."""
    store = object_store()
    create_table_artifact(key=artifact_key("toxicity", "learning-curve"), table=curve.curve_table(points),
                          description="toxicity: test metrics with bootstrap 95% intervals per grid point")
    uri = curve.upload_curve_plot(store, points, run_id)
    # Embedded, not linked: a data URI never expires (docs/design.md, "Links and artifacts").
    create_markdown_artifact(key=artifact_key("toxicity", "plot-learning-curve"),
                             markdown=png_markdown("F1 and ROC-AUC against epochs", store.get_bytes(store.key_of(uri))),
                             description="F1 and ROC-AUC against epochs")
    return {"points": points, "plot_uri": uri}
