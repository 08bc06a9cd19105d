"""toxicity: the "agile classifier" for hate speech on ETHOS, tuned with LoRA.

The recipe: take a pretrained model, tune LoRA rank-4 factors (plus a head for encoders) on a few
hundred labelled comments, score each comment by the probability of the hateful label, and gate on
F1 and ROC-AUC of the held-out comments.
"""

from __future__ import annotations

from typing import Literal

from prefect import flow

from modelgate.pipelines import toxicity as recipe
from tasks.data import ingest_dataset, validate_dataset
from tasks.evaluation import evaluate_model
from tasks.release import gate_model, register_model
from tasks.training import preprocess_dataset, train_model


@flow(name="toxicity", log_prints=True)
def toxicity(
    profile: Literal["default", "quick"] = "default",
    config_file: str | None = None,
    overrides: list[str] | None = None,
) -> dict:
    """Ingest ETHOS, validate it, tune the LoRA classifier, evaluate, gate and register.

    Args:
        profile: "default" runs the recipe (all 800 training comments); "quick" trains briefly on 200.
        config_file: a YAML file merged over the pipeline's defaults.
        overrides: `key.path=value` settings, e.g. `train.examples=400` or `model.preset=gemma_instruct_2b_en`.
    """
    cfg = recipe.load_config(profile, config_file, overrides or [])
    snapshot = ingest_dataset(cfg)
    validated = validate_dataset(cfg, snapshot)
    features = preprocess_dataset(cfg, validated)
    trained = train_model(cfg, features)
    evaluation = evaluate_model(cfg, trained, features)
    verdict = gate_model(cfg, evaluation)
    lineage = {"raw_snapshot": snapshot, "validated_snapshot": validated}
    return register_model(cfg, trained, evaluation, verdict, lineage)
