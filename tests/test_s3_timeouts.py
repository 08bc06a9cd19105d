"""A hung or killed S3 ends a command quickly with one line naming the endpoint (real SeaweedFS,
stopped with SIGSTOP or killed with SIGKILL while `modelgate registry list` waits on it)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from modelgate.settings import Credentials
from modelgate.stack.seaweedfs import WeedPorts, start_seaweedfs
from modelgate.stack.processes import group_members

BOUND_S = 60  # what a person waiting on `registry list` should at most wait for a verdict
MODELGATE = str(Path(sys.executable).parent / "modelgate")


def _registry_list(server, bucket: str) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(
        MODELGATE_S3_ENDPOINT=server.endpoint,
        MODELGATE_BUCKET=bucket,
        AWS_ACCESS_KEY_ID=server.credentials.access_key,
        AWS_SECRET_ACCESS_KEY=server.credentials.secret_key,
    )
    return subprocess.Popen(
        [MODELGATE, "registry", "list"], env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def _signal_group(pid: int, sig: int) -> None:
    for member in group_members(pid):
        os.kill(member, sig)


def test_registry_list_against_a_hung_s3_fails_within_the_bound(s3_server, object_store):
    object_store.put_json("registry/m/versions/1/manifest.json", {"version": 1})
    started = time.monotonic()
    _signal_group(s3_server.pid, signal.SIGSTOP)
    try:
        command = _registry_list(s3_server, object_store.bucket)
        try:
            _, stderr = command.communicate(timeout=BOUND_S + 30)
        finally:
            command.kill()
        elapsed = time.monotonic() - started
    finally:
        _signal_group(s3_server.pid, signal.SIGCONT)
    assert command.returncode != 0
    assert elapsed < BOUND_S, f"{elapsed:.0f} s"
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert f"S3 at {s3_server.endpoint} did not answer within" in lines[0]
    assert object_store.exists("registry/m/versions/1/manifest.json")  # it serves again


def test_s3_killed_during_a_command_is_named_in_one_line(tmp_path):
    credentials = Credentials("AK" + secrets.token_hex(8).upper(), secrets.token_urlsafe(24))
    server = start_seaweedfs(tmp_path / "data", WeedPorts.free(), credentials, tmp_path / "weed.log")
    command = None
    try:
        store = server.store("doomed")
        store.ensure_bucket()
        _signal_group(server.pid, signal.SIGSTOP)  # the command's request is in flight...
        command = _registry_list(server, "doomed")
        time.sleep(3)
        started = time.monotonic()
        _signal_group(server.pid, signal.SIGKILL)  # ...when S3 dies
        _, stderr = command.communicate(timeout=BOUND_S)
        elapsed = time.monotonic() - started
    finally:
        if command is not None:
            command.kill()
        server.stop()
    assert command.returncode != 0 and elapsed < 30, (command.returncode, elapsed)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert server.endpoint in lines[0] and "Traceback" not in stderr
