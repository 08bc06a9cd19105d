"""infra/k8s/: the Kubernetes base job template held to Prefect's own server-side check and
templating, the kubernetes worker's contract, and the Kubernetes API schemas (kubernetes-validate,
strict) for the rendered Job and the manifests beside it; no cluster needed."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import kubernetes_validate
import pytest
import yaml
from prefect.server.schemas.actions import WorkPoolCreate, validate_base_job_template
from prefect.utilities.schema_tools import validate
from prefect.utilities.templating import apply_values, find_placeholders

from infra_files import INFRA, JOB_TEMPLATE, ROOT, job_template, strings_in
from modelgate.stack.deploy import declared_deployments

# The oldest Kubernetes release the template is meant for, and the newest whose schemas
# kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
# The kubernetes worker refuses a manifest without these two in the *pod* spec (a quirk of its
# default template); they are Job fields, so the API server drops them there. Strict schema checks
# see them as unknown fields, so they are set aside for the strict check only.
WORKER_POD_SPEC_KEYS = ("parallelism", "completions")
MANIFESTS = (INFRA / "k8s" / "namespace.yaml", INFRA / "k8s" / "s3-credentials.example.yaml")
REQUIRED_VALUES = {"image": "registry.example.com/modelgate:gpu", "s3_endpoint": "http://s3:8333"}


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


def assert_valid_kubernetes(document: dict) -> None:
    """Strict schema check (unknown fields refused) against every version in KUBERNETES_VERSIONS."""
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = "/".join(str(part) for part in exc.absolute_path)
            raise AssertionError(f"{document['kind']} invalid for Kubernetes {version} at {where}: {exc.message}") from None


def without_worker_pod_keys(manifest: dict) -> dict:
    manifest = copy.deepcopy(manifest)
    pod = manifest["spec"]["template"]["spec"]
    assert all(pod.pop(key) == 1 for key in WORKER_POD_SPEC_KEYS)
    return manifest



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
    job = render_job(REQUIRED_VALUES)
    assert not find_placeholders(json.dumps(job))
    manifest = job["job_manifest"]
    pod = manifest["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "cpu" not in container["resources"]["limits"]  # unset variables leave no key
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert manifest["metadata"]["namespace"] == job["namespace"] == "modelgate"
    assert container["image"] == REQUIRED_VALUES["image"]
    env = {entry["name"]: entry["value"] for entry in container["env"]}
    assert env == {"MODELGATE_S3_ENDPOINT": "http://s3:8333", "MODELGATE_BUCKET": "modelgate"}
    # S3 keys only by reference to the Secret: nothing secret in the template, the pool or the Job.
    assert container["envFrom"] == [{"secretRef": {"name": "modelgate-s3"}}]
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


def test_rendered_job_manifest_passes_the_kubernetes_schemas():
    manifest = render_job(REQUIRED_VALUES)["job_manifest"]
    for version in KUBERNETES_VERSIONS:  # as submitted, unknown fields allowed
        kubernetes_validate.validate(manifest, version, strict=False)
    assert_valid_kubernetes(without_worker_pod_keys(manifest))
    bigger = render_job({**REQUIRED_VALUES, "gpu_count": 4, "cpu_limit": "8", "node_selector": {}})
    assert_valid_kubernetes(without_worker_pod_keys(bigger["job_manifest"]))


def test_the_kubernetes_schema_check_refuses_broken_manifests():
    manifest = without_worker_pod_keys(render_job(REQUIRED_VALUES)["job_manifest"])
    misspelt = copy.deepcopy(manifest)
    pod = misspelt["spec"]["template"]["spec"]
    pod["nodeSelecter"] = pod.pop("nodeSelector")
    with pytest.raises(AssertionError, match="nodeSelecter"):
        assert_valid_kubernetes(misspelt)
    wrong_type = copy.deepcopy(manifest)
    wrong_type["spec"]["template"]["spec"]["tolerations"] = {"key": "nvidia.com/gpu"}
    with pytest.raises(AssertionError, match="at spec/template/spec/tolerations"):
        assert_valid_kubernetes(wrong_type)
    no_container_name = copy.deepcopy(manifest)
    del no_container_name["spec"]["template"]["spec"]["containers"][0]["name"]
    with pytest.raises(AssertionError, match="'name' is a required property"):
        assert_valid_kubernetes(no_container_name)


def test_kubernetes_manifests_pass_the_kubernetes_schemas():
    documents = [doc for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text())]
    assert [doc["kind"] for doc in documents] == ["Namespace", "ServiceAccount", "Secret"]
    for document in documents:
        assert_valid_kubernetes(document)
    account = copy.deepcopy(documents[1])
    account["automountServiceAccountToken"] = "false"
    with pytest.raises(AssertionError, match="ServiceAccount invalid .* at automountServiceAccountToken"):
        assert_valid_kubernetes(account)


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


def prefect_cli(api_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PREFECT_API_URL": api_url}
    command = [sys.executable, "-m", "prefect", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


def create_kubernetes_pool(api_url: str, template: Path) -> str:
    """`prefect work-pool create NAME --type kubernetes --base-job-template FILE`, as documented."""
    name = f"gpu-k8s-{uuid.uuid4().hex[:6]}"
    done = prefect_cli(api_url, "work-pool", "create", name, "--type", "kubernetes", "--base-job-template", str(template))
    assert done.returncode == 0, done.stdout + done.stderr
    return name


def test_prefect_server_accepts_the_kubernetes_pool_as_documented(prefect_server):
    from prefect.client.orchestration import get_client

    name = create_kubernetes_pool(prefect_server, JOB_TEMPLATE)
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


def test_training_deploys_to_the_kubernetes_pool_and_runs_take_job_variables(prefect_server, tmp_path, monkeypatch):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter
    from prefect.client.schemas.sorting import FlowRunSort

    from modelgate.stack.deploy import deploy

    team = job_template()  # the team's defaults, filled in as docs/deploy-team.md does with jq
    for variable, value in REQUIRED_VALUES.items():
        team["variables"]["properties"][variable]["default"] = value
    (tmp_path / "gpu-k8s.json").write_text(json.dumps(team))
    name = create_kubernetes_pool(prefect_server, tmp_path / "gpu-k8s.json")
    monkeypatch.setenv("MODELGATE_WORK_POOL", name)
    result = deploy(prefect_server, ROOT, ["intent-ood/train-intent-ood"])
    assert result.deployments == ["intent-ood/train-intent-ood"] and not result.work_pool_created

    run = prefect_cli(prefect_server, "deployment", "run", "intent-ood/train-intent-ood", "--job-variable", "gpu_count=2")
    assert run.returncode == 0, run.stdout + run.stderr
    with get_client(sync_client=True) as client:
        pool = client.read_work_pool(name)
        deployment = client.read_deployment_by_name("intent-ood/train-intent-ood")
        runs = client.read_flow_runs(  # limit and sort given: this server refuses them as null
            deployment_filter=DeploymentFilter(id={"any_": [deployment.id]}), limit=10, sort=FlowRunSort.ID_DESC
        )
    assert pool.type == "kubernetes" and pool.base_job_template == team  # deploy left the pool alone
    assert deployment.work_pool_name == name
    mine = [r for r in runs if r.work_pool_name == name]
    assert [r.job_variables for r in mine] == [{"gpu_count": 2}]
    with get_client(sync_client=True) as client:  # no worker polls this pool: leave no run behind
        for flow_run in mine:
            client.delete_flow_run(flow_run.id)
    # The server holds job variables to the pool's schema.
    refused = prefect_cli(prefect_server, "deployment", "run", "intent-ood/train-intent-ood", "--job-variable", "gpu_count=0")
    assert refused.returncode != 0 and "gpu_count" in refused.stdout + refused.stderr


def test_the_team_deployment_doc_names_files_and_deployments_that_exist():
    doc = (ROOT / "docs" / "deploy-team.md").read_text()
    paths = set(re.findall(r"\b(?:infra|tests|modelgate|docs)/[\w./-]*\w", doc))
    assert {"infra/k8s/base-job-template.json", "infra/ci/model-gate.yml"} <= paths
    made_by_the_reader = {"infra/.env"}  # copied from infra/.env.example, never committed
    assert not [path for path in paths - made_by_the_reader if not (ROOT / path).exists()]
    commands = doc.replace("\\\n", " ").splitlines()
    named = {word for line in commands if "modelgate deploy" in line or "prefect deployment run" in line
             for word in line.split() if re.fullmatch(r"[a-z][a-z-]*/[a-z][a-z-]*", word)}  # fmt: skip
    declared = set(declared_deployments(ROOT))
    assert "intent-ood/train-intent-ood" in named and named <= declared, named - declared
    assert "prefect worker start --pool gpu-k8s --type kubernetes" in doc
    assert "prefect work-pool create gpu-k8s --type kubernetes --base-job-template" in doc
