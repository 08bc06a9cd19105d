"""The CI workflow in infra/ci/ runs its own commands against a real S3 and Prefect server:
train a candidate -> gate -> promote, and each exit code path of the gate (pass, refused, undecided)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from actions_runner import JobRun
from candidates import register_candidate
from fixtures_clinc import clinc_tiny_preset, write_clinc_config, write_clinc_mirror
from modelgate.registry import Registry

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / "infra" / "ci" / "model-gate.yml"


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory):
    return clinc_tiny_preset(tmp_path_factory.mktemp("preset"))


@pytest.fixture
def ci_env(prefect_server, modelgate_env, tmp_path):
    """The environment of the runner; the workflow's variables and secrets come from _context."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "PREFECT_API_URL"))}
    env["PATH"] = f"{REPO / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"
    env["PREFECT_API_URL"] = prefect_server
    return env


def _workspace(tmp_path: Path) -> Path:
    """The job's working directory (the `uses: actions/checkout` stand-in: modelgate is installed
    from this checkout already); the workflow writes run.json and gate.json here."""
    work = tmp_path / "workspace"
    work.mkdir()
    return work


def _context(env: dict[str, str], **inputs) -> dict:
    return {
        "inputs": {"pipeline": "intent-ood", "profile": "default", "config": "", "candidate": "",
                   "alias": "production", **inputs},
        "vars": {
            "MODELGATE_S3_ENDPOINT": env["MODELGATE_S3_ENDPOINT"],
            "MODELGATE_BUCKET": env["MODELGATE_BUCKET"],
            "PREFECT_API_URL": env["PREFECT_API_URL"],
        },
        "secrets": {
            "MODELGATE_AWS_ACCESS_KEY_ID": env["AWS_ACCESS_KEY_ID"],
            "MODELGATE_AWS_SECRET_ACCESS_KEY": env["AWS_SECRET_ACCESS_KEY"],
        },
        "github": {"actor": "octocat", "workflow": "model-gate", "run_id": "42"},
    }


def test_trained_candidate_passes_the_gate_and_is_promoted(ci_env, tmp_path, object_store, tiny_preset):
    work = _workspace(tmp_path)
    # A gate a tiny random encoder can pass, so the whole happy path runs.
    lenient = {"thresholds": [{"metric": "accuracy", "min": 0.0}]}
    config = write_clinc_config(tmp_path, write_clinc_mirror(tmp_path / "mirror"), tiny_preset, lenient)
    shutil.copy(config, work / "ci.yaml")

    steps = JobRun(WORKFLOW, "gate", _context(ci_env, config="ci.yaml")).run(work, ci_env)
    assert steps["candidate"].exit_code == 0, steps["candidate"].log[-3000:]
    assert steps["candidate"].outputs["ref"] == "intent-ood:1"
    assert steps["gate"].exit_code == 0, steps["gate"].log[-2000:]
    assert steps["promote"].ran and steps["promote"].exit_code == 0, steps["promote"].log[-2000:]
    record = Registry(object_store).get_alias("intent-ood", "production")
    assert record.version == 1 and record.actor == "github:octocat"
    assert record.reason == "model-gate run 42"
    assert ci_env["AWS_SECRET_ACCESS_KEY"] not in "".join(s.log for s in steps.values())


def test_a_refused_or_undecidable_candidate_is_never_promoted(ci_env, tmp_path, object_store):
    registry = Registry(object_store, cache_dir=tmp_path / "cache")
    register_candidate(registry, tmp_path, "intent-ood", 0.40)  # fails its gate
    work = _workspace(tmp_path)

    refused = JobRun(WORKFLOW, "gate", _context(ci_env, candidate="1")).run(work, ci_env)
    assert refused["gate"].exit_code == 1
    assert "::error::gate refused intent-ood:1" in refused["gate"].log
    assert not refused["promote"].ran

    missing = JobRun(WORKFLOW, "gate", _context(ci_env, candidate="7")).run(work, ci_env)
    assert missing["gate"].exit_code == 2
    assert "could not decide" in missing["gate"].log
    assert not missing["promote"].ran
    assert registry.get_alias("intent-ood", "production") is None
