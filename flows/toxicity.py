"""toxicity: the "agile classifier" for hate speech on ETHOS, tuned with LoRA.

The recipe: take a pretrained model, tune LoRA rank-4 factors (plus a head for encoders) on a few
hundred labelled comments, score each comment by the probability of the hateful label, and gate on
F1 and ROC-AUC of the held-out comments.
"""

from __future__ import annotations

from typing import Literal

from prefect import flow

from modelgate.flows.recipe import run_recipe
from modelgate.pipelines.toxicity import PIPELINE


@flow(name="toxicity", log_prints=True)
def toxicity(
    profile: Literal["default", "quick", "few-shot"] = "default",
    config_file: str | None = None,
    overrides: list[str] | None = None,
) -> dict:
    """Ingest ETHOS, validate it, tune the LoRA classifier, evaluate, gate and register.

    Args:
        profile: "default" runs the recipe (all 800 training comments); "quick" trains briefly on 200;
            "few-shot" trains on 200 with SetFit's contrastive stage before the head.
        config_file: a YAML file merged over the pipeline's defaults.
        overrides: `key.path=value` settings, e.g. `train.examples=400` or `model.preset=gemma_instruct_2b_en`.
    """
    return run_recipe(PIPELINE, PIPELINE.load_config(profile, config_file, overrides))
