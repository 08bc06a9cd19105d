"""One-shot setup of a team's services: the bucket, the `cpu` and `gpu` work pools, the `gpu` limit.

docker-compose runs it once the Prefect server and the S3 storage answer; running it again changes
nothing that exists (pools are created when missing, the limit is set to the given slots, the bucket
is created when missing). It reads the same settings as modelgate itself: PREFECT_API_URL (and
PREFECT_API_AUTH_STRING when the server asks for one), MODELGATE_S3_ENDPOINT, MODELGATE_BUCKET and
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.

    python infra/docker/setup_team_stack.py [--cpu-pool cpu] [--gpu-pool gpu] [--gpu-slots 1]

Exit status 0 when everything is in place, 1 with a one-line reason when something is not.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL

# The same pool and limit helpers `modelgate deploy` uses for the local pool.
from modelgate.stack.deploy import GPU_TAG, ensure_gpu_limit, ensure_work_pool
from modelgate.settings import load_settings
from modelgate.storage import ObjectStore, StorageError


class SetupError(RuntimeError):
    pass


@dataclass
class SetupResult:
    bucket: str
    created_pools: list[str]
    existing_pools: list[str]
    gpu_slots: int

    def describe(self) -> str:
        created = ", ".join(self.created_pools) or "none"
        existing = ", ".join(self.existing_pools) or "none"
        return (
            f"bucket {self.bucket} ready; work pools created: {created}; already there: {existing}; "
            f"task tag '{GPU_TAG}' limited to {self.gpu_slots} concurrent run(s)"
        )


def ensure_bucket() -> str:
    settings = load_settings()
    if settings.uses_local_stack:
        raise SetupError("MODELGATE_S3_ENDPOINT is not set; point it at the team's S3 storage")
    ObjectStore.from_settings(settings).ensure_bucket()
    return settings.bucket


def ensure_prefect_objects(pools: list[str], gpu_slots: int) -> tuple[list[str], list[str]]:
    """Create the missing process work pools and set the `gpu` tag limit; returns (created, existing)."""
    if not PREFECT_API_URL.value():
        # Without it the client would start a throwaway local server and set that one up.
        raise SetupError("PREFECT_API_URL is not set; point it at the team's Prefect server")
    with get_client(sync_client=True) as client:
        if client.api_healthcheck() is not None:
            raise SetupError(f"the Prefect API at {client.api_url} does not answer")
    created = [name for name in pools if ensure_work_pool(name)]
    ensure_gpu_limit(gpu_slots)
    return created, [name for name in pools if name not in created]


def setup(cpu_pool: str, gpu_pool: str, gpu_slots: int) -> SetupResult:
    if gpu_slots < 1:
        raise SetupError(f"--gpu-slots must be at least 1, got {gpu_slots}")
    bucket = ensure_bucket()
    created, existing = ensure_prefect_objects([cpu_pool, gpu_pool], gpu_slots)
    return SetupResult(bucket, created, existing, gpu_slots)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-pool", default="cpu", help="process work pool for CPU work")
    parser.add_argument("--gpu-pool", default="gpu", help="process work pool of the GPU worker")
    parser.add_argument(
        "--gpu-slots", type=int, default=1, help=f"task runs tagged '{GPU_TAG}' allowed at once"
    )
    args = parser.parse_args(argv)
    try:
        result = setup(args.cpu_pool, args.gpu_pool, args.gpu_slots)
    except (SetupError, StorageError) as exc:
        print(f"setup: {exc}", file=sys.stderr)
        return 1
    print(result.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
