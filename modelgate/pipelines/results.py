"""What the preprocess and train stages hand on: token arrays in S3 and a staged model.

The other stage results live beside the idea they belong to: ``DatasetSnapshot``
(``modelgate.data.snapshot``), ``ValidationReport`` (``validations.runner``), ``Evaluation``
(``modelgate.evaluation.result``) and ``Verdict`` (``modelgate.gate``). All are pydantic models:
Prefect passes them between tasks as they are, and they become JSON only where a boundary needs
it (the training child process, S3).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from modelgate.data.snapshot import DatasetSnapshot


def content_key(payload: Any) -> str:
    """sha256 of a JSON-able payload, keys sorted: the cache and training keys."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


class StageResult(BaseModel):
    """A stage result: strict fields, JSON in and out."""

    model_config = ConfigDict(extra="forbid")

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        return cls.model_validate(data)


class FeatureSet(StageResult):
    """Where each split's token arrays are in object storage, and what produced them.

    ``labels`` is the class list of a classifier (empty for an encoder); splits are named by the
    pipeline (``train``, ``oos_test``, ``test:left`` ...).
    """

    snapshot: DatasetSnapshot  # the validated snapshot the arrays were made from
    labels: list[str] = Field(default_factory=list)
    preset: str
    tokenizer_id: str
    sequence_length: int
    token_keys: dict[str, str]  # split -> object key of the .npz
    rows: dict[str, int]

    @property
    def key(self) -> str:
        return content_key([self.snapshot.sha256, self.labels, self.tokenizer_id, self.sequence_length])


class TrainedModel(StageResult):
    """A trained model staged in object storage, and how its training went."""

    uri: str  # s3 prefix of the staged model directory (see modelgate.artifacts)
    train_key: str
    epochs_run: int
    resumed_from_epoch: int | None = None
    seconds: float
    examples_per_second: float
    backend: str
    device: str
    parameters: int
    trainable_parameters: int
    history: dict[str, list[float]] = Field(default_factory=dict)
    tensorboard_uri: str = ""  # TensorBoard event files of the run, when it wrote them
    reused: bool = False  # a finished training with the same inputs was taken as it was
