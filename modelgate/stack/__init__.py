"""The local stack room: the services ``modelgate stack up`` runs on one machine, and deployments.

- ``services``: SeaweedFS (S3), a Prefect server and a process worker as detached processes.
- ``seaweedfs``: the S3 server's ports, identities and start-up; ``weed_security``: its other
  ports locked (mTLS, JWT); ``canary``: health that means the store serves data.
- ``processes``: process groups, pid files and free ports.
- ``deploy``: ``modelgate deploy`` (prefect.yaml's deployments, the work pool, the GPU limit).
"""

from modelgate.stack.canary import StoreCannotServe
from modelgate.stack.services import (
    PortInUseError,
    StackError,
    ensure_stack,
    stack_credentials,
    stack_down,
    stack_status,
    stack_up,
)

__all__ = [
    "PortInUseError",
    "StackError",
    "StoreCannotServe",
    "ensure_stack",
    "stack_credentials",
    "stack_down",
    "stack_status",
    "stack_up",
]
