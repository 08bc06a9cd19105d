"""intent-ood: out-of-scope intent detection on CLINC150 with an uncertainty-aware SNGP encoder.

The recipe: fine-tune a pretrained encoder on CLINC150's 150 in-scope intents with a spectrally
normalised hidden layer and a Gaussian-process output layer; at test time, out-of-scope queries are
the ones the model is unsure about (1 - max mean-field probability).
"""

from __future__ import annotations

from typing import Literal

from prefect import flow

from modelgate.flows.recipe import run_recipe
from modelgate.pipelines.intent_ood import PIPELINE


@flow(name="intent-ood", log_prints=True)
def intent_ood(
    profile: Literal["default", "quick"] = "default",
    config_file: str | None = None,
    overrides: list[str] | None = None,
) -> dict:
    """Ingest CLINC150, validate it, fine-tune the SNGP classifier, evaluate, gate and register.

    Args:
        profile: "default" runs the recipe as published; "quick" trains briefly on CLINC150's small set.
        config_file: a YAML file merged over the pipeline's defaults.
        overrides: `key.path=value` settings, e.g. `model.head=softmax` for the deterministic baseline.
    """
    return run_recipe(PIPELINE, PIPELINE.load_config(profile, config_file, overrides))
