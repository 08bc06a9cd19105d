"""`modelgate deploy` against a real Prefect server: every deployment of prefect.yaml, with the
typed run form, inactive schedules, the process work pool and the `gpu` concurrency limit."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modelgate.stack.deploy import DeployError, declared_deployments, deploy, find_project_dir
from prefect_ui import api

REPO = Path(__file__).resolve().parents[1]


def test_every_declared_deployment_is_registered_with_its_form_and_schedule(prefect_server, monkeypatch):
    monkeypatch.setenv("MODELGATE_WORK_POOL", "modelgate-deploy-test")
    declared = declared_deployments(REPO)
    assert "intent-ood/train-intent-ood" in declared and "promote-model/promote" in declared
    result = deploy(prefect_server, REPO, gpu_slots=2)
    assert result.deployments == declared and result.work_pool == "modelgate-deploy-test"

    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
    stored = api(prefect_server, "/deployments/filter", {"limit": 50, "offset": 0})
    by_name = {d["name"]: d for d in stored}
    for entry in spec:
        deployment = by_name[entry["name"]]
        assert deployment["work_pool_name"] == "modelgate-deploy-test"
        assert deployment["entrypoint"] == entry["entrypoint"]
        assert deployment["pull_steps"] == [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}
        ]
        properties = deployment["parameter_openapi_schema"]["properties"]
        assert all(p.get("description") for p in properties.values()), entry["name"]
        if entry["name"].startswith("train-"):
            # The UI's profile field is a choice of the pipeline's config profiles.
            profile = properties["profile"]
            choices = profile.get("enum") or [c for o in profile.get("anyOf", []) for c in o.get("enum", [])]
            assert {"default", "quick"} <= set(choices), profile
            [schedule] = deployment["schedules"]
            assert schedule["active"] is False and schedule["schedule"]["cron"] == "0 3 * * 1"

    promote = by_name["promote"]["parameter_openapi_schema"]
    assert promote["required"] == ["model", "version"]
    assert promote["properties"]["version"]["type"] == "integer"

    pool = api(prefect_server, "/work_pools/modelgate-deploy-test")
    assert pool["type"] == "process"
    limit = api(prefect_server, "/concurrency_limits/tag/gpu")
    assert limit["concurrency_limit"] == 2

    # Deploying again updates in place: no duplicates.
    deploy(prefect_server, REPO, ["promote-model/promote"])
    again = api(prefect_server, "/deployments/filter", {"limit": 50, "offset": 0})
    assert len(again) == len(stored)


def test_bad_project_files_are_named(tmp_path):
    with pytest.raises(DeployError, match="no prefect.yaml"):
        find_project_dir(tmp_path)
    (tmp_path / "flows").mkdir()
    (tmp_path / "prefect.yaml").write_text(yaml.safe_dump(
        {"deployments": [{"name": "x", "entrypoint": "flows/missing.py:f"}]}
    ))
    assert find_project_dir(tmp_path) == tmp_path
    with pytest.raises(DeployError, match="points at missing flows/missing.py"):
        declared_deployments(tmp_path)
    with pytest.raises(DeployError, match=r"not declared in prefect.yaml: \['nope/x'\]"):
        (tmp_path / "flows" / "missing.py").write_text("from prefect import flow\n\n@flow(name='real')\ndef f():\n    pass\n")
        deploy("http://127.0.0.1:9/api", tmp_path, ["nope/x"])


@pytest.mark.parametrize("pipeline", ["intent-ood", "nli", "job-similarity", "toxicity"])
def test_the_run_form_offers_every_profile_of_the_pipeline(pipeline):
    """The flow's `profile` choices (the UI's select) are exactly `default` and the config's profiles."""
    import typing

    from modelgate.flows import FLOWS

    root = REPO / "modelgate" / "configs" / f"{pipeline}.yaml"
    profiles = {"default", *(yaml.safe_load(root.read_text()).get("profiles") or {})}
    hints = typing.get_type_hints(FLOWS[pipeline].fn)
    assert set(typing.get_args(hints["profile"])) == profiles


def test_a_deployments_own_pool_job_variables_trigger_and_concurrency_are_honoured(prefect_server, tmp_path, monkeypatch):
    """A team's prefect.yaml (a copy with its own pool): what the server stores, read back."""
    import shutil

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.workers.process import ProcessWorker

    monkeypatch.setenv("MODELGATE_WORK_POOL", "modelgate-deploy-test")
    shutil.copytree(REPO / "flows", tmp_path / "flows")
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    [entry] = [e for e in spec["deployments"] if e["name"] == "train-nli"]
    entry["work_pool"] = {"name": "team-gpu", "work_queue_name": "default",
                          "job_variables": {"env": {"CUDA_VISIBLE_DEVICES": "0"}}}
    entry["concurrency_limit"] = {"limit": 1, "collision_strategy": "CANCEL_NEW"}
    entry["triggers"] = [{"type": "event", "enabled": True, "match": {"prefect.resource.id": "modelgate.model.nli"},
                          "expect": ["modelgate.gate.refused"], "parameters": {"profile": "quick"}}]
    spec["deployments"] = [entry]
    (tmp_path / "prefect.yaml").write_text(yaml.safe_dump(spec))

    with pytest.raises(DeployError, match="uses work pool 'team-gpu', which does not exist"):
        deploy(prefect_server, tmp_path)
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name="team-gpu", type="process",
                                               base_job_template=ProcessWorker.get_default_base_job_template()))
    for _ in range(2):  # deploying twice replaces the trigger's automation, never duplicates it
        assert deploy(prefect_server, tmp_path).deployments == ["nli/train-nli"]

    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("nli/train-nli")
    # Explicit paging: this client's read_automations sends nulls the server rejects.
    automations = [a for a in api(prefect_server, "/automations/filter", {"limit": 200, "offset": 0, "sort": "CREATED_DESC"})
                   if any(action.get("deployment_id") == str(deployment.id) for action in a["actions"])]
    assert deployment.work_pool_name == "team-gpu"
    assert deployment.job_variables == {"env": {"CUDA_VISIBLE_DEVICES": "0"}}
    assert deployment.global_concurrency_limit.limit == 1
    assert deployment.concurrency_options.collision_strategy == "CANCEL_NEW"
    [automation] = automations
    assert automation["trigger"]["expect"] == ["modelgate.gate.refused"]
    assert automation["actions"][0]["parameters"] == {"profile": "quick"}


def test_a_malformed_concurrency_limit_is_named(prefect_server, tmp_path):
    shutil_spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    entry = dict(shutil_spec["deployments"][0], concurrency_limit={"limit": "one"})
    (tmp_path / "flows").symlink_to(REPO / "flows")
    (tmp_path / "prefect.yaml").write_text(yaml.safe_dump({**shutil_spec, "deployments": [entry]}))
    with pytest.raises(DeployError, match="concurrency_limit of 'train-intent-ood' must be a number"):
        deploy(prefect_server, tmp_path)
