"""toxicity-learning-curve: how F1 and ROC-AUC grow with training comments and epochs.

The data stages run once; every (training size, epochs) point of the grid then trains and
evaluates as its own task run (training in a child process), in parallel, and one table and one
plot summarise the grid. The grid is a nested flow run on the chosen task runner (`task_runner`:
local threads, a Dask LocalCluster made for the run, or an existing Dask cluster).
"""

from __future__ import annotations

from typing import Literal

from prefect import flow, unmapped

from modelgate.pipelines import toxicity_curve as curve
from modelgate.pipelines.results import FeatureSet
from modelgate.pipelines.toxicity import PIPELINE, ToxicityConfig
from modelgate.task_runners import check_task_runner, resolve_task_runner
from modelgate.tasks.context import current_run_id
from modelgate.tasks.data import ingest_dataset, validate_dataset
from modelgate.tasks.learning_curve import learning_curve_point, summarise_learning_curve
from modelgate.tasks.training import preprocess_dataset


@flow(name="toxicity-learning-curve", log_prints=True)
def toxicity_learning_curve(
    profile: Literal["default", "quick"] = "default",
    config_file: str | None = None,
    overrides: list[str] | None = None,
    task_runner: str = "local",
) -> dict:
    """Ingest and validate ETHOS once, then train and evaluate every grid point in parallel.

    Args:
        profile: "default" runs sizes 200/400/800 x epochs 4/6/8/10; "quick" a small grid.
        config_file: a YAML file merged over the pipeline's defaults.
        overrides: `key.path=value` settings, e.g. `learning_curve.sizes=[200,800]` or `learning_curve.parallel=1`.
        task_runner: where the grid points run: local, dask (a LocalCluster for this run) or dask://HOST:PORT.
    """
    check_task_runner(task_runner)
    cfg = PIPELINE.load_config(profile, config_file, overrides)
    snapshot = ingest_dataset(PIPELINE, cfg)
    validated = validate_dataset(PIPELINE, cfg, snapshot)
    features = preprocess_dataset(PIPELINE, cfg, validated)
    run_id = current_run_id()
    points = learning_curve_grid.with_options(task_runner=resolve_task_runner(task_runner))(cfg, features, run_id)
    return summarise_learning_curve(points, run_id)


@flow(name="learning-curve-grid", log_prints=True)
def learning_curve_grid(cfg: ToxicityConfig, features: FeatureSet, run_id: str) -> list[dict]:
    """Every grid point as a task run, spread by this flow's task runner; their rows."""
    grid = curve.grid(cfg)
    futures = learning_curve_point.map(
        unmapped(PIPELINE), unmapped(cfg), unmapped(features),
        [size for size, _ in grid], [epochs for _, epochs in grid], unmapped(run_id),
    )
    return [future.result() for future in futures]
