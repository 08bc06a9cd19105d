"""seeds: how much one recipe's result moves with the seed alone.

The data stages run once; the recipe then trains and evaluates under N seeds (the config's seed
and the N-1 after it), each as a task run spread by the flow's task runner, and one table
reports the main metric's mean, standard deviation, minimum and maximum. Nothing is registered.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from modelgate.pipelines import get_pipeline
from modelgate.tasks.context import current_run_id
from modelgate.tasks.data import ingest_dataset, validate_dataset
from modelgate.tasks.seeds import main_metric, seed_run, summarise_seeds
from modelgate.tasks.training import preprocess_dataset


@flow(name="seeds", log_prints=True)
def seeds(
    pipeline: str,
    count: int = 3,
    profile: str = "default",
    config_file: str | None = None,
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """Train and evaluate one recipe under `count` seeds and report the spread of its main metric.

    Args:
        pipeline: intent-ood, nli, toxicity or job-similarity.
        count: how many seeds (the config's seed, then seed+1, ...).
        profile: a config profile, e.g. quick.
        config_file: a YAML file merged over the pipeline's defaults.
        overrides: `key.path=value` settings.
    """
    p = get_pipeline(pipeline)
    cfg = p.load_config(profile, config_file, overrides)
    metric = main_metric(cfg)
    features = preprocess_dataset(p, cfg, validate_dataset(p, cfg, ingest_dataset(p, cfg)))
    run_id = current_run_id()
    futures = [seed_run.submit(p, cfg, features, cfg.seed + i, run_id) for i in range(count)]
    return summarise_seeds(pipeline, [future.result() for future in futures], metric)
