"""The study a tune run samples and resumes: its name, its trials in S3, and the best config.

A study is named after everything that makes its trials comparable: the pipeline, the profile,
the resolved base config, the search space and the validated data. Every finished trial is one
object ``runs/PIPELINE/tune/STUDY/trials/PARAMS.json`` (``PARAMS``: the hash of its sampled
values), written before its task returns; a new tune run of the same study reads them back and
tells them to a fresh Optuna study, so a killed run resumes without training them again.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import optuna
import yaml

from modelgate.config import PipelineConfig
from modelgate.storage import ObjectStore
from modelgate.tuning.space import Parameter, SearchSpace, apply_params

TRIALS_DIR = "trials"
BEST_FILE = "best.yaml"


def _sha(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def study_name(cfg: PipelineConfig, space: SearchSpace, data_sha256: str) -> str:
    return f"{cfg.pipeline}-{cfg.profile}-{_sha([cfg.digest(), space.digest(), data_sha256])[:16]}"


def study_prefix(pipeline: str, study: str) -> str:
    return f"runs/{pipeline}/tune/{study}"


def params_key(params: dict[str, Any]) -> str:
    return _sha(params)[:24]


def trial_object(pipeline: str, study: str, params: dict[str, Any]) -> str:
    return f"{study_prefix(pipeline, study)}/{TRIALS_DIR}/{params_key(params)}.json"


def store_trial(store: ObjectStore, pipeline: str, study: str, record: dict[str, Any]) -> None:
    store.put_json(trial_object(pipeline, study, record["params"]), record)


def stored_trials(store: ObjectStore, pipeline: str, study: str) -> list[dict[str, Any]]:
    """Finished trials of the study, oldest first (by their number)."""
    prefix = f"{study_prefix(pipeline, study)}/{TRIALS_DIR}/"
    records = [store.get_json(key) for key in store.list_keys(prefix) if key.endswith(".json")]
    return sorted(records, key=lambda r: (r["number"], r["params_key"]))


def distribution(p: Parameter) -> optuna.distributions.BaseDistribution:
    if p.type == "float":
        return optuna.distributions.FloatDistribution(p.low, p.high, log=p.log)
    if p.type == "int":
        return optuna.distributions.IntDistribution(int(p.low), int(p.high), log=p.log)
    return optuna.distributions.CategoricalDistribution(p.choices)


def new_study(space: SearchSpace, records: list[dict[str, Any]], seed: int) -> optuna.Study:
    """An in-memory study with the stored trials told again (the sampler learns from them)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # The sampler's generator starts afresh in every run: offset its seed by the trials already
    # told, or a resumed run would draw the first run's values again.
    sampler = optuna.samplers.TPESampler(seed=seed + len(records))
    study = optuna.create_study(direction=space.objective.direction, sampler=sampler)
    dists = {key: distribution(p) for key, p in space.parameters.items()}
    for record in records:
        study.add_trial(optuna.trial.create_trial(
            params=record["params"], distributions=dists, value=record["value"],
        ))
    return study


def suggest(trial: optuna.Trial, space: SearchSpace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, p in space.parameters.items():
        if p.type == "float":
            params[key] = trial.suggest_float(key, p.low, p.high, log=p.log)
        elif p.type == "int":
            params[key] = trial.suggest_int(key, int(p.low), int(p.high), log=p.log)
        else:
            params[key] = trial.suggest_categorical(key, p.choices)
    return params


def best_trial(records: list[dict[str, Any]], direction: str) -> dict[str, Any]:
    pick = max if direction == "maximize" else min
    return pick(records, key=lambda r: r["value"])


def best_config_yaml(base: PipelineConfig, record: dict[str, Any], study: str, metric: str) -> str:
    """The whole resolved config of the best trial, as a file `modelgate run PIPELINE --config` takes.

    Every key is written (not just the tuned ones), so the file reproduces the trial whatever
    profile it is later combined with.
    """
    data = apply_params(base, record["params"]).model_dump(mode="json")
    for key in ("pipeline", "profile"):
        data.pop(key, None)
    header = (
        f"# {base.pipeline}: best of study {study} (profile {base.profile}), trial {record['number']}:\n"
        f"# validation {metric} = {record['value']:.6g} with "
        + ", ".join(f"{k}={v}" for k, v in record["params"].items()) + "\n"
    )
    return header + yaml.safe_dump(data, sort_keys=False)
