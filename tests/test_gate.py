"""Every branch of the gate: refusals, absolute and change thresholds, baselines, serialisation."""

from __future__ import annotations

import json

import pytest

from modelgate.evaluation.bootstrap import MetricValue
from modelgate.gate import NO_BASELINE, GateConfig, Verdict, evaluate_gate, load_gate_config


def metrics(**values) -> dict[str, MetricValue]:
    """name=value or name=(value, low, high)."""
    out = {}
    for name, spec in values.items():
        value, low, high = spec if isinstance(spec, tuple) else (spec, None, None)
        out[name] = MetricValue(name, value, low, high, 100, name != "ece")
    return out


CANDIDATE = metrics(accuracy=(0.90, 0.88, 0.92), ece=(0.05, 0.04, 0.07), ood_auprc=(0.86, 0.84, 0.88))


def config(**data) -> GateConfig:
    return load_gate_config(data)


# -- refusals --------------------------------------------------------------------------------
def test_no_thresholds_refuses_never_passes():
    for empty in (GateConfig(), load_gate_config(None), load_gate_config({})):
        verdict = evaluate_gate(CANDIDATE, empty, None, None)
        assert verdict.decision == "refuse" and verdict.passed is False
        assert "no thresholds configured" in verdict.reasons[0]
        assert verdict.summary().startswith("REFUSE")


def test_only_change_thresholds_without_baseline_refuses_even_when_skipping():
    cfg = config(change_thresholds=[{"metric": "accuracy", "max_drop": 0.01}])
    verdict = evaluate_gate(CANDIDATE, cfg, None, None)
    assert verdict.decision == "refuse" and not verdict.passed
    assert any("nothing was checked" in r for r in verdict.reasons)
    assert verdict.checks[0].passed is None and NO_BASELINE in verdict.checks[0].note


def test_missing_baseline_with_refuse_policy_refuses():
    cfg = config(thresholds=[{"metric": "accuracy", "min": 0.8}],
                 change_thresholds=[{"metric": "accuracy", "max_drop": 0.01}],
                 on_missing_baseline="refuse")
    verdict = evaluate_gate(CANDIDATE, cfg, None, None)
    assert verdict.decision == "refuse" and not verdict.passed
    assert any(NO_BASELINE in r and "on_missing_baseline=refuse" in r for r in verdict.reasons)


def test_failing_threshold_outranks_a_refusal():
    cfg = config(thresholds=[{"metric": "accuracy", "min": 0.95}],
                 change_thresholds=[{"metric": "accuracy", "max_drop": 0.01}],
                 on_missing_baseline="refuse")
    verdict = evaluate_gate(CANDIDATE, cfg, None, None)
    assert verdict.decision == "fail"
    assert len(verdict.reasons) == 2  # the failure and the refusal are both on record


# -- absolute thresholds ---------------------------------------------------------------------
def test_all_absolute_thresholds_met_passes():
    cfg = config(thresholds=[{"metric": "accuracy", "min": 0.9}, {"metric": "ece", "max": 0.05},
                             {"metric": "ood_auprc", "min": 0.8, "use": "lower"}])
    verdict = evaluate_gate(CANDIDATE, cfg, None, None)
    assert verdict.decision == "pass" and verdict.passed
    assert [c.passed for c in verdict.checks] == [True, True, True]
    assert [c.comparator for c in verdict.checks] == [">=", "<=", ">="]
    assert verdict.reasons == [] and verdict.summary() == f"PASS: 3/3 checks passed ({NO_BASELINE})"


@pytest.mark.parametrize(
    "rule, note",
    [
        ({"metric": "accuracy", "min": 0.91}, "value 0.9 misses >= 0.91"),
        ({"metric": "ece", "max": 0.04}, "value 0.05 misses <= 0.04"),
        # The value passes; the interval bound the rule asks for does not.
        ({"metric": "accuracy", "min": 0.89, "use": "lower"}, "lower bound of the interval 0.88"),
        ({"metric": "ece", "max": 0.06, "use": "upper"}, "upper bound of the interval 0.07"),
    ],
)
def test_absolute_threshold_failures(rule, note):
    verdict = evaluate_gate(CANDIDATE, config(thresholds=[rule]), None, None)
    assert verdict.decision == "fail" and verdict.passed is False
    check = verdict.checks[0]
    assert check.passed is False and check.note.startswith(note)
    assert (check.observed, check.low, check.high) == (
        CANDIDATE[rule["metric"]].value, CANDIDATE[rule["metric"]].low, CANDIDATE[rule["metric"]].high)
    assert verdict.reasons == [f"{rule['metric']}: {check.note}"]


