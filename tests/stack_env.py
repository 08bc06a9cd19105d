"""Environment for a whole local stack of its own (`modelgate stack up`) on free ports."""

from __future__ import annotations

import random

from modelgate.stack.processes import port_is_free
from modelgate.stack.seaweedfs import WeedPorts

# Variables that would point the product at another S3 or identity than the test stack's.
AWS_SETTINGS = (
    "MODELGATE_S3_ENDPOINT", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
)  # fmt: skip


def free_weed_base() -> int:
    """A base port where the nine derived SeaweedFS ports and the admin gRPC port are all free."""
    for _ in range(100):
        base = random.randrange(20000, 50000)
        ports = WeedPorts.derived(1, base).listening()
        if all(port_is_free(p) for name, p in ports.items() if name != "s3"):
            return base
    raise RuntimeError("no free block of ports for SeaweedFS")


def local_stack_env(monkeypatch, tmp_path, s3_port: int, prefect_port: int) -> None:
    monkeypatch.setenv("MODELGATE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MODELGATE_S3_PORT", str(s3_port))
    monkeypatch.setenv("MODELGATE_PREFECT_PORT", str(prefect_port))
    monkeypatch.setenv("MODELGATE_BUCKET", "stack-test")
    monkeypatch.setenv("MODELGATE_WEED_PORT_BASE", str(free_weed_base()))
    for name in AWS_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
