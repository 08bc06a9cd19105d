"""The local stack: SeaweedFS (S3), a Prefect server on 127.0.0.1 and a Prefect process worker,
run as detached processes. The worker serves the `modelgate-local` work pool, so a deployment run
started from the UI (or by a schedule) runs on this machine with the stack's settings.

State lives under ``Settings.stack_dir`` (``MODELGATE_HOME/stack``): data directories, one JSON
pid file per service in ``run/``, and logs in ``logs/``. Each service runs in its own session and
process group, so ``down`` can stop it together with every child it spawned.

Ports: S3 on ``MODELGATE_S3_PORT``, Prefect on ``MODELGATE_PREFECT_PORT``; SeaweedFS's internal
ports follow the S3 port (see ``modelgate.stack.seaweedfs``). Process and port helpers live in
``modelgate.stack.processes``.

Healthy S3 means the store serves data (``modelgate.stack.canary``).
The stack's home is 0700 and what its services write is 0600 (they run with umask 077).
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import socket
import sys
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

from modelgate.stack.processes import (
    HOST,
    StackError,
    make_private_dir,
    make_tree_private,
    port_is_free,
    process_alive,
    spawn_detached,
    stop_process_group,
    wait_healthy,
    write_private_file,
)
from modelgate.stack.deploy import work_pool_name
from modelgate.stack.seaweedfs import WeedPorts, remove_weed_sockets, start_seaweedfs
from modelgate.settings import Credentials, Settings
from modelgate.stack.canary import (
    CANARY_TIMEOUT,
    local_store,
    s3_serves_data,
    wait_store_serves,
)
from modelgate.storage import ObjectStore, StorageError

SERVICES = ("s3", "prefect", "worker")
# Seconds a service may take to answer after it is started. Prefect's server needs ~10 s on an idle
# machine but minutes on a loaded 2-core one, so the default is generous.
STARTUP_TIMEOUT = float(os.environ.get("MODELGATE_STACK_TIMEOUT", "300"))


class PortInUseError(StackError):
    pass


# -- Prefect -----------------------------------------------------------------------------------
def prefect_health(port: int, timeout: float = 2.0) -> None:
    with urllib.request.urlopen(f"http://{HOST}:{port}/api/health", timeout=timeout) as response:
        if response.status != 200:
            raise StackError(f"Prefect health answered HTTP {response.status}")


def start_prefect(home: Path, port: int, log_file: Path, timeout: float = STARTUP_TIMEOUT) -> int:
    """Start `prefect server start` (SQLite under home) detached; returns its pid once healthy."""
    home.mkdir(parents=True, exist_ok=True)
    api_url = f"http://{HOST}:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_API_URL=api_url,
        PREFECT_UI_API_URL=api_url,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{home / 'prefect.db'}",
    )
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(port)]
    process = spawn_detached(cmd, log_file, env, home)
    try:
        probe = partial(prefect_health, port)
        wait_healthy("Prefect server", process.pid, probe, log_file, timeout)
    except BaseException:
        stop_process_group(process.pid)
        raise
    return process.pid


# -- the worker --------------------------------------------------------------------------------
def worker_name(settings: Settings) -> str:
    return f"modelgate-{socket.gethostname()}-{settings.prefect_port}"


def worker_health(settings: Settings, timeout: float = 2.0) -> None:
    """The worker is healthy once the server lists it ONLINE on its work pool."""
    pool = work_pool_name()
    request = urllib.request.Request(
        f"{settings.prefect_api_url}/work_pools/{pool}/workers/filter",
        data=b"{}",
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            workers = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise StackError(f"work pool {pool}: HTTP {exc.code}") from None
    name = worker_name(settings)
    if not any(w.get("name") == name and w.get("status") == "ONLINE" for w in workers):
        raise StackError(f"worker {name} is not online on work pool {pool} yet")


def start_worker(settings: Settings, log_file: Path, timeout: float = STARTUP_TIMEOUT) -> int:
    """`prefect worker start` on the process work pool; flow runs inherit this environment
    (MODELGATE_*, AWS_*, MODELGATE_DATA_MIRROR...), so they use the same storage and data."""
    home = settings.stack_dir / "worker"
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_API_URL=settings.prefect_api_url,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        MODELGATE_HOME=str(settings.home),
    )
    cmd = [
        sys.executable, "-m", "prefect", "worker", "start",
        "--pool", work_pool_name(), "--type", "process", "--name", worker_name(settings),
    ]
    process = spawn_detached(cmd, log_file, env, home)
    try:
        wait_healthy("Prefect worker", process.pid, partial(worker_health, settings), log_file, timeout)
    except BaseException:
        stop_process_group(process.pid)
        raise
    return process.pid


# -- credentials -------------------------------------------------------------------------------
def stack_credentials(settings: Settings, create: bool = True) -> Credentials | None:
    """The stack's own identity, generated on the first `up` (file mode 0600). A user's AWS keys
    never become the stack's identity, and the stack never sees them."""
    path = settings.local_credentials_file
    if not path.exists():
        if not create:
            return None
        access_key = "MG" + secrets.token_hex(9).upper()
        generated = {"access_key": access_key, "secret_key": secrets.token_urlsafe(30)}
        write_private_file(path, json.dumps(generated))
    data = json.loads(path.read_text())
    return Credentials(data["access_key"], data["secret_key"])


