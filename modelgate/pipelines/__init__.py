"""The pipelines modelgate knows, by name: one ``Pipeline`` object each (``base.Pipeline``).

Each stage module ends with its ``PIPELINE``; the Prefect flows in ``flows/`` and the tasks in
``tasks/`` receive these objects. Gate and register are shared (``modelgate.registry.release``).
"""

from __future__ import annotations

from modelgate.pipelines import intent_ood, job_similarity, nli, toxicity
from modelgate.pipelines.base import Pipeline

PIPELINES: dict[str, Pipeline] = {
    p.name: p for p in (intent_ood.PIPELINE, nli.PIPELINE, toxicity.PIPELINE, job_similarity.PIPELINE)
}


def get_pipeline(name: str) -> Pipeline:
    """The pipeline called ``name`` (a registered model is named after its pipeline)."""
    try:
        return PIPELINES[name]
    except KeyError:
        known = ", ".join(sorted(PIPELINES))
        raise ValueError(f"unknown pipeline {name!r}; known pipelines: {known}") from None
