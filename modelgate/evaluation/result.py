"""What every pipeline's evaluate stage hands on to gate and register (a typed stage result)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Evaluation(BaseModel):
    metrics: dict[str, dict[str, Any]]  # name -> MetricValue.to_dict() (value, interval, n)
    plots: dict[str, str]  # name -> s3 URI of a PNG
    files: dict[str, str] = Field(default_factory=dict)  # file name -> s3 URI, added to the model directory
    inference_updates: dict[str, Any] = Field(default_factory=dict)  # merged into inference.json
    model_updates: dict[str, Any] = Field(default_factory=dict)  # calibration set on the model
    details: dict[str, Any] = Field(default_factory=dict)  # reported, not gated

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Evaluation":
        return cls.model_validate(data)