# -- the stack ---------------------------------------------------------------------------------
@dataclass
class ServiceStatus:
    name: str
    state: str  # "running" or "stopped"
    healthy: bool
    pid: int | None
    url: str
    log_file: str
    detail: str = ""  # why a running service is not healthy

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class StackStatus:
    home: str
    bucket: str
    access_key: str | None
    services: list[ServiceStatus]

    @property
    def all_running(self) -> bool:
        return all(s.state == "running" for s in self.services)

    def describe(self) -> str:
        key = self.access_key or "not generated yet"
        lines = [f"stack home {self.home} (bucket {self.bucket}, access key {key})"]
        for s in self.services:
            health = "" if s.state == "stopped" else (" healthy" if s.healthy else " not answering")
            pid = f" pid {s.pid}" if s.pid else ""
            lines.append(f"  {s.name:8} {s.state}{health}{pid}  {s.url}  log {s.log_file}")
            if s.detail:
                lines.append(f"           {s.detail}")
        return "\n".join(lines)

    def service(self, name: str) -> ServiceStatus:
        return next(s for s in self.services if s.name == name)

    def to_dict(self) -> dict:
        return {
            "home": self.home,
            "bucket": self.bucket,
            "access_key": self.access_key,
            "all_running": self.all_running,
            "services": {s.name: s.to_dict() for s in self.services},
        }


def _paths(settings: Settings, name: str) -> tuple[Path, Path]:
    return settings.stack_dir / "run" / f"{name}.json", settings.stack_dir / "logs" / f"{name}.log"


def _service_url(settings: Settings, name: str) -> str:
    if name == "s3":
        return f"http://{HOST}:{settings.s3_port}"
    if name == "worker":
        return f"work pool {work_pool_name()} on {settings.prefect_api_url}"
    return f"http://{HOST}:{settings.prefect_port}/api"


_MARKERS = {"s3": b"weed", "prefect": b"server", "worker": b"worker"}


def _running_pid(settings: Settings, name: str) -> int | None:
    """The pid of the service if its pid file names a live process of that service; a stale pid
    file (dead process, or a pid reused by something else) is removed."""
    pid_file, _ = _paths(settings, name)
    try:
        pid = int(json.loads(pid_file.read_text())["pid"])
    except (FileNotFoundError, ValueError, KeyError):
        pid_file.unlink(missing_ok=True)
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        cmdline = b""
    if process_alive(pid) and _MARKERS[name] in cmdline:
        return pid
    pid_file.unlink(missing_ok=True)
    return None


def _health_check(settings: Settings, name: str, timeout: float = 2.0):
    """A callable that raises unless the local service answers (S3: the canary reads back)."""
    if name == "prefect":
        return partial(prefect_health, settings.prefect_port, timeout=timeout)
    if name == "worker":
        return partial(worker_health, settings, timeout=timeout)
    return partial(s3_serves_data, settings, local_store(settings, timeout))


def stack_status(settings: Settings, *, probe: bool = True) -> StackStatus:
    """Each service: running or stopped (from its pid file), and whether it answers now."""
    services = []
    for name in SERVICES:
        pid = _running_pid(settings, name)
        healthy, detail = False, ""
        if pid is not None and probe:
            try:
                _health_check(settings, name, timeout=1.0)()
                healthy = True
            except (StackError, StorageError, OSError) as exc:
                detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        state = "running" if pid is not None else "stopped"
        url, log_file = _service_url(settings, name), str(_paths(settings, name)[1])
        services.append(ServiceStatus(name, state, healthy, pid, url, log_file, detail))
    creds = stack_credentials(settings, create=False)
    access_key = creds.access_key if creds else None
    return StackStatus(str(settings.home), settings.bucket, access_key, services)


