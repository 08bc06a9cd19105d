"""Search spaces: YAML files naming config keys to sample, the objective metric and its direction.

```yaml
objective: {metric: val_accuracy, direction: maximize}
parameters:
  train.learning_rate: {type: float, low: 1.0e-3, high: 3.0e-2, log: true}
  train.epochs: {type: int, low: 5, high: 40}
  model.head: {type: categorical, choices: [sngp, softmax]}
```

Each parameter is checked against the pipeline's config model before anything runs: the key must
exist, a float parameter must set a float field and an int parameter an int field, and every
bound or choice must be a value the config accepts. A bad space is one ``SpaceError`` line naming
the key.
"""

from __future__ import annotations

import hashlib
import json
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelgate.config import ConfigError, PipelineConfig


class SpaceError(ValueError):
    """The search space is invalid; the message names the key and says why."""


class Parameter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[Any] | None = None

    def candidate_values(self) -> list[Any]:
        """The values that bound the parameter: both ends of a range, or every choice."""
        if self.type == "categorical":
            return list(self.choices or [])
        cast = int if self.type == "int" else float
        return [cast(self.low), cast(self.high)]


class Objective(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metric: str
    direction: Literal["maximize", "minimize"]


class SearchSpace(BaseModel):
    model_config = ConfigDict(extra="forbid")

    objective: Objective
    parameters: dict[str, Parameter] = Field(min_length=1)

    def digest(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def packaged_space_path(pipeline: str) -> Path:
    return Path(str(resources.files("modelgate") / "configs" / "spaces" / f"{pipeline}.yaml"))


def _field_annotation(schema: type[BaseModel], key: str) -> Any:
    """The annotation of ``a.b.c`` in the config model; SpaceError when a part does not exist."""
    node: Any = schema
    parts = key.split(".")
    for depth, part in enumerate(parts):
        fields = getattr(node, "model_fields", None)
        if fields is None or part not in fields:
            where = ".".join(parts[:depth]) or "the top level"
            raise SpaceError(f"search space: parameter {key!r}: no config key {part!r} in {where}")
        node = fields[part].annotation
    return node


def _base_types(annotation: Any) -> set[type]:
    """int / float / ... behind Optional[...] and unions; Literal values give their own types."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        return set().union(*(_base_types(a) for a in typing.get_args(annotation))) - {type(None)}
    if origin is Literal:
        return {type(v) for v in typing.get_args(annotation)}
    return {annotation} if isinstance(annotation, type) else set()


def _check_parameter(key: str, p: Parameter, schema: type[PipelineConfig]) -> None:
    annotation = _field_annotation(schema, key)
    if p.type == "categorical":
        if not p.choices:
            raise SpaceError(f"search space: parameter {key!r}: a categorical parameter needs a non-empty 'choices' list")
        return
    if p.low is None or p.high is None:
        raise SpaceError(f"search space: parameter {key!r}: a {p.type} parameter needs 'low' and 'high'")
    if not p.low < p.high:
        raise SpaceError(f"search space: parameter {key!r}: low ({p.low}) must be below high ({p.high})")
    if p.log and p.low <= 0:
        raise SpaceError(f"search space: parameter {key!r}: a log scale needs low > 0 (got {p.low})")
    if p.type == "int" and not (float(p.low).is_integer() and float(p.high).is_integer()):
        raise SpaceError(f"search space: parameter {key!r}: an int parameter needs whole-number bounds")
    wanted = int if p.type == "int" else float
    if wanted not in _base_types(annotation):
        raise SpaceError(
            f"search space: parameter {key!r} is {p.type} but the config key holds {_describe(annotation)}"
        )


def _describe(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def check_values(key: str, p: Parameter, base: PipelineConfig) -> None:
    """Every bound or choice of ``key`` must give a config the pipeline accepts."""
    for value in p.candidate_values():
        try:
            apply_params(base, {key: value})
        except ConfigError as exc:
            reason = str(exc).splitlines()[-1].strip()
            raise SpaceError(f"search space: parameter {key!r}: value {value!r} is refused by the config: {reason}") from None


def apply_params(base: PipelineConfig, params: dict[str, Any]) -> PipelineConfig:
    """``base`` with each ``key.path -> value`` set; ConfigError when the result is invalid."""
    data = base.model_dump(mode="json")
    for key, value in params.items():
        node = data
        *sections, last = key.split(".")
        for section in sections:
            node = node[section]
        node[last] = value
    try:
        return type(base).model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"invalid configuration: {where}: {first['msg']}") from None


def parse_space(data: Any, source: str) -> SearchSpace:
    if not isinstance(data, dict):
        raise SpaceError(f"search space {source}: must be a mapping with 'objective' and 'parameters'")
    for key, spec in (data.get("parameters") or {}).items():
        kind = spec.get("type") if isinstance(spec, dict) else None
        if kind not in ("float", "int", "categorical"):
            raise SpaceError(f"search space: parameter {key!r}: unknown type {kind!r} (float, int or categorical)")
    try:
        return SearchSpace.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise SpaceError(f"search space {source}: {where}: {first['msg']}") from None


def load_space(path: str | Path | None, pipeline: str, base: PipelineConfig, metrics: tuple[str, ...]) -> SearchSpace:
    """Read and check a space (the pipeline's packaged one when ``path`` is None).

    ``metrics`` are the objective metrics the pipeline's validation score offers.
    """
    path = Path(path) if path else packaged_space_path(pipeline)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SpaceError(f"search space file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise SpaceError(f"search space {path} is not valid YAML: {exc}") from None
    space = parse_space(data, str(path))
    if space.objective.metric not in metrics:
        raise SpaceError(
            f"search space {path}: objective metric {space.objective.metric!r} is not a validation metric "
            f"of {pipeline} (one of: {', '.join(metrics)})"
        )
    for key, parameter in space.parameters.items():
        _check_parameter(key, parameter, type(base))
        check_values(key, parameter, base)
    return space
