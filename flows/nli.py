"""nli: SNLI sentence-pair classification (entailment / neutral / contradiction).

The recipe: fine-tune a pretrained encoder with a classification head on (hypothesis, premise)
pairs packed into one sequence with [SEP], after filtering out the pairs without a gold label;
AdamW with a triangular learning-rate schedule; report accuracy on SNLI test.
"""

from __future__ import annotations

from typing import Literal

from prefect import flow

from modelgate.flows.recipe import run_recipe
from modelgate.pipelines.nli import PIPELINE


@flow(name="nli", log_prints=True)
def nli(
    profile: Literal["default", "quick", "minilm"] = "default",
    config_file: str | None = None,
    overrides: list[str] | None = None,
) -> dict:
    """Ingest SNLI, validate it (no-gold-label pairs quarantined), fine-tune the pair classifier,
    evaluate, gate and register.

    Args:
        profile: "default" fine-tunes all-mpnet-base-v2 for 2 epochs; "minilm" runs the recipe's
            schedule (3 epochs, lr 1e-4) on all-MiniLM-L6-v2, about 6x faster; "quick" trains only
            the head on a frozen MiniLM and a 4000-pair subsample.
        config_file: a YAML file merged over the pipeline's defaults.
        overrides: `key.path=value` settings, e.g. `model.preset=bert_tiny_en_uncased` or
            `data.train_fraction=0.5`.
    """
    return run_recipe(PIPELINE, PIPELINE.load_config(profile, config_file, overrides))