def test_threshold_on_missing_metric_fails_with_a_note():
    verdict = evaluate_gate(CANDIDATE, config(thresholds=[{"metric": "f1", "min": 0.5}]), None, None)
    assert verdict.decision == "fail"
    assert verdict.checks[0].note == "metric 'f1' was not computed"
    assert verdict.checks[0].observed is None


def test_interval_bound_required_but_absent_fails():
    no_interval = metrics(accuracy=0.99)
    cfg = config(thresholds=[{"metric": "accuracy", "min": 0.5, "use": "lower"}])
    verdict = evaluate_gate(no_interval, cfg, None, None)
    assert verdict.decision == "fail"
    assert "no lower bound of its interval" in verdict.checks[0].note


def test_nan_metric_fails():
    verdict = evaluate_gate(metrics(accuracy=float("nan")),
                            config(thresholds=[{"metric": "accuracy", "min": 0.5}]), None, None)
    assert verdict.decision == "fail" and "no value" in verdict.checks[0].note


# -- change thresholds -----------------------------------------------------------------------
BASE_CFG = {"thresholds": [{"metric": "accuracy", "min": 0.5}]}


@pytest.mark.parametrize(
    "rule, baseline, passed, change",
    [
        ({"metric": "accuracy", "max_drop": 0.02}, 0.91, True, 0.01),
        ({"metric": "accuracy", "max_drop": 0.02}, 0.95, False, 0.05),
        # A drop exactly at the limit passes despite float rounding (0.92 - 0.90).
        ({"metric": "accuracy", "max_drop": 0.02}, 0.92, True, 0.02),
        # An improvement is a negative drop.
        ({"metric": "accuracy", "max_drop": 0.0}, 0.80, True, -0.10),
        ({"metric": "ece", "max_rise": 0.01}, 0.03, False, 0.02),
        ({"metric": "ece", "max_rise": 0.01}, 0.045, True, 0.005),
        # 0.86 vs 0.90: a 4.4% relative drop.
        ({"metric": "ood_auprc", "max_drop": 0.05, "relative": True}, 0.90, True, 0.04 / 0.90),
        ({"metric": "ood_auprc", "max_drop": 0.04, "relative": True}, 0.90, False, 0.04 / 0.90),
    ],
)
def test_change_thresholds_against_the_baseline(rule, baseline, passed, change):
    cfg = config(**BASE_CFG, change_thresholds=[rule])
    verdict = evaluate_gate(CANDIDATE, cfg, metrics(**{rule["metric"]: baseline}), "intent-ood:3")
    check = verdict.checks[1]
    assert check.kind == "change" and check.passed is passed
    assert check.change == pytest.approx(change) and check.baseline == baseline
    assert "intent-ood:3" in check.note
    assert verdict.decision == ("pass" if passed else "fail")
    assert "baseline intent-ood:3" in verdict.summary()


def test_relative_change_against_zero_baseline_fails():
    cfg = config(**BASE_CFG, change_thresholds=[{"metric": "ece", "max_rise": 0.1, "relative": True}])
    verdict = evaluate_gate(CANDIDATE, cfg, metrics(ece=0.0), "m:1")
    assert verdict.decision == "fail" and "undefined" in verdict.checks[1].note


def test_change_threshold_on_metric_missing_from_candidate_fails():
    cfg = config(**BASE_CFG, change_thresholds=[{"metric": "f1", "max_drop": 0.1}])
    verdict = evaluate_gate(CANDIDATE, cfg, metrics(f1=0.7), "m:1")
    assert verdict.decision == "fail" and verdict.checks[1].note == "metric 'f1' was not computed"


