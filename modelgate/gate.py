"""The gate: a candidate's metrics held against absolute thresholds and against production.

Rules (docs/DESIGN.md): no thresholds configured means "refuse", never a silent pass; a threshold
on a metric that was not computed fails; change thresholds compare with the current production
version when there is one, and otherwise follow ``on_missing_baseline`` ("skip" records the skip
as 'no production baseline' in the verdict, "refuse" refuses the candidate).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from modelgate.evaluation.bootstrap import MetricValue

NO_BASELINE = "no production baseline"
CHANGE_TOLERANCE = 1e-12


class Threshold(BaseModel):
    """Absolute bound on a metric: exactly one of min/max, on its value or an interval bound."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    metric: str = Field(min_length=1)
    min: float | None = None
    max: float | None = None
    use: Literal["value", "lower", "upper"] = "value"

    @model_validator(mode="after")
    def _exactly_one_bound(self) -> "Threshold":
        if (self.min is None) == (self.max is None):
            raise ValueError(f"threshold on {self.metric!r} needs exactly one of 'min' or 'max'")
        return self


class ChangeThreshold(BaseModel):
    """Largest allowed drop or rise from the production value (absolute, or relative to it)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    metric: str = Field(min_length=1)
    max_drop: float | None = Field(default=None, ge=0)
    max_rise: float | None = Field(default=None, ge=0)
    relative: bool = False

    @model_validator(mode="after")
    def _exactly_one_limit(self) -> "ChangeThreshold":
        if (self.max_drop is None) == (self.max_rise is None):
            raise ValueError(
                f"change threshold on {self.metric!r} needs exactly one of 'max_drop' or 'max_rise'"
            )
        return self


class GateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    thresholds: list[Threshold] = Field(default_factory=list)
    change_thresholds: list[ChangeThreshold] = Field(default_factory=list)
    on_missing_baseline: Literal["skip", "refuse"] = "skip"

    @property
    def is_empty(self) -> bool:
        return not self.thresholds and not self.change_thresholds


def load_gate_config(data: dict[str, Any] | None, source: str = "gate config") -> GateConfig:
    """Validate a mapping (e.g. the ``gate:`` section of a pipeline config) into a GateConfig."""
    try:
        return GateConfig.model_validate(data or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ValueError(f"invalid {source}: {problems}") from None


class GateCheck(BaseModel):
    """One row of the verdict table. ``passed`` is None for a check that was not evaluated."""

    kind: Literal["absolute", "change"]
    metric: str
    comparator: str
    threshold: float
    observed: float | None = None
    low: float | None = None
    high: float | None = None
    baseline: float | None = None
    passed: bool | None = None
    note: str = ""
    use: str = "value"
    change: float | None = None


class Verdict(BaseModel):
    """The gate's decision (a typed stage result), stored with the version it judged."""

    passed: bool
    decision: Literal["pass", "fail", "refuse"]
    reasons: list[str]
    checks: list[GateCheck] = Field(default_factory=list)
    baseline_ref: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)

    def summary(self) -> str:
        evaluated = [c for c in self.checks if c.passed is not None]
        failed = [c for c in evaluated if not c.passed]
        passed = len(evaluated) - len(failed)
        head = f"{self.decision.upper()}: {passed}/{len(evaluated)} checks passed"
        baseline = f"baseline {self.baseline_ref}" if self.baseline_ref else NO_BASELINE
        tail = f" - {'; '.join(self.reasons)}" if self.decision != "pass" and self.reasons else ""
        return f"{head} ({baseline}){tail}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, NaN as null, with the one-line summary beside the fields."""
        data = self.model_dump(mode="json")
        data["checks"] = [
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in check.items()}
            for check in data["checks"]
        ]
        data["summary"] = self.summary()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Verdict":
        try:
            return cls.model_validate({k: v for k, v in data.items() if k != "summary"})
        except ValidationError as exc:
            raise ValueError(f"not a gate verdict: {exc}") from None


