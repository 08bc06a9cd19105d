"""Pipeline configuration: one YAML file per pipeline, named profiles, a user file, and overrides.

Resolution order (later wins): the packaged ``configs/PIPELINE.yaml`` -> its ``profiles.NAME``
section -> ``--config FILE`` -> ``--set key.path=value``. The result is validated by the pipeline's
pydantic model, which forbids unknown keys so a typo in ``--set`` is an error, not a silent no-op.
"""

from __future__ import annotations

import copy
import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelgate.gate import GateConfig


class ConfigError(ValueError):
    """The pipeline configuration is invalid; the message says which key and why."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(Section):
    source: str = Field("auto", description="auto | tfds | mirror | a local path | an s3:// URI")
    variant: str = Field("full", description="dataset variant, e.g. CLINC150 'full' or 'small'")


class ModelConfig(Section):
    preset: str = Field("all-minilm-l6-v2", description="keras-hub preset, hf:// handle or preset dir")
    head: Literal["sngp", "softmax"] = "sngp"
    sequence_length: int = Field(32, ge=8, le=512)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    freeze_backbone: bool = False
    spec_norm_bound: float = Field(0.95, gt=0.0)
    num_inducing: int = Field(1024, ge=16)
    ridge_penalty: float = Field(1.0, gt=0.0)
    mean_field_factor: float = Field(30.0, ge=0.0, description="mean-field temperature at inference")


class TrainConfig(Section):
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(1e-4, gt=0.0)
    weight_decay: float = Field(0.01, ge=0.0)
    warmup_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    head_learning_rate_multiplier: float = Field(
        1.0, gt=0.0, description="the classifier head learns at learning_rate times this (the encoder at learning_rate)"
    )
    length_bucketing: bool = Field(
        False, description="batches of similar-length texts, each cut to its longest (faster on short texts)"
    )
    resume: bool = Field(True, description="continue from the last S3 checkpoint of the same inputs")


class EvaluateConfig(Section):
    bootstrap_samples: int = Field(1000, ge=100)
    ece_bins: int = Field(15, ge=2)
    calibrate: bool = Field(
        True, description="fit temperature (and SNGP mean-field factor) on the validation splits"
    )
    mean_field_grid: list[float] = Field(
        default_factory=lambda: [0.0, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0],
        description="mean-field factors tried when calibrating an SNGP head",
    )


class PipelineConfig(Section):
    pipeline: str
    profile: str = "default"
    seed: int = 42
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    gate: GateConfig = GateConfig()
    validation: dict[str, Any] = Field(default_factory=dict)

    def digest(self, *sections: str) -> str:
        """sha256 of the named sections (all when none): a cache/run key for what they determine."""
        payload = self.model_dump(mode="json")
        if sections:
            payload = {name: payload[name] for name in sections}
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def packaged_config_path(pipeline: str) -> Path:
    path = Path(str(resources.files("modelgate") / "configs" / f"{pipeline}.yaml"))
    if not path.exists():
        raise ConfigError(f"no configuration for pipeline {pipeline!r} (looked for {path})")
    return path


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def apply_override(data: dict[str, Any], assignment: str) -> dict[str, Any]:
    """Apply one ``a.b.c=value`` override; the value is parsed as YAML (numbers, lists, booleans)."""
    path, sep, raw = assignment.partition("=")
    if not sep or not path.strip():
        raise ConfigError(f"override {assignment!r} must look like key.path=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {assignment!r}: value is not valid YAML: {exc}") from None
    keys = path.strip().split(".")
    node = data
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {assignment!r}: {key!r} is not a section")
        node = child
    node[keys[-1]] = value
    return data


def _format_validation_error(pipeline: str, exc: ValidationError) -> str:
    lines = [f"invalid configuration for pipeline {pipeline!r}:"]
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        lines.append(f"  {where}: {error['msg']}")
    return "\n".join(lines)


def load_config(
    pipeline: str,
    schema: type[PipelineConfig],
    profile: str = "default",
    config_file: str | Path | None = None,
    overrides: list[str] | None = None,
) -> PipelineConfig:
    raw = _read_yaml(packaged_config_path(pipeline))
    profiles = raw.pop("profiles", {}) or {}
    if profile != "default":
        if profile not in profiles:
            known = ", ".join(["default", *sorted(profiles)])
            raise ConfigError(f"unknown profile {profile!r} for {pipeline}; known profiles: {known}")
        raw = deep_merge(raw, profiles[profile])
    if config_file:
        raw = deep_merge(raw, _read_yaml(Path(config_file)))
    for assignment in overrides or []:
        raw = apply_override(raw, assignment)
    raw["pipeline"] = pipeline
    raw["profile"] = profile
    try:
        return schema.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(pipeline, exc)) from None
