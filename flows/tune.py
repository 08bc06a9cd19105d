"""tune: search a pipeline's config for the best validation score, trials sampled by Optuna.

The data stages run once; every trial then trains with its sampled values on the same tokenized
splits (the token cache) and is scored on validation data only, as a task run of its own. Each
finished trial is kept in S3 under the study's name, so a killed tune resumes where it stopped.
One table, one plot and the best config (YAML for `modelgate run PIPELINE --config`) end the run.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from modelgate.pipelines import get_pipeline
from modelgate.tuning.objective import validation_metrics
from modelgate.tuning.space import load_space
from modelgate.tuning.study import new_study, params_key, stored_trials, study_name, suggest
from modelgate.tasks.context import object_store
from modelgate.tasks.data import ingest_dataset, validate_dataset
from modelgate.tasks.training import preprocess_dataset
from modelgate.tasks.tuning import summarise_study, tuning_data, tuning_trial


@flow(name="tune", log_prints=True)
def tune(
    pipeline: str,
    trials: int = 10,
    space_file: str | None = None,
    profile: str = "default",
    config_file: str | None = None,
    overrides: list[str] | None = None,
    parallel: int = 1,
) -> dict[str, Any]:
    """Sample `trials` configurations of a pipeline and keep the best on validation.

    Args:
        pipeline: intent-ood, nli, toxicity or job-similarity.
        trials: how many trials the study should hold when the run ends (finished ones count).
        space_file: a search-space YAML (default: the pipeline's packaged one, configs/spaces/).
        profile: the base config's profile, e.g. quick.
        config_file: a YAML file merged over the pipeline's defaults.
        overrides: `key.path=value` settings of the base config.
        parallel: trials sampled and run at the same time (the task runner spreads them).
    """
    p = get_pipeline(pipeline)
    cfg = p.load_config(profile, config_file, overrides)
    space = load_space(space_file, pipeline, cfg, validation_metrics(pipeline))
    metric = space.objective.metric
    snapshot = ingest_dataset(p, cfg)
    validated = tuning_data(p, validate_dataset(p, cfg, snapshot))
    features = preprocess_dataset(p, cfg, validated)
    study = study_name(cfg, space, validated.filtered_snapshot.sha256)
    records = stored_trials(object_store(), pipeline, study)
    finished = {r["params_key"]: r for r in records}
    resumed, ran = len(records), 0
    print(f"study {study}: {len(records)} finished trial(s) found, {max(trials - len(records), 0)} to run")
    sampler = new_study(space, records, cfg.seed)
    while len(records) < trials:
        asked = [sampler.ask() for _ in range(min(parallel, trials - len(records)))]
        batch = [(trial, suggest(trial, space)) for trial in asked]
        futures = [
            None if params_key(params) in finished
            else tuning_trial.submit(p, cfg, features, params, trial.number, study, metric)
            for trial, params in batch
        ]
        ran += sum(1 for future in futures if future)
        for (trial, params), future in zip(batch, futures):
            # A repeated sample (small categorical spaces) is told its earlier score, not retrained.
            record = future.result() if future else {**finished[params_key(params)], "number": trial.number}
            finished[record["params_key"]] = record
            records.append(record)
            sampler.tell(trial, record["value"])
    summary = summarise_study(cfg, records, study, metric, space.objective.direction)
    return {**summary, "resumed": resumed, "ran": ran}
