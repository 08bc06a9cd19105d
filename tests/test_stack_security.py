"""The local stack's SeaweedFS against callers without credentials, on every port it listens on,
and the privacy of what the stack writes, against a real `modelgate stack up` (S3 only)."""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import stat
import subprocess
import sys
import urllib.error
import urllib.request
import uuid

import pytest

from modelgate.settings import load_settings
from modelgate.stack import stack_credentials, stack_down, stack_up
from modelgate.stack.processes import free_port, group_members
from modelgate.storage import ObjectStore
from stack_env import local_stack_env

SECRET = b"model-weights-nobody-else-may-read"
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A stack's SeaweedFS with one object in its bucket; yields (settings, store)."""
    with pytest.MonkeyPatch.context() as patch:
        local_stack_env(patch, tmp_path_factory.mktemp("stack"), free_port(), free_port())
        # A user's own AWS keys in the environment must not become the stack's identity.
        patch.setenv("AWS_ACCESS_KEY_ID", "AKIAUSERSOWNKEY00000")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "users-own-secret-key")
        settings = load_settings()
        try:
            stack_up(settings, services=("s3",))
            store = ObjectStore.from_settings(settings)
            store.put_bytes("registry/m/versions/1/model.keras", SECRET)
            yield settings, store
        finally:
            stack_down(settings)


def _listening_ports(pids: list[int]) -> dict[int, str]:
    """Every listening TCP port of these processes -> its bound address (from /proc)."""
    inodes = set()
    for pid in pids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in open(table).read().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                address, port = fields[1].rsplit(":", 1)
                ports[int(port, 16)] = address
    return ports


def _http(method: str, url: str, body: bytes | None = None, headers=None) -> tuple[int, bytes]:
    """(status, body) of an anonymous request; status 0 when the port refused the exchange
    (TLS wanting a client certificate, connection reset, not HTTP)."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, exc.read()
        except (OSError, http.client.HTTPException):  # the server closed before its error body
            return exc.code, b""
    except (urllib.error.URLError, OSError, ValueError, ConnectionError):
        return 0, b""


def _anonymous_attempts(port: int, bucket: str, key: str) -> list[tuple[str, int, bytes]]:
    """Read, list, write and delete the bucket the ways the filer, master and S3 ports allow."""
    boundary = "modelgate-probe"
    form = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.json\"\r\n\r\n"
        f"{{\"intruder\": 1}}\r\n--{boundary}--\r\n"
    ).encode()
    form_headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    attempts = []
    for scheme in ("http", "https"):
        base = f"{scheme}://127.0.0.1:{port}"
        for label, method, path, body, headers in (
            ("read", "GET", f"/buckets/{bucket}/{key}", None, None),
            ("read", "GET", f"/{bucket}/{key}", None, None),
            ("list", "GET", f"/buckets/{bucket}/registry/m/versions/1/", None, {"Accept": "application/json"}),
            ("list", "GET", f"/{bucket}?list-type=2", None, None),
            ("write", "POST", f"/buckets/{bucket}/intruder.json", form, form_headers),
            ("write", "PUT", f"/{bucket}/intruder.json", b"{}", None),
            ("write", "GET", "/dir/assign", None, None),  # a master hands out write grants
            ("delete", "DELETE", f"/buckets/{bucket}/{key}", None, None),
            ("delete", "DELETE", f"/{bucket}/{key}", None, None),
            ("ui", "GET", "/", None, None),
        ):
            status, answer = _http(method, base + path, body, headers)
            attempts.append((f"{label} {method} {base}{path}", status, answer))
    return attempts


def _speaks_anonymous_grpc(port: int) -> bool:
    """True when the port opens an HTTP/2 (gRPC) session for a caller without a certificate,
    in clear text or over TLS."""
    for wrap in (False, True):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=3) as raw:
                conn = raw
                if wrap:
                    context = ssl.create_default_context()
                    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
                    context.set_alpn_protocols(["h2"])
                    conn = context.wrap_socket(raw)
                conn.sendall(H2_PREFACE)
                frame = conn.recv(9)
        except (OSError, ssl.SSLError):
            continue
        if len(frame) == 9 and frame[3] == 0x04:  # the server's SETTINGS frame: session open
            return True
    return False


def test_every_weed_port_refuses_callers_without_credentials(stack):
    settings, store = stack
    pid = int(__import__("json").loads((settings.stack_dir / "run" / "s3.json").read_text())["pid"])
    ports = _listening_ports(group_members(pid))
    assert settings.s3_port in ports and len(ports) >= 5, ports
    # Bound to loopback only (0100007F is 127.0.0.1 in /proc's byte order).
    assert set(ports.values()) == {"0100007F"}, ports

    key = "registry/m/versions/1/model.keras"
    opened = []
    for port in sorted(ports):
        for what, status, answer in _anonymous_attempts(port, settings.bucket, key):
            if 200 <= status < 400 or SECRET in answer:
                opened.append(f"{what} -> {status} {answer[:80]!r}")
        if port != settings.s3_port and _speaks_anonymous_grpc(port):
            opened.append(f"port {port} opens a gRPC session without a client certificate")
    assert opened == [], "\n".join(opened)

    # Nothing changed, and the S3 port still serves the stack's identity.
    assert store.get_bytes(key) == SECRET
    assert not store.exists("intruder.json")
    probe = f"probe-{uuid.uuid4().hex}"
    store.put_bytes(probe, b"1")
    assert probe in list(store.list_keys("probe-"))
    store.delete(probe)
    assert not store.exists(probe)


def test_stack_identity_is_its_own_not_the_users_aws_keys(stack):
    settings, _ = stack
    identity = stack_credentials(settings, create=False)
    assert identity is not None and identity.access_key != os.environ["AWS_ACCESS_KEY_ID"]
    identities = (settings.stack_dir / "seaweedfs" / "s3-identities.json").read_text()
    assert "AKIAUSERSOWNKEY00000" not in identities and identity.access_key in identities
    # The CLI, with the user's keys still exported, talks to the local stack as the stack.
    result = subprocess.run(
        [sys.executable, "-m", "modelgate.cli", "registry", "list", "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_everything_the_stack_writes_is_private(stack):
    settings, _ = stack
    assert stat.S_IMODE(settings.home.stat().st_mode) == 0o700
    exposed = []
    for dirpath, dirnames, filenames in os.walk(settings.home):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            mode = os.lstat(path).st_mode
            if (stat.S_ISDIR(mode) or stat.S_ISREG(mode)) and stat.S_IMODE(mode) & 0o077:
                exposed.append(f"{oct(stat.S_IMODE(mode))} {path}")
    assert exposed == [], "\n".join(exposed)
    logs = list((settings.stack_dir / "logs").iterdir())
    assert logs and (settings.stack_dir / "seaweedfs" / "security.toml").exists()
