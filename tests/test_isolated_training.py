"""Training in a process of its own: the child's errors come back with their message, its output
lines are passed on, and the in-process switch trains in the caller."""

from __future__ import annotations

import pytest

from modelgate.pipelines import intent_ood
from modelgate.training.isolated import IN_PROCESS_ENV, TrainingProcessError, train_in_subprocess


def test_a_failing_child_reports_its_error_and_output(modelgate_env, monkeypatch):
    monkeypatch.delenv(IN_PROCESS_ENV, raising=False)
    cfg = intent_ood.load_config("quick")
    lines: list[str] = []
    with pytest.raises(TrainingProcessError, match=r"training failed: TypeError: .*bogus"):
        train_in_subprocess(cfg, {"bogus": 1}, log=lines.append)
    # The child's traceback reached the caller's log, line by line.
    assert any("Traceback" in line for line in lines)
    assert any("FeatureSet" in line or "bogus" in line for line in lines)


def test_the_in_process_switch_trains_in_the_caller(modelgate_env, monkeypatch):
    monkeypatch.setenv(IN_PROCESS_ENV, "1")
    cfg = intent_ood.load_config("quick")
    with pytest.raises(TypeError, match="bogus"):
        train_in_subprocess(cfg, {"bogus": 1})
