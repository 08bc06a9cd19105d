"""Pipeline configuration: one YAML file per pipeline, named profiles, a user file, and overrides.

Resolution order (later wins): the packaged ``configs/PIPELINE.yaml`` -> its ``profiles.NAME``
section -> ``--config FILE`` -> ``--set key.path=value``. The result is validated by the pipeline's
pydantic model, which forbids unknown keys so a typo in ``--set`` is an error, not a silent no-op,
and refuses non-finite numbers (``inf``, ``nan``). Every fault is one line that names where the bad
value came from: the file and line, or the ``--set``.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelgate.gate import GateConfig
from modelgate.messages import decode_utf8, one_line


class ConfigError(ValueError):
    """The pipeline configuration is invalid; the message says which key and why."""


class Section(BaseModel):
    # inf and nan are never a sensible setting: a learning rate of inf trains nothing.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


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
    distribution: Literal["auto", "none", "data_parallel"] = Field(
        "auto", description="auto: data-parallel over every device when JAX sees more than one (else one device)"
    )
    backend: Literal["inherit", "jax", "tensorflow", "torch"] = Field(
        "inherit", description="Keras backend of the training process (inherit: the caller's KERAS_BACKEND)"
    )


class EvaluateConfig(Section):
    bootstrap_samples: int = Field(1000, ge=100)
    ece_bins: int = Field(15, ge=2)
    calibrate: bool = Field(
        True, description="fit temperature (and SNGP mean-field factor) on the validation splits"
    )
    mean_field_grid: list[Annotated[float, Field(ge=0.0)]] = Field(
        default_factory=lambda: [0.0, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0],
        min_length=1,
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


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error as one line: what is wrong, and its line and column when known."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or exc
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{one_line(problem)}{where}"


def _read_config_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory; give a YAML file") from None
    except PermissionError:
        raise ConfigError(f"config file {path} is not readable (permission denied)") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} could not be read: {exc.strerror or exc}") from None
    return decode_utf8(raw, f"config file {path}", ConfigError)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(_read_config_text(path)) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {_yaml_problem(exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping of sections (data:, model:, train: ...) "
            f"at the top level, not a {type(data).__name__}"
        )
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
        raise ConfigError(f"--set {assignment!r} must look like key.path=value (e.g. train.epochs=3)")
    keys = path.strip().split(".")
    if not all(key.strip() for key in keys):
        raise ConfigError(f"--set {assignment!r}: the key path {path.strip()!r} has an empty part")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {assignment!r}: the value is not valid YAML: {_yaml_problem(exc)}") from None
    node = data
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {assignment!r}: {key!r} is a value, not a section")
        node = child
    node[keys[-1]] = value
    return data


@dataclass
class _Sources:
    """What was merged, kept to say where a rejected setting came from."""

    packaged: Path
    profile: str
    profile_data: dict[str, Any]
    config_file: Path | None
    file_data: dict[str, Any]
    overrides: list[str]

    def origin(self, loc: tuple) -> str:
        keys = [str(part) for part in loc]
        for assignment in reversed(self.overrides):  # the last --set of a key is the one that counts
            path = assignment.partition("=")[0].strip().split(".")
            if path[: len(keys)] == keys[: len(path)]:
                return f"--set {assignment}"
        if self.config_file and _holds(self.file_data, loc):
            line = _yaml_line(self.config_file, loc)
            return f"{self.config_file}" + (f" line {line}" if line else "")
        if self.profile != "default" and _holds(self.profile_data, loc):
            return f"profile {self.profile!r} in {self.packaged}"
        return str(self.packaged)


def _holds(data: Any, loc: tuple) -> bool:
    """Whether ``data`` (one merged layer) sets the value at ``loc``."""
    for part in loc:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return False
    return True


def _yaml_line(path: Path, loc: tuple) -> int | None:
    """The line of ``loc``'s key in a YAML file, from the parser's node marks."""
    try:
        node = yaml.compose(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == str(part)]
            if not match:
                return line
            key, node = match[-1]
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _known_keys(schema: type[BaseModel], loc: tuple) -> list[str]:
    """The keys the section at ``loc`` accepts (empty when it is not a model)."""
    model: Any = schema
    for part in loc:
        field = model.model_fields.get(str(part)) if isinstance(model, type) else None
        model = field.annotation if field else None
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
    return sorted(model.model_fields)


def _describe_error(error: dict[str, Any], schema: type[BaseModel], sources: _Sources) -> str:
    loc = tuple(error["loc"])
    if error["type"] == "extra_forbidden":
        known = _known_keys(schema, loc[:-1])
        what = "unknown key" + (f" (known keys here: {', '.join(known)})" if known else "")
    else:
        what = error["msg"]
        value = error.get("input")
        if not isinstance(value, (dict, list)):
            shown = repr(value)
            what += f" (got {shown if len(shown) <= 60 else shown[:57] + '...'})"
    return f"{'.'.join(str(part) for part in loc)}: {what}, from {sources.origin(loc)}"


def _format_validation_error(pipeline: str, exc: ValidationError, schema: type[BaseModel],
                             sources: _Sources) -> str:
    problems = "; ".join(_describe_error(error, schema, sources) for error in exc.errors())
    return f"invalid configuration for {pipeline}: {problems}"


def load_config(
    pipeline: str,
    schema: type[PipelineConfig],
    profile: str = "default",
    config_file: str | Path | None = None,
    overrides: list[str] | None = None,
) -> PipelineConfig:
    packaged = packaged_config_path(pipeline)
    raw = _read_yaml(packaged)
    profiles = raw.pop("profiles", {}) or {}
    profile_data: dict[str, Any] = {}
    if profile != "default":
        if profile not in profiles:
            known = ", ".join(["default", *sorted(profiles)])
            raise ConfigError(f"unknown profile {profile!r} for {pipeline}; known profiles: {known}")
        profile_data = profiles[profile]
        raw = deep_merge(raw, profile_data)
    file_data: dict[str, Any] = {}
    if config_file:
        file_data = _read_yaml(Path(config_file))
        raw = deep_merge(raw, file_data)
    for assignment in overrides or []:
        raw = apply_override(raw, assignment)
    raw["pipeline"] = pipeline
    raw["profile"] = profile
    try:
        return schema.model_validate(raw)
    except ValidationError as exc:
        sources = _Sources(packaged, profile, profile_data, Path(config_file) if config_file else None,
                           file_data, list(overrides or []))
        raise ConfigError(_format_validation_error(pipeline, exc, schema, sources)) from None
