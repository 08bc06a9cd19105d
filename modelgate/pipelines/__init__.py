"""The pipelines modelgate knows, by name.

Each pipeline is a module of plain functions, one per stage (ingest, validate, preprocess, train,
evaluate) plus its config schema and predictor; the Prefect tasks in ``tasks/`` and flows in
``flows/`` are thin wrappers around them, and gate/register are shared (``modelgate.release``).
"""

from __future__ import annotations

import importlib
from types import ModuleType

# name -> (module of stage functions, "module:function" of its Prefect flow). Adding a pipeline
# means one line here.
PIPELINES: dict[str, tuple[str, str]] = {
    "intent-ood": ("modelgate.pipelines.intent_ood", "flows.intent_ood:intent_ood"),
    "nli": ("modelgate.pipelines.nli", "flows.nli:nli"),
    "job-similarity": ("modelgate.pipelines.job_similarity", "flows.job_similarity:job_similarity"),
    "toxicity": ("modelgate.pipelines.toxicity", "flows.toxicity:toxicity"),
}


def _entry(name: str) -> tuple[str, str]:
    try:
        return PIPELINES[name]
    except KeyError:
        known = ", ".join(sorted(PIPELINES))
        raise ValueError(f"unknown pipeline {name!r}; known pipelines: {known}") from None


def get_pipeline(name: str) -> ModuleType:
    return importlib.import_module(_entry(name)[0])


def get_flow(name: str):
    module_name, _, attr = _entry(name)[1].partition(":")
    return getattr(importlib.import_module(module_name), attr)


def pipeline_for_model(model: str) -> ModuleType:
    """Registered models are named after their pipeline."""
    return get_pipeline(model)
