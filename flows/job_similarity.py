"""job-similarity: a siamese job-title encoder tuned on ESCO pairs, checked on STS-B.

The recipe: fine-tune a pretrained sentence encoder as a siamese network on scored job-title pairs
(cosine -> angular similarity, mean squared error, Adam 1e-5 with clipnorm 1.0, early stopping), so
related roles come closer while the STS Benchmark shows the encoder stays general.
"""

from __future__ import annotations

from typing import Literal

from prefect import flow

from modelgate.pipelines import job_similarity as recipe
from tasks.data import ingest_dataset, validate_dataset
from tasks.evaluation import evaluate_model
from tasks.release import gate_model, register_model
from tasks.training import preprocess_dataset, train_model


@flow(name="job-similarity", log_prints=True)
def job_similarity(
    profile: Literal["default", "quick", "angular"] = "default",
    config_file: str | None = None,
    overrides: list[str] | None = None,
) -> dict:
    """Build scored job-title pairs from ESCO, validate them, tune the siamese encoder, evaluate
    it against the base encoder on held-out ESCO pairs and STS-B, gate and register the encoder.

    Args:
        profile: "default" runs the recipe (up to 10 epochs, early stopping); "quick" tunes briefly on fewer pairs;
            "angular" is the recipe with target scores the angular similarity can reach (unrelated = 0.5).
        config_file: a YAML file merged over the pipeline's defaults, e.g. `data.source` set to your own pairs CSV.
        overrides: `key.path=value` settings, e.g. `train.learning_rate=2e-5` or `data.variant=v1.2.0`.
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
