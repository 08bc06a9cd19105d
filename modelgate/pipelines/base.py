"""The pipeline contract: what every pipeline is, as one object.

A pipeline is a config model, five stage functions and what serving needs. The stages hand each
other typed results (``DatasetSnapshot`` -> ``ValidationReport`` -> ``FeatureSet`` ->
``TrainedModel`` -> ``Evaluation``); gate and register are shared by every pipeline
(``modelgate.registry.release``). Prefect tasks and flows receive the ``Pipeline`` object and call
its stages; nothing looks a pipeline up by a module path.

Adding a pipeline: a stage module under ``modelgate/pipelines/`` that ends with a ``PIPELINE =
Pipeline(...)``, a config file in ``modelgate/configs/``, a validation suite in ``validations/``,
a flow in ``flows/``, and one entry in ``modelgate.pipelines.PIPELINES`` (docs/design.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from modelgate.config import PipelineConfig
from modelgate.config import load_config as resolve_config
from modelgate.data.snapshot import DatasetSnapshot
from modelgate.evaluation.result import Evaluation
from modelgate.pipelines.results import FeatureSet, TrainedModel
from modelgate.storage import ObjectStore
from modelgate.validations.runner import ValidationReport


class Predictor(Protocol):
    """What ``modelgate predict`` drives. A predictor offers what its task supports:
    ``predict(texts)``, ``predict_pairs(pairs)``, ``embed(texts)``; ``format`` renders a table."""

    def format(self, predictions: list[Any]) -> str: ...


@dataclass(frozen=True)
class Pipeline:
    """One pipeline: its name, config, stages and serving side.

    Stage signatures (plain functions, called by the tasks in ``tasks/`` and by tests directly):
    ``ingest(cfg, store) -> DatasetSnapshot``; ``validate(cfg, store, snapshot, run_id) ->
    ValidationReport`` (raises ``ValidationFailed``); ``preprocess(cfg, store, report) ->
    FeatureSet``; ``train(cfg, store, features) -> TrainedModel``; ``evaluate(cfg, store,
    trained, features, run_id) -> Evaluation``.
    """

    name: str
    config_class: type[PipelineConfig]
    validation_suite: str  # the Great Expectations suite's dataset name (validations/)
    ingest: Callable[[Any, ObjectStore], DatasetSnapshot]
    validate: Callable[[Any, ObjectStore, DatasetSnapshot, str], ValidationReport]
    preprocess: Callable[[Any, ObjectStore, ValidationReport], FeatureSet]
    train: Callable[[Any, ObjectStore, FeatureSet], TrainedModel]
    evaluate: Callable[[Any, ObjectStore, TrainedModel, FeatureSet, str], Evaluation]
    load_predictor: Callable[[Path], Predictor]  # a fetched, verified version directory
    model_card: Callable[[Any], dict[str, Any]]  # the card's text fields for a config
    predict_example: str = '"some text"'  # what follows `modelgate predict MODEL:V` in the card

    def load_config(
        self, profile: str = "default", config_file: str | None = None, overrides: list[str] | None = None
    ) -> PipelineConfig:
        """Packaged defaults, then the profile, then the file, then each ``key.path=value``."""
        return resolve_config(self.name, self.config_class, profile, config_file, overrides or [])

    def config_from_dict(self, data: dict[str, Any]) -> PipelineConfig:
        """A resolved config back from its JSON (the training child process, a manifest)."""
        return self.config_class.model_validate(data)
