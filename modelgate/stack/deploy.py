"""``modelgate deploy``: register prefect.yaml's deployments with the Prefect server.

It makes sure the local process work pool and the `gpu` tag concurrency limit exist, then creates
(or updates) each deployment prefect.yaml declares: entrypoint, description, tags, default
parameters, the typed parameter schema of the flow (the UI's run form), schedules, pull step, and
what a team's setup adds: the deployment's own work pool (``work_pool.name``; the local pool's name
``modelgate-local`` follows ``MODELGATE_WORK_POOL``) with its ``job_variables``, its
``concurrency_limit`` (a number, or ``limit`` + ``collision_strategy``), and its ``triggers``
(automations that run it on events; replaced on every deploy, as ``prefect deploy`` does).

Prefect is imported inside the functions that call the server, not at the top: the stack's services
(``modelgate stack up/status``) import this module for ``work_pool_name`` and must start fast.
"""

from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

WORK_POOL = "modelgate-local"
GPU_TAG = "gpu"
PREFECT_FILE = "prefect.yaml"


class DeployError(RuntimeError):
    pass


def work_pool_name() -> str:
    return os.environ.get("MODELGATE_WORK_POOL") or WORK_POOL


def find_project_dir(start: Path | None = None) -> Path:
    """The directory holding prefect.yaml and flows/: the current one or the installed checkout."""
    if start is not None:
        candidates = [Path(start).resolve()]
    else:
        candidates = [Path.cwd().resolve(), Path(__file__).resolve().parents[2]]
    for candidate in candidates:
        if (candidate / PREFECT_FILE).is_file() and (candidate / "flows").is_dir():
            return candidate
    where = " or ".join(str(c) for c in candidates)
    raise DeployError(
        f"no {PREFECT_FILE} with a flows/ directory beside it in {where}; "
        "run from the modelgate checkout or pass --project-dir"
    )


def declared_deployments(project_dir: Path) -> list[str]:
    """``flow-name/deployment-name`` of every deployment in prefect.yaml whose entrypoint exists."""
    spec = yaml.safe_load((project_dir / PREFECT_FILE).read_text())
    names = []
    for entry in spec.get("deployments", []):
        path, _, function = entry["entrypoint"].partition(":")
        if not (project_dir / path).is_file():
            raise DeployError(f"{PREFECT_FILE}: deployment {entry['name']!r} points at missing {path}")
        names.append(f"{flow_name_of(project_dir / path, function)}/{entry['name']}")
    return names


def flow_name_of(path: Path, function: str) -> str:
    """The name given in ``@flow(name=...)`` on ``function`` in ``path``, read without importing it."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == function:
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Call):
                    for keyword in decorator.keywords:
                        if keyword.arg == "name" and isinstance(keyword.value, ast.Constant):
                            return str(keyword.value.value)
            return function.replace("_", "-")  # Prefect's default flow name
    raise DeployError(f"{path} has no function {function!r}")


def ensure_work_pool(name: str) -> bool:
    """Create the process work pool if it is missing; True when it was created."""
    # prefect is heavy (~3.5 s to import): see the module docstring
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(
                WorkPoolCreate(
                    name=name,
                    type="process",
                    description="modelgate: runs flows as local processes from the checkout",
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                )
            )
            return True
        except ObjectAlreadyExists:
            return False


def ensure_gpu_limit(slots: int) -> None:
    """At most `slots` task runs tagged `gpu` (the train task) run at once, across all runs."""
    # prefect is heavy (~3.5 s to import): see the module docstring
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        client.create_concurrency_limit(tag=GPU_TAG, concurrency_limit=slots)


@dataclass
class DeployResult:
    api_url: str
    work_pool: str
    work_pool_created: bool
    gpu_slots: int
    deployments: list[str] = field(default_factory=list)

    def describe(self) -> str:
        created = " (created)" if self.work_pool_created else ""
        lines = [
            f"Prefect API {self.api_url}",
            f"work pool {self.work_pool}{created}; task runs tagged '{GPU_TAG}' limited to {self.gpu_slots} at a time",
            "deployments:",
        ]
        lines += [f"  {name}" for name in self.deployments]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def _render(value, env: dict[str, str]):
    """prefect.yaml's ``{{ $VAR }}`` templates, filled from the environment."""
    if isinstance(value, str):
        def substitute(match: re.Match) -> str:
            name = match.group(1)
            if name not in env:
                raise DeployError(f"{PREFECT_FILE} uses {{{{ ${name} }}}} but {name} is not set")
            return env[name]

        return re.sub(r"\{\{\s*\$(\w+)\s*\}\}", substitute, value)
    if isinstance(value, dict):
        return {k: _render(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, env) for v in value]
    return value


def _schedules(entry: dict):
    # prefect is heavy (~3.5 s to import): see the module docstring
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule

    schedules = []
    for spec in entry.get("schedules") or []:
        if "cron" in spec:
            schedule = CronSchedule(cron=spec["cron"], timezone=spec.get("timezone", "UTC"))
        elif "interval" in spec:
            schedule = IntervalSchedule(interval=spec["interval"], timezone=spec.get("timezone", "UTC"))
        else:
            raise DeployError(f"{PREFECT_FILE}: schedule of {entry['name']!r} needs cron or interval")
        schedules.append(DeploymentScheduleCreate(
            schedule=schedule, active=bool(spec.get("active", True)), parameters=spec.get("parameters", {})
        ))
    return schedules


