"""What every pipeline's evaluate stage hands on to gate and register."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Evaluation:
    metrics: dict[str, dict[str, Any]]  # name -> MetricValue.to_dict() (value, interval, n)
    plots: dict[str, str]  # name -> s3 URI of a PNG
    inference_updates: dict[str, Any] = field(default_factory=dict)  # merged into inference.json
    model_updates: dict[str, Any] = field(default_factory=dict)  # calibration set on the model
    details: dict[str, Any] = field(default_factory=dict)  # reported, not gated

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
