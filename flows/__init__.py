"""Prefect flows: one per pipeline, reading like the recipe it automates, plus promotion.

``FLOWS`` maps each pipeline's name to its flow, for ``modelgate run``; prefect.yaml's
deployments name the same functions by entrypoint.
"""

from flows.intent_ood import intent_ood
from flows.job_similarity import job_similarity
from flows.nli import nli
from flows.toxicity import toxicity

FLOWS = {f.name: f for f in (intent_ood, nli, toxicity, job_similarity)}