def _required_ports(settings: Settings, name: str) -> dict[int, str]:
    if name == "worker":
        return {}
    if name == "prefect":
        return {settings.prefect_port: "MODELGATE_PREFECT_PORT"}
    ports = WeedPorts.from_settings(settings).listening()
    derived = "derived from MODELGATE_S3_PORT; move them with MODELGATE_WEED_PORT_BASE"
    return {
        port: "MODELGATE_S3_PORT" if key == "s3" else f"SeaweedFS {key} port, {derived}"
        for key, port in ports.items()
    }


@contextmanager
def _stack_lock(settings: Settings):
    """One `up`/`down` at a time per stack (two runs starting together must not race)."""
    make_private_dir(settings.home)
    make_private_dir(settings.stack_dir)
    with open(settings.stack_dir / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def stack_up(settings: Settings, services=SERVICES, timeout: float = STARTUP_TIMEOUT) -> StackStatus:
    """Start what is not running yet, wait until healthy, create the bucket; idempotent."""
    with _stack_lock(settings):
        _start_missing(settings, tuple(services), timeout)
    return stack_status(settings)


def _start_missing(settings: Settings, services: tuple[str, ...], timeout: float) -> None:
    make_tree_private(settings.stack_dir)  # state an older version left world-readable
    missing = [name for name in services if _running_pid(settings, name) is None]
    for name in missing:  # check every port before starting anything
        for port, source in _required_ports(settings, name).items():
            if not port_is_free(port):
                raise PortInUseError(
                    f"port {port} on {HOST} is already in use by another process ({source}); "
                    "stop that process or choose another port"
                )
    credentials = stack_credentials(settings)
    local = replace(settings, s3_endpoint=None, credentials=credentials)
    for name in missing:
        pid_file, log_file = _paths(settings, name)
        record = {"url": _service_url(settings, name)}
        if name == "s3":
            ports = WeedPorts.from_settings(settings)
            data_dir = settings.stack_dir / "seaweedfs"
            record["pid"] = start_seaweedfs(data_dir, ports, credentials, log_file, timeout).pid
            record["weed_ports"] = asdict(ports)
        elif name == "prefect":
            data_dir = settings.stack_dir / "prefect"
            record["pid"] = start_prefect(data_dir, settings.prefect_port, log_file, timeout)
        else:
            record["pid"] = start_worker(settings, log_file, timeout)
        write_private_file(pid_file, json.dumps(record))
    for name in services:
        pid = _running_pid(settings, name)
        if name not in missing and pid is not None:  # was already running: it must also answer
            # S3 must answer first; whether it serves data is checked with the canary below.
            probe = local_store(local).ping if name == "s3" else _health_check(local, name)
            wait_healthy(name, pid, probe, _paths(settings, name)[1], timeout)
    if "s3" in services:
        ObjectStore.from_settings(local).ensure_bucket()
        s3_log = _paths(settings, "s3")[1]
        wait_store_serves(local, _running_pid(settings, "s3"), s3_log, min(timeout, CANARY_TIMEOUT))
    # weed sets 0644 on the .vif files of new volumes itself; the 0700 directories keep them
    # private anyway, and this makes the modes say so.
    make_tree_private(settings.stack_dir)


def ensure_stack(settings: Settings, *, s3: bool | None = None, prefect: bool | None = None):
    """Start the local services a run needs, only those not running. By default S3 unless
    MODELGATE_S3_ENDPOINT points elsewhere, and Prefect unless PREFECT_API_URL is set."""
    s3 = settings.uses_local_stack if s3 is None else s3
    prefect = not os.environ.get("PREFECT_API_URL") if prefect is None else prefect
    needed = tuple(name for name, wanted in (("s3", s3), ("prefect", prefect)) if wanted)
    return stack_up(settings, needed) if needed else stack_status(settings)


def stack_down(settings: Settings, timeout: float = 15.0) -> StackStatus:
    """Stop every service of this stack (whole process groups) and remove their pid files."""
    with _stack_lock(settings):
        for name in reversed(SERVICES):  # the worker first: it talks to the server
            pid_file = _paths(settings, name)[0]
            pid = _running_pid(settings, name)
            if pid is not None:  # started with its own session: its pid is its process group
                ports = json.loads(pid_file.read_text()).get("weed_ports")
                stop_process_group(pid, timeout)
                if ports:
                    remove_weed_sockets(WeedPorts(**ports))
            pid_file.unlink(missing_ok=True)
    return stack_status(settings, probe=False)