def _finite(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def _check_absolute(rule: Threshold, metric: MetricValue | None) -> GateCheck:
    comparator, limit = (">=", rule.min) if rule.min is not None else ("<=", rule.max)
    check = GateCheck(kind="absolute", metric=rule.metric, comparator=comparator, threshold=limit,
                      passed=False, use=rule.use)
    if metric is None:
        check.note = f"metric {rule.metric!r} was not computed"
        return check
    check.observed, check.low, check.high = metric.value, metric.low, metric.high
    compared = {"value": metric.value, "lower": metric.low, "upper": metric.high}[rule.use]
    if not _finite(compared):
        what = "value" if rule.use == "value" else f"{rule.use} bound of its interval"
        check.note = f"{rule.metric} has no {what} to compare"
        return check
    check.passed = bool(compared >= limit if comparator == ">=" else compared <= limit)
    what = "value" if rule.use == "value" else f"{rule.use} bound of the interval"
    verb = "meets" if check.passed else "misses"
    check.note = f"{what} {compared:.4g} {verb} {comparator} {limit:.4g}"
    return check


def _check_change(
    rule: ChangeThreshold,
    metric: MetricValue | None,
    baseline: MetricValue | None,
    baseline_ref: str | None,
) -> GateCheck:
    direction, limit, comparator = _change_rule(rule)
    check = GateCheck(kind="change", metric=rule.metric, comparator=comparator, threshold=limit, passed=False)
    if metric is None:
        check.note = f"metric {rule.metric!r} was not computed"
        return check
    check.observed, check.low, check.high = metric.value, metric.low, metric.high
    check.baseline = baseline.value
    if not (_finite(metric.value) and _finite(baseline.value)):
        check.note = f"{rule.metric} is NaN in the candidate or in baseline {baseline_ref}"
        return check
    change = metric.value - baseline.value if direction == "rise" else baseline.value - metric.value
    if rule.relative:
        if baseline.value == 0:
            check.note = f"relative change is undefined: baseline {rule.metric} is 0"
            return check
        change /= abs(baseline.value)
    check.change = change
    # A difference of two floats carries rounding error (0.92 - 0.91 > 0.01): a drop equal to the
    # limit must pass, so compare with a tolerance far below any meaningful metric change.
    check.passed = bool(change <= limit + CHANGE_TOLERANCE)
    against = f"baseline {baseline_ref}" if baseline_ref else "the baseline"
    verb = "within" if check.passed else "exceeds"
    check.note = f"{comparator.rsplit(' ', 1)[0]} {change:.4g} vs {against}: {verb} {limit:.4g}"
    return check


def _change_rule(rule: ChangeThreshold) -> tuple[str, float, str]:
    """(direction, limit, comparator text) of a change threshold."""
    if rule.max_drop is not None:
        direction, limit = "drop", rule.max_drop
    else:
        direction, limit = "rise", rule.max_rise
    return direction, limit, f"{'relative ' if rule.relative else ''}{direction} <="


def _skipped_change(rule: ChangeThreshold, metric: MetricValue | None, note: str) -> GateCheck:
    _, limit, comparator = _change_rule(rule)
    observed = metric.value if metric else None
    low, high = (metric.low, metric.high) if metric else (None, None)
    return GateCheck(
        kind="change", metric=rule.metric, comparator=comparator, threshold=limit,
        observed=observed, low=low, high=high, note=note,
    )


def evaluate_gate(
    metrics: dict[str, MetricValue],
    config: GateConfig,
    baseline: dict[str, MetricValue] | None = None,
    baseline_ref: str | None = None,
) -> Verdict:
    """Hold ``metrics`` against ``config``; ``baseline`` is the production version's metrics."""
    snapshot = config.model_dump()
    if config.is_empty:
        reason = "no thresholds configured: the gate never passes by default"
        return Verdict(passed=False, decision="refuse", reasons=[reason], baseline_ref=baseline_ref,
                       config=snapshot)

    checks = [_check_absolute(rule, metrics.get(rule.metric)) for rule in config.thresholds]
    refusals: list[str] = []
    for rule in config.change_thresholds:
        current = metrics.get(rule.metric)
        previous = None if baseline is None else baseline.get(rule.metric)
        if previous is not None:
            checks.append(_check_change(rule, current, previous, baseline_ref))
            continue
        if baseline is None:
            missing = NO_BASELINE
        else:
            missing = f"baseline {baseline_ref} has no {rule.metric}"
        if config.on_missing_baseline == "refuse":
            checks.append(_skipped_change(rule, current, f"{missing}: refused"))
            refusals.append(
                f"{missing} for change threshold on {rule.metric} (on_missing_baseline=refuse)"
            )
        else:
            checks.append(_skipped_change(rule, current, f"skipped: {missing}"))

    reasons = [f"{c.metric}: {c.note}" for c in checks if c.passed is False]
    evaluated = [c for c in checks if c.passed is not None]
    if reasons:
        decision = "fail"
    elif refusals:
        decision = "refuse"
    elif not evaluated:
        decision = "refuse"
        refusals.append(f"nothing was checked: only change thresholds, and {NO_BASELINE}")
    else:
        decision = "pass"
    if decision == "pass" and any(c.passed is None for c in checks):
        reasons.append(f"change thresholds skipped: {NO_BASELINE}" if baseline is None
                       else "some change thresholds skipped: metric missing from the baseline")
    return Verdict(passed=decision == "pass", decision=decision, reasons=reasons + refusals,
                   checks=checks, baseline_ref=baseline_ref, config=snapshot)

