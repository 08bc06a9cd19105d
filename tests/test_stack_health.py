"""`stack up` / `stack status` call S3 healthy only when it serves data: a real stack whose
volume files are lost while it is stopped must be reported as unable to serve them."""

from __future__ import annotations

import pytest

from modelgate.settings import load_settings
from modelgate.stack import StoreCannotServe, stack_down, stack_status, stack_up
from modelgate.stack.canary import CANARY_KEY
from modelgate.stack.processes import free_port
from modelgate.storage import ObjectStore
from stack_env import local_stack_env


def test_lost_volume_makes_s3_unhealthy_with_a_clear_message(monkeypatch, tmp_path):
    local_stack_env(monkeypatch, tmp_path, s3_port=free_port(), prefect_port=free_port())
    settings = load_settings()
    data_dir = settings.stack_dir / "seaweedfs"
    try:
        stack_up(settings, services=("s3",))
        store = ObjectStore.from_settings(settings)
        assert store.exists(CANARY_KEY)
        status = stack_status(settings).service("s3")
        assert status.healthy and status.detail == "", status

        stack_down(settings)
        volume_files = [
            path for path in data_dir.iterdir()
            if path.name.startswith(f"{settings.bucket}_") and path.suffix in (".dat", ".idx")
        ]  # fmt: skip
        assert volume_files, sorted(p.name for p in data_dir.iterdir())
        for path in volume_files:
            path.unlink()

        # S3 comes back and lists its buckets, but the bucket's data is gone: `up` says so.
        with pytest.raises(StoreCannotServe, match="cannot serve its data") as excinfo:
            stack_up(settings, services=("s3",), timeout=15)
        assert "weed fix" in str(excinfo.value) and settings.bucket in str(excinfo.value)
        assert "waited 15 s" in str(excinfo.value)

        status = stack_status(settings).service("s3")
        assert status.state == "running" and not status.healthy, status
        assert "cannot serve its data" in status.detail
        assert "cannot serve its data" in stack_status(settings).describe()
        assert stack_status(settings).to_dict()["services"]["s3"]["healthy"] is False
    finally:
        stack_down(settings)