def test_missing_baseline_with_skip_policy_is_recorded_not_silent():
    cfg = config(**BASE_CFG, change_thresholds=[{"metric": "accuracy", "max_drop": 0.01}])
    verdict = evaluate_gate(CANDIDATE, cfg, None, None)
    assert verdict.decision == "pass" and verdict.passed
    skipped = verdict.checks[1]
    assert skipped.passed is None and skipped.note == f"skipped: {NO_BASELINE}"
    assert skipped.observed == 0.90 and skipped.baseline is None
    assert any(NO_BASELINE in r for r in verdict.reasons)
    assert verdict.summary() == f"PASS: 1/1 checks passed ({NO_BASELINE})"


@pytest.mark.parametrize("policy, decision", [("skip", "pass"), ("refuse", "refuse")])
def test_baseline_without_the_metric_follows_the_policy(policy, decision):
    cfg = config(**BASE_CFG, on_missing_baseline=policy,
                 change_thresholds=[{"metric": "ood_auprc", "max_drop": 0.01}])
    verdict = evaluate_gate(CANDIDATE, cfg, metrics(accuracy=0.9), "m:2")
    assert verdict.decision == decision
    assert verdict.checks[1].passed is None and "baseline m:2 has no ood_auprc" in verdict.checks[1].note


# -- configuration ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "data, message",
    [
        ({"thresholds": [{"metric": "a", "min": 0.1, "max": 0.9}]}, "exactly one of 'min' or 'max'"),
        ({"thresholds": [{"metric": "a"}]}, "exactly one of 'min' or 'max'"),
        ({"thresholds": [{"metric": "a", "min": 0.1, "use": "mean"}]}, "thresholds.0.use"),
        ({"thresholds": [{"metric": "a", "mn": 0.1}]}, "thresholds.0.mn"),
        ({"change_thresholds": [{"metric": "a"}]}, "exactly one of 'max_drop' or 'max_rise'"),
        ({"change_thresholds": [{"metric": "a", "max_drop": -0.1}]}, "change_thresholds.0.max_drop"),
        ({"on_missing_baseline": "ignore"}, "on_missing_baseline"),
    ],
)
def test_invalid_configs_are_rejected_with_their_location(data, message):
    with pytest.raises(ValueError, match="invalid nli.yaml gate") as error:
        load_gate_config(data, source="nli.yaml gate")
    assert message in str(error.value)


def test_defaults():
    cfg = config(thresholds=[{"metric": "a", "min": 0}])
    assert cfg.on_missing_baseline == "skip" and cfg.thresholds[0].use == "value"
    assert cfg.change_thresholds == [] and cfg.change_thresholds is not GateConfig().change_thresholds


# -- serialisation ---------------------------------------------------------------------------
def test_verdict_round_trips_through_json():
    cfg = config(thresholds=[{"metric": "accuracy", "min": 0.95, "use": "lower"}],
                 change_thresholds=[{"metric": "ece", "max_rise": 0.01},
                                    {"metric": "f1", "max_drop": 0.01}])
    verdict = evaluate_gate(CANDIDATE, cfg, metrics(ece=0.02), "toxicity@production")
    data = json.loads(json.dumps(verdict.to_dict(), allow_nan=False))
    assert data["config"]["thresholds"][0]["use"] == "lower"
    restored = Verdict.from_dict(data)
    assert restored == verdict and restored.summary() == verdict.summary()
    # f1 is absent from the baseline, so its change check is skipped, not counted.
    assert restored.summary().startswith("FAIL: 0/2 checks passed (baseline toxicity@production)")
    assert restored.checks[2].passed is None and "\n" not in restored.summary()
    with pytest.raises(ValueError, match="not a gate verdict"):
        Verdict.from_dict({"decision": "pass"})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "-inf"])
def test_a_non_finite_threshold_is_refused_naming_it(value):
    with pytest.raises(ValueError, match="thresholds"):
        load_gate_config({"thresholds": [{"metric": "accuracy", "min": value}]})
