"""Prefect flows: one per pipeline, reading like the recipe it automates, plus promotion.

``FLOWS`` maps each pipeline's name to its flow, for ``modelgate run``; prefect.yaml's
deployments name the same functions by entrypoint. ``FAN_OUT_FLOWS`` are the flows that spread
task runs over a task runner (``modelgate.task_runners``): tune, seeds, the learning curve.
"""

from modelgate.flows.intent_ood import intent_ood
from modelgate.flows.job_similarity import job_similarity
from modelgate.flows.nli import nli
from modelgate.flows.seeds import seeds
from modelgate.flows.toxicity import toxicity
from modelgate.flows.toxicity_learning_curve import toxicity_learning_curve
from modelgate.flows.tune import tune

FLOWS = {f.name: f for f in (intent_ood, nli, toxicity, job_similarity)}
FAN_OUT_FLOWS = {f.name: f for f in (tune, seeds, toxicity_learning_curve)}