def pool_of(work_pool: dict, local_pool: str) -> str:
    """A deployment's work pool: its own, or the local pool (renamed by MODELGATE_WORK_POOL)."""
    name = work_pool.get("name")
    return local_pool if not name or name == WORK_POOL else name


def _concurrency(entry: dict):
    """(limit, options) from ``concurrency_limit: N`` or ``{limit, collision_strategy, ...}``."""
    from prefect.client.schemas.objects import ConcurrencyOptions

    spec = entry.get("concurrency_limit")
    if spec is None or isinstance(spec, int):
        return spec, None
    if not isinstance(spec, dict) or not isinstance(spec.get("limit"), int):
        raise DeployError(f"{PREFECT_FILE}: concurrency_limit of {entry['name']!r} must be a number "
                          f"or a mapping with an integer 'limit', not {spec!r}")
    options = {k: spec[k] for k in ("collision_strategy", "grace_period_seconds") if k in spec}
    return spec["limit"], ConcurrencyOptions(**options) if "collision_strategy" in options else None


def _triggers(entry: dict) -> list:
    """prefect.yaml's trigger specs, validated the way `prefect deploy` reads them."""
    from pydantic import TypeAdapter, ValidationError
    from prefect.events import DeploymentTriggerTypes

    adapter = TypeAdapter(DeploymentTriggerTypes)
    triggers = []
    for number, spec in enumerate(entry.get("triggers") or [], start=1):
        try:
            triggers.append(adapter.validate_python({"name": f"{entry['name']}__automation_{number}", **spec}))
        except ValidationError as exc:
            raise DeployError(f"{PREFECT_FILE}: trigger {number} of {entry['name']!r} is invalid: {exc}") from None
    return triggers


def _check_pool_exists(client, pool: str, entry: dict) -> None:
    from prefect.exceptions import ObjectNotFound

    try:
        client.read_work_pool(pool)
    except ObjectNotFound:
        raise DeployError(f"{PREFECT_FILE}: deployment {entry['name']!r} uses work pool {pool!r}, which "
                          f"does not exist on the server; create it first (prefect work-pool create)") from None


def _apply(client, project_dir: Path, entry: dict, pull_steps: list, local_pool: str) -> str:
    """Create or update one deployment from its prefect.yaml entry; returns FLOW/NAME."""
    # prefect is heavy (~3.5 s to import): see the module docstring
    from prefect.flows import load_flow_from_entrypoint
    from prefect.utilities.callables import parameter_schema

    flow = load_flow_from_entrypoint(str(project_dir / entry["entrypoint"]))
    schema = parameter_schema(flow.fn).model_dump(exclude_unset=True)
    work_pool = _render(entry.get("work_pool") or {}, dict(os.environ))
    pool = pool_of(work_pool, local_pool)
    if pool != local_pool:
        _check_pool_exists(client, pool, entry)
    limit, options = _concurrency(entry)
    triggers = _triggers(entry)
    flow_id = client.create_flow_from_name(flow.name)
    deployment_id = client.create_deployment(
        flow_id=flow_id,
        name=entry["name"],
        description=entry.get("description") or flow.description,
        tags=entry.get("tags") or [],
        parameters=entry.get("parameters") or {},
        parameter_openapi_schema=schema,
        enforce_parameter_schema=True,
        entrypoint=entry["entrypoint"],
        path=str(project_dir),
        pull_steps=pull_steps,
        work_pool_name=pool,
        work_queue_name=work_pool.get("work_queue_name") or "default",
        job_variables=work_pool.get("job_variables") or {},
        concurrency_limit=limit,
        concurrency_options=options,
        schedules=_schedules(entry),
    )
    # Replace the automations this deployment owns (its triggers), as `prefect deploy` does.
    client.delete_resource_owned_automations(f"prefect.deployment.{deployment_id}")
    for trigger in triggers:
        trigger.set_deployment_id(deployment_id)
        client.create_automation(trigger.as_automation())
    return f"{flow.name}/{entry['name']}"


def deploy(api_url: str, project_dir: Path, names: list[str] | None = None, gpu_slots: int = 1) -> DeployResult:
    """Create the pool and the gpu limit, then the named (default: all) deployments of prefect.yaml.

    The file is the one ``prefect deploy`` reads; it is applied here through Prefect's client so
    that the work pool override and the project directory are filled in the same way everywhere.
    """
    # prefect is heavy (~3.5 s to import): see the module docstring
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    declared = declared_deployments(project_dir)
    chosen = names or declared
    unknown = sorted(set(chosen) - set(declared))
    if unknown:
        raise DeployError(f"not declared in {PREFECT_FILE}: {unknown}; declared: {declared}")
    spec = yaml.safe_load((project_dir / PREFECT_FILE).read_text())
    env = {**os.environ, "MODELGATE_PROJECT_DIR": str(project_dir)}
    pull_steps = _render(spec.get("pull") or [], env)
    pool = work_pool_name()
    applied = []
    with temporary_settings({PREFECT_API_URL: api_url}):
        created = ensure_work_pool(pool)
        ensure_gpu_limit(gpu_slots)
        with get_client(sync_client=True) as client:
            for name, entry in zip(declared, spec["deployments"]):
                if name in chosen:
                    applied.append(_apply(client, project_dir, entry, pull_steps, pool))
    return DeployResult(api_url, pool, created, gpu_slots, applied)
