"""Low-level pieces the local stack runs on: ports on 127.0.0.1, detached processes, private files.

A service is spawned in its own session, so its pid is also its process group: stopping the group
stops every child it spawned too. Process state is read from ``/proc`` (Linux).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from modelgate.storage import StorageAuthError

HOST = "127.0.0.1"


class StackError(RuntimeError):
    """The local stack could not be started, reached or stopped."""


# -- ports -------------------------------------------------------------------------------------
def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Servers set SO_REUSEADDR too: a port in TIME_WAIT is usable, a listening one is not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port(*, with_offset: int | None = None) -> int:
    """A port free on 127.0.0.1 right now (and port + with_offset too, when given)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = sock.getsockname()[1]
        if with_offset is None or (port + with_offset < 65536 and port_is_free(port + with_offset)):
            return port
    raise StackError("could not find a free port on 127.0.0.1")


# -- processes ---------------------------------------------------------------------------------
def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, process group) of a live process, None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[2])


def _reap(pid: int) -> None:
    try:  # only succeeds for our own children; others are reaped by their parent/init
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def process_alive(pid: int) -> bool:
    _reap(pid)
    stat = _proc_stat(pid)
    return stat is not None and stat[0] != "Z"


def group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        stat = _proc_stat(int(entry.name)) if entry.name.isdigit() else None
        if stat is not None and stat[1] == pgid and process_alive(int(entry.name)):
            members.append(int(entry.name))
    return members


def stop_process_group(pgid: int, timeout: float = 15.0) -> None:
    """SIGTERM the group, wait, then SIGKILL what is left; returns when the group is empty."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not group_members(pgid):
                return
            time.sleep(0.1)
    if group_members(pgid):
        raise StackError(f"process group {pgid} survived SIGKILL")


def spawn_detached(
    cmd: list[str], log_file: Path, env: dict[str, str], cwd: Path
) -> subprocess.Popen:
    """Start cmd in a new session (its pid is its process group), output appended to log_file.

    The service runs with umask 077: what it writes (databases, volumes, logs) only its owner reads."""
    make_private_dir(log_file.parent)
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE_MODE)
    os.fchmod(fd, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "ab") as log:
        return subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=env, cwd=cwd, start_new_session=True, umask=PRIVATE_UMASK,
        )  # fmt: skip


def log_tail(log_file: Path, lines: int = 15) -> str:
    return "\n".join(log_file.read_text(errors="replace").splitlines()[-lines:])


def wait_healthy(name: str, process_pid: int, probe, log_file: Path, timeout: float) -> None:
    """Call probe until it returns; raise StackError if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if not process_alive(process_pid):
            tail = log_tail(log_file)
            raise StackError(f"{name} exited while starting; log {log_file}:\n{tail}")
        try:
            probe()
            return
        except StorageAuthError:  # wrong keys will not get right by waiting
            raise
        except Exception as exc:  # not up yet: connection refused, 5xx while components start
            last = str(exc)
        time.sleep(0.3)
    raise StackError(f"{name} not healthy after {timeout:.0f}s ({last}); log {log_file}")


# -- files -------------------------------------------------------------------------------------
PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, PRIVATE_UMASK = 0o700, 0o600, 0o077


def make_private_dir(path: Path) -> Path:
    """Create path (and parents) and make it owner-only."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, PRIVATE_DIR_MODE)
    return path


def make_tree_private(root: Path) -> None:
    """Directories 0700 and regular files 0600 under root: tightens state written before."""
    make_private_dir(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            if os.path.isdir(path):
                os.chmod(path, PRIVATE_DIR_MODE)
            elif os.path.isfile(path):
                os.chmod(path, PRIVATE_FILE_MODE)


def write_private_file(path: Path, text: str) -> None:
    """Write a file only its owner can read (it holds a secret); atomic via rename."""
    if not path.parent.exists():
        make_private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)
