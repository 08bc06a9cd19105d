"""job-similarity: a siamese job-title encoder tuned on ESCO pairs, checked on STS-B.

The recipe: fine-tune a pretrained sentence encoder as a siamese network on scored job-title pairs
(cosine -> angular similarity, mean squared error, Adam 1e-5 with clipnorm 1.0, early stopping), so
related roles come closer while the STS Benchmark shows the encoder stays general.
"""

from __future__ import annotations

from typing import Literal

from prefect import flow

from modelgate.flows.recipe import run_recipe
from modelgate.pipelines.job_similarity import PIPELINE


@flow(name="job-similarity", log_prints=True)
def job_similarity(
    profile: Literal["default", "quick", "recipe"] = "default",
    config_file: str | None = None,
    overrides: list[str] | None = None,
) -> dict:
    """Build scored job-title pairs from ESCO, validate them, tune the siamese encoder, evaluate
    it against the base encoder on held-out ESCO pairs and STS-B, gate and register the encoder.

    Args:
        profile: "default" runs the recipe (up to 10 epochs, early stopping) with target scores the angular
            similarity can reach (unrelated = 0.5); "quick" tunes briefly on fewer pairs; "recipe" keeps the
            recipe's own target scores (unrelated = 0.05), which fail the gate.
        config_file: a YAML file merged over the pipeline's defaults, e.g. `data.source` set to your own pairs CSV.
        overrides: `key.path=value` settings, e.g. `train.learning_rate=2e-5` or `data.variant=v1.2.0`.
    """
    return run_recipe(PIPELINE, PIPELINE.load_config(profile, config_file, overrides))
