"""toxicity-learning-curve: how F1 and ROC-AUC grow with training comments and epochs.

The data stages run once; every (training size, epochs) point of the grid then trains and
evaluates as its own task run (training in a child process), in parallel, and one table and one plot summarise the grid.
"""

from __future__ import annotations

from typing import Literal

from prefect import flow, task, unmapped
from prefect.artifacts import create_image_artifact, create_table_artifact

from modelgate.pipelines import toxicity as recipe
from modelgate.pipelines import toxicity_curve as curve
from tasks.context import current_run_id, object_store
from tasks.data import ingest_dataset, validate_dataset
from tasks.training import preprocess_dataset


@task(name="learning-curve-point", tags=["gpu"])
def learning_curve_point(cfg, features: dict, examples: int, epochs: int, run_id: str) -> dict:
    """Train on the first `examples` training comments for `epochs` epochs, then evaluate."""
    point = curve.curve_point(cfg, object_store(), features, examples, epochs, run_id)
    print(f"{examples} examples, {epochs} epochs: F1 {point['f1']:.4f}, ROC-AUC {point['roc_auc']:.4f}")
    return point


@task(name="summarise-learning-curve")
def summarise_learning_curve(points: list[dict], run_id: str) -> dict:
    """One table artifact of the grid and one plot of F1 and ROC-AUC against epochs per size."""
    store = object_store()
    create_table_artifact(key="learning-curve", table=curve.curve_table(points),
                          description="toxicity: test metrics with bootstrap 95% intervals per grid point")
    uri = curve.upload_curve_plot(store, points, run_id)
    url = store.client.generate_presigned_url(
        "get_object", Params={"Bucket": store.bucket, "Key": store.key_of(uri)}, ExpiresIn=7 * 24 * 3600
    )
    create_image_artifact(image_url=url, key="plot-learning-curve", description="F1 and ROC-AUC against epochs")
    return {"points": points, "plot_uri": uri}


@flow(name="toxicity-learning-curve", log_prints=True)
def toxicity_learning_curve(
    profile: Literal["default", "quick"] = "default",
    config_file: str | None = None,
    overrides: list[str] | None = None,
) -> dict:
    """Ingest and validate ETHOS once, then train and evaluate every grid point in parallel.

    Args:
        profile: "default" runs sizes 200/400/800 x epochs 4/6/8/10; "quick" a small grid.
        config_file: a YAML file merged over the pipeline's defaults.
        overrides: `key.path=value` settings, e.g. `learning_curve.sizes=[200,800]` or `learning_curve.parallel=1`.
    """
    cfg = recipe.load_config(profile, config_file, overrides or [])
    snapshot = ingest_dataset(cfg)
    validated = validate_dataset(cfg, snapshot)
    features = preprocess_dataset(cfg, validated)
    run_id = current_run_id()
    grid = curve.grid(cfg)
    futures = learning_curve_point.map(
        unmapped(cfg), unmapped(features), [size for size, _ in grid], [epochs for _, epochs in grid],
        unmapped(run_id),
    )
    points = [future.result() for future in futures]
    return summarise_learning_curve(points, run_id)
