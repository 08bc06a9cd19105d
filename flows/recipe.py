"""The shape every pipeline's flow shares, as task calls:

    ingest -> validate -> preprocess -> train -> evaluate -> gate -> register

Each flow resolves its config and hands its ``Pipeline`` here; the stages are the pipeline's own,
gate and register are shared. Typed results pass from task to task (small manifests and S3 URIs,
never arrays or models). A re-run with the same data, config and code reuses the training and
the evaluation and registers nothing new: register names the version that already holds the model
(status "unchanged"), with the gate decided again against production (docs/design.md).
"""

from __future__ import annotations

from modelgate.config import PipelineConfig
from modelgate.pipelines.base import Pipeline
from modelgate.tasks.data import ingest_dataset, validate_dataset
from modelgate.tasks.evaluation import evaluate_model
from modelgate.tasks.release import gate_model, register_model
from modelgate.tasks.training import preprocess_dataset, train_model


def run_recipe(pipeline: Pipeline, cfg: PipelineConfig) -> dict:
    """Run every stage once; the registered (or unchanged) version's summary (the flow's result)."""
    snapshot = ingest_dataset(pipeline, cfg)
    validated = validate_dataset(pipeline, cfg, snapshot)
    features = preprocess_dataset(pipeline, cfg, validated)
    trained = train_model(pipeline, cfg, features)
    evaluation = evaluate_model(pipeline, cfg, trained, features)
    verdict = gate_model(cfg, evaluation)
    return register_model(pipeline, cfg, snapshot, validated, trained, evaluation, verdict)
