"""``modelgate run PIPELINE --seeds N``: the seeds flow on the chosen task runner, and its spread."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prefect.settings import PREFECT_API_URL, temporary_settings

from modelgate.config import ConfigError
from modelgate.runner import EXIT_ERROR, EXIT_OK, ensure_services
from modelgate.settings import load_settings
from modelgate.task_runners import TaskRunnerError, check_task_runner, resolve_task_runner


@dataclass
class SeedsOutcome:
    exit_code: int
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def describe(self) -> str:
        if self.error:
            return f"run failed: {self.error}"
        s = self.summary
        lines = [f"{s['pipeline']}: test {s['metric']} under {len(s['runs'])} seeds"]
        lines += [f"  seed {r['seed']:>6}  {r['metrics'][s['metric']]:.4f}  ({r['worker']})" for r in s["runs"]]
        lines.append("  " + ", ".join(f"{k} {v:.4f}" for k, v in s["spread"].items()))
        return "\n".join(lines)


def run_seeds(pipeline: str, count: int, profile: str = "default", config_file: str | None = None,
              overrides: list[str] | None = None, task_runner: str = "local") -> SeedsOutcome:
    from modelgate.flows.seeds import seeds
    from modelgate.pipelines import get_pipeline
    from modelgate.tasks.seeds import main_metric

    overrides = overrides or []
    try:
        main_metric(get_pipeline(pipeline).load_config(profile, config_file, overrides))
        check_task_runner(task_runner)
        api_url = ensure_services(load_settings())
    except (ConfigError, TaskRunnerError, ValueError) as exc:
        return SeedsOutcome(EXIT_ERROR, error=str(exc))
    with temporary_settings({PREFECT_API_URL: api_url}):
        state = seeds.with_options(task_runner=resolve_task_runner(task_runner))(
            pipeline=pipeline, count=count, profile=profile, config_file=config_file, overrides=overrides,
            return_state=True)
    result = state.result(raise_on_failure=False)
    if not state.is_completed():
        return SeedsOutcome(EXIT_ERROR, error=str(result) if isinstance(result, BaseException) else state.type.value)
    return SeedsOutcome(EXIT_OK, summary=result)
