"""infra/k8s/: the Kubernetes base job template held to Prefect's own server-side check and
templating, the kubernetes worker's contract, and the manifests beside it; no cluster needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
import yaml
from prefect.server.schemas.actions import WorkPoolCreate, validate_base_job_template
from prefect.utilities.schema_tools import validate
from prefect.utilities.templating import apply_values, find_placeholders

from infra_files import INFRA, JOB_TEMPLATE, ROOT, job_template, strings_in


def prefect_default_kubernetes_template() -> dict:
    """The kubernetes worker's default template as this Prefect release ships it."""
    import prefect

    views = Path(prefect.__file__).parent / "server/api/collections_data/views"
    workers = json.loads((views / "aggregate-worker-metadata.json").read_text())
    return workers["prefect-kubernetes"]["kubernetes"]["default_base_job_configuration"]


def render_job(job_variables: dict) -> dict:
    """The job configuration a kubernetes worker builds: variable defaults, overridden, applied."""
    template = job_template()
    properties = template["variables"]["properties"]
    values = {name: spec["default"] for name, spec in properties.items() if "default" in spec}
    values.update(job_variables)
    return apply_values(template["job_configuration"], values)



# -- Kubernetes base job template ------------------------------------------------------------
def test_job_template_passes_prefects_work_pool_check():
    template = job_template()
    assert validate_base_job_template(template) is template
    pool = WorkPoolCreate(name="gpu-k8s", type="kubernetes", base_job_template=template)
    assert pool.base_job_template["variables"]["properties"]["gpu_count"]["default"] == 1
    broken = job_template()
    del broken["variables"]["properties"]["s3_secret_name"]
    with pytest.raises(ValueError, match="s3_secret_name"):
        validate_base_job_template(broken)


def test_job_template_placeholders_and_variables_match_both_ways():
    template = job_template()
    used = {p.name for p in find_placeholders(json.dumps(template["job_configuration"]))}
    declared = set(template["variables"]["properties"])
    assert used == declared, f"unused: {declared - used}; undeclared: {used - declared}"


def test_job_template_keeps_the_kubernetes_worker_contract():
    default = prefect_default_kubernetes_template()
    template = job_template()
    assert set(default["job_configuration"]) == set(template["job_configuration"])
    assert set(default["variables"]["properties"]) <= set(template["variables"]["properties"])
    # Literal values of Prefect's default manifest (batch/v1 Job, one pod, never restarted,
    # container `prefect-job`) are what the worker checks; placeholders may be refined.
    mine = dict(strings_in(template["job_configuration"]["job_manifest"]))
    for path, value in strings_in(default["job_configuration"]["job_manifest"]):
        if not find_placeholders(value) and "/env" not in path:
            assert mine.get(path) == value, path
    spec = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    assert (spec["parallelism"], spec["completions"], spec["restartPolicy"]) == (1, 1, "Never")
    assert template["job_configuration"]["env"] == "{{ env }}"


def test_job_template_renders_a_gpu_job_with_secrets_from_kubernetes():
    job = render_job({"image": "registry.example.com/modelgate:gpu", "s3_endpoint": "http://s3:8333"})
    assert not find_placeholders(json.dumps(job))
    manifest = job["job_manifest"]
    pod = manifest["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "cpu" not in container["resources"]["limits"]  # unset variables leave no key
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert manifest["metadata"]["namespace"] == job["namespace"] == "modelgate"
    env = {entry["name"]: entry for entry in container["env"]}
    assert env["MODELGATE_S3_ENDPOINT"]["value"] == "http://s3:8333"
    assert env["MODELGATE_BUCKET"]["value"] == "modelgate"
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert "value" not in env[key]
        assert env[key]["valueFrom"]["secretKeyRef"] == {"name": "modelgate-s3", "key": key}
    bigger = render_job({"image": "i", "s3_endpoint": "e", "gpu_count": 4, "node_selector": {}})
    pod = bigger["job_manifest"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 4
    assert pod["nodeSelector"] == {}


def test_job_template_refuses_bad_job_variables():
    schema = job_template()["variables"]
    good = {"image": "registry.example.com/modelgate:gpu", "gpu_count": 2, "s3_endpoint": "http://s3"}
    # The same check Prefect runs on a deployment's job variables.
    validate(good, schema, raise_on_error=True, preprocess=True, ignore_required=True)
    for bad in ({"gpu_count": 0}, {"gpu_count": "two"}, {"image_pull_policy": "Sometimes"}):
        with pytest.raises(Exception, match="gpu_count|image_pull_policy|Sometimes|two|0"):
            validate(bad, schema, raise_on_error=True, preprocess=True, ignore_required=True)
    assert set(schema["required"]) == {"image", "s3_endpoint"}


def test_kubernetes_manifests_match_the_template_defaults():
    properties = job_template()["variables"]["properties"]
    documents = list(yaml.safe_load_all((INFRA / "k8s" / "namespace.yaml").read_text()))
    kinds = {doc["kind"]: doc for doc in documents}
    assert kinds["Namespace"]["metadata"]["name"] == properties["namespace"]["default"]
    account = kinds["ServiceAccount"]
    assert account["metadata"]["name"] == properties["service_account_name"]["default"]
    assert account["automountServiceAccountToken"] is False
    secret = yaml.safe_load((INFRA / "k8s" / "s3-credentials.example.yaml").read_text())
    assert secret["metadata"]["name"] == properties["s3_secret_name"]["default"]
    assert secret["metadata"]["namespace"] == properties["namespace"]["default"]
    assert secret["stringData"] == {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}


def test_prefect_server_accepts_the_kubernetes_pool_as_documented(prefect_server):
    from prefect.client.orchestration import get_client

    name = f"gpu-k8s-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "PREFECT_API_URL": prefect_server}
    command = [sys.executable, "-m", "prefect", "work-pool", "create", name, "--type", "kubernetes",
               "--base-job-template", str(JOB_TEMPLATE)]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    with get_client(sync_client=True) as client:
        pool = client.read_work_pool(name)
    assert pool.type == "kubernetes"
    assert pool.base_job_template == job_template()
    # A placeholder without a variable is refused by the server's API, naming it.
    broken = job_template()
    del broken["variables"]["properties"]["gpu_count"]
    body = {"name": f"{name}-broken", "type": "kubernetes", "base_job_template": broken}
    refused = httpx.post(f"{prefect_server}/work_pools/", json=body, timeout=60)
    assert refused.status_code == 422 and "gpu_count" in refused.text
