"""Shared fixtures: a real SeaweedFS S3 server, a fresh bucket per test, settings pointing at them,
and a temporary Prefect server. Nothing is mocked; every server binds 127.0.0.1 on free ports."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

# Before anything imports prefect: no telemetry (no network here) and no writes to ~/.prefect.
_PREFECT_HOME = tempfile.mkdtemp(prefix="modelgate-test-prefect-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"

from modelgate.settings import Credentials  # noqa: E402
from modelgate.stack.seaweedfs import SeaweedServer, WeedPorts, start_seaweedfs  # noqa: E402
from modelgate.storage import ObjectStore, StorageError  # noqa: E402


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_PREFECT_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> SeaweedServer:
    """A real `weed mini` for the whole session; only its generated keys are accepted.

    Attributes: endpoint, credentials (access_key/secret_key), ports, data_dir, log_file;
    server.store(bucket) gives an ObjectStore on it."""
    root = tmp_path_factory.mktemp("seaweedfs")
    credentials = Credentials("TEST" + secrets.token_hex(8).upper(), secrets.token_urlsafe(24))
    server = start_seaweedfs(root / "data", WeedPorts.free(), credentials, root / "weed.log")
    yield server
    server.stop()


@pytest.fixture
def object_store(s3_server: SeaweedServer) -> ObjectStore:
    """An ObjectStore on a fresh, empty bucket, deleted after the test."""
    store = s3_server.store(f"test-{uuid.uuid4().hex[:16]}")
    store.ensure_bucket()
    yield store
    try:
        # Each SeaweedFS bucket holds volumes of its own: give them back.
        store.delete_bucket()
    except StorageError:
        pass


@pytest.fixture
def modelgate_env(monkeypatch, tmp_path: Path, s3_server: SeaweedServer, object_store: ObjectStore):
    """Environment so that load_settings() talks to the test server and the fresh bucket.

    Returns the MODELGATE_HOME path."""
    home = tmp_path / "modelgate-home"
    home.mkdir()
    monkeypatch.setenv("MODELGATE_HOME", str(home))
    monkeypatch.setenv("MODELGATE_S3_ENDPOINT", s3_server.endpoint)
    monkeypatch.setenv("MODELGATE_BUCKET", object_store.bucket)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.credentials.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.credentials.secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return home


@pytest.fixture(scope="session")
def prefect_server() -> str:
    """A temporary Prefect server (SQLite) for the session; returns its API URL, which is also
    the active PREFECT_API_URL setting while the session runs."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=300):
        yield PREFECT_API_URL.value()


@pytest.fixture
def flow_env(monkeypatch, modelgate_env, prefect_server):
    """The test's bucket and home (modelgate_env) with flows reporting to the session's Prefect server."""
    monkeypatch.setenv("PREFECT_API_URL", prefect_server)
    return modelgate_env
