"""The local stack against real processes: SeaweedFS (`weed mini`) and a Prefect server."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys

import pytest

from modelgate.stack.processes import free_port, group_members, process_alive
from modelgate.stack.seaweedfs import WeedPorts
from modelgate.settings import Credentials, load_settings
from modelgate.stack import (
    PortInUseError,
    ensure_stack,
    stack_credentials,
    stack_down,
    stack_status,
    stack_up,
)
from modelgate.storage import ObjectStore, StorageAuthError, StorageUnreachable
from stack_env import local_stack_env as _stack_env


def test_s3_server_refuses_wrong_keys_and_accepts_right_ones(s3_server, object_store):
    object_store.put_bytes("hello.txt", b"hi")
    assert s3_server.store(object_store.bucket).get_bytes("hello.txt") == b"hi"

    wrong_secret = Credentials(s3_server.credentials.access_key, "not-the-secret")
    with pytest.raises(StorageAuthError) as excinfo:
        s3_server.store(object_store.bucket, wrong_secret).get_bytes("hello.txt")
    assert "not-the-secret" not in str(excinfo.value)

    unknown_key = Credentials("AKIAUNKNOWN0000", "whatever")
    with pytest.raises(StorageAuthError):
        s3_server.store(object_store.bucket, unknown_key).put_bytes("intruder.txt", b"x")
    assert not object_store.exists("intruder.txt")


def test_conditional_writes_are_enforced(object_store):
    from modelgate.storage import PreconditionFailed

    etag = object_store.put_bytes("k", b"v1", if_none_match=True)
    with pytest.raises(PreconditionFailed):
        object_store.put_bytes("k", b"v2", if_none_match=True)
    new_etag = object_store.put_bytes("k", b"v2", if_match=etag)
    with pytest.raises(PreconditionFailed):
        object_store.put_bytes("k", b"v3", if_match=etag)
    assert object_store.get_with_etag("k") == (b"v2", new_etag)


def test_modelgate_env_points_load_settings_at_the_test_server(modelgate_env, object_store):
    settings = load_settings()
    assert settings.home == modelgate_env
    store = ObjectStore.from_settings(settings)
    store.put_json("probe.json", {"ok": 1})
    assert object_store.get_json("probe.json") == {"ok": 1}


def test_unreachable_endpoint_is_reported_clearly():
    nowhere = f"http://127.0.0.1:{free_port()}"
    creds = Credentials("a", "b")
    store = ObjectStore.connect(nowhere, "nothing", credentials=creds, max_attempts=1)
    with pytest.raises(StorageUnreachable, match="modelgate stack up"):
        store.ping()


def test_weed_ports_are_distinct_and_derived_from_the_s3_port():
    ports = WeedPorts.derived(8333)
    values = list(ports.listening().values())
    assert len(set(values)) == len(values)
    assert ports.s3 == 8333 and min(values) == 8333
    assert ports.admin_grpc == ports.admin + 10000
    free = WeedPorts.free().listening().values()
    assert len(set(free)) == len(list(free))


def test_port_taken_by_another_process_is_named_with_its_variable(monkeypatch, tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        _stack_env(monkeypatch, tmp_path, s3_port=free_port(), prefect_port=taken)
        with pytest.raises(PortInUseError, match=f"port {taken}.*MODELGATE_PREFECT_PORT"):
            stack_up(load_settings())
    # Every port is checked before anything starts: S3 (free) was not started either.
    after = stack_status(load_settings(), probe=False)
    assert [s.state for s in after.services] == ["stopped", "stopped", "stopped"]
    assert not (tmp_path / "home" / "stack" / "run" / "s3.json").exists()


def _descendants(pid: int) -> set[int]:
    """pid and every process below it (from /proc ppid links)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                raw = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            parents[int(entry)] = int(raw[raw.rindex(")") + 2 :].split()[1])
    found, frontier = {pid}, [pid]
    while frontier:
        current = frontier.pop()
        children = {child for child, parent in parents.items() if parent == current}
        frontier += list(children - found)
        found |= children
    return found


def test_stack_up_status_down_leaves_no_process(monkeypatch, tmp_path):
    _stack_env(monkeypatch, tmp_path, s3_port=free_port(), prefect_port=free_port())
    settings = load_settings()

    # A stale pid file (a dead process) must not count as running.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run_dir = settings.stack_dir / "run"
    run_dir.mkdir(parents=True)
    (run_dir / "s3.json").write_text(json.dumps({"pid": dead.pid}))
    assert stack_status(settings).service("s3").state == "stopped"
    assert not (run_dir / "s3.json").exists()

    try:
        started = stack_up(settings)
        assert started.all_running, started.to_dict()
        assert all(s.healthy for s in started.services), started.to_dict()
        pids = {s.name: s.pid for s in started.services}
        family = set().union(*(_descendants(pid) for pid in pids.values()))

        creds_file = settings.local_credentials_file
        assert stat.S_IMODE(creds_file.stat().st_mode) == 0o600
        # Prefect's database (it holds presigned links) and the logs: owner only, in a 0700 home.
        assert stat.S_IMODE(settings.home.stat().st_mode) == 0o700
        private = [settings.stack_dir / "prefect" / "prefect.db"]
        private += [settings.stack_dir / "logs" / f"{name}.log" for name in pids]
        assert {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in private} == {
            str(p): "0o600" for p in private
        }
        creds = stack_credentials(settings)
        dumped = json.dumps(started.to_dict()) + started.describe()
        assert creds.secret_key not in dumped and creds.access_key in dumped
        for service in started.services:
            assert creds.secret_key not in open(service.log_file).read()

        # The product's settings (generated keys from the file) reach the stack's S3 and bucket.
        store = ObjectStore.from_settings(settings)
        store.put_bytes("x", b"1")
        assert store.get_bytes("x") == b"1"
        bad = Credentials(creds.access_key, "bad")
        wrong = ObjectStore.connect(settings.endpoint_url, settings.bucket, credentials=bad)
        with pytest.raises(StorageAuthError):
            wrong.get_bytes("x")

        # Idempotent: nothing new is started.
        again = ensure_stack(settings)
        assert {s.name: s.pid for s in again.services} == pids
        assert stack_status(settings).to_dict()["services"]["prefect"]["url"].endswith(
            f":{settings.prefect_port}/api"
        )
    finally:
        stopped = stack_down(settings)

    assert not stopped.all_running
    assert all(s.state == "stopped" and s.pid is None for s in stopped.services)
    for pid in pids.values():
        assert group_members(pid) == []
    assert [pid for pid in family if process_alive(pid)] == []
    assert not any((run_dir / f"{name}.json").exists() for name in pids)
    # Stopping an already stopped stack is a no-op.
    assert not stack_down(settings).all_running


def test_prefect_server_fixture_records_flow_runs(prefect_server):
    import urllib.request

    from prefect import flow
    from prefect.client.orchestration import get_client

    with urllib.request.urlopen(f"{prefect_server}/health", timeout=10) as response:
        assert response.status == 200

    @flow(name="fixture-probe")
    def add(a: int, b: int) -> int:
        return a + b

    state = add(2, 3, return_state=True)
    assert state.result() == 5
    with get_client(sync_client=True) as client:
        assert str(client.api_url).rstrip("/") == prefect_server.rstrip("/")
        recorded = client.read_flow_run(state.state_details.flow_run_id)
    assert recorded.state.is_completed()
