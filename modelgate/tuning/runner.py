"""``modelgate tune``: check the space before anything starts, run the tune flow on the chosen
task runner, write the best config where the person asked."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect.settings import PREFECT_API_URL, temporary_settings

from modelgate.config import ConfigError
from modelgate.runner import EXIT_ERROR, EXIT_OK, ensure_services
from modelgate.settings import load_settings
from modelgate.task_runners import TaskRunnerError, check_task_runner, resolve_task_runner
from modelgate.tuning.space import SpaceError


@dataclass
class TuneOutcome:
    exit_code: int
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    best_config_path: str | None = None

    def describe(self) -> str:
        if self.error:
            return f"tune failed: {self.error}"
        s, best = self.summary, self.summary["best"]
        lines = [f"study {s['study']}: {len(s['trials'])} trials ({s['resumed']} resumed, {s['ran']} run now)",
                 f"{'trial':>5}  {'validation ' + s['metric']:>22}  params"]
        for r in sorted(s["trials"], key=lambda r: r["number"]):
            mark = "*" if r["number"] == best["number"] else " "
            lines.append(f"{r['number']:>4}{mark}  {r['value']:>22.4f}  {r['params']}")
        lines.append(f"best config: {self.best_config_path} (also {s['best_config_uri']}); plot {s['plot_uri']}")
        return "\n".join(lines)


def check_tune_inputs(pipeline: str, trials: int, space_file: str | None, profile: str,
                      config_file: str | None, overrides: list[str], task_runner: str) -> None:
    """Everything a typo can break, in a second: pipeline, config, space, task runner."""
    from modelgate.pipelines import get_pipeline
    from modelgate.tuning.objective import validation_metrics
    from modelgate.tuning.space import load_space

    if trials < 1:
        raise ConfigError(f"--trials must be at least 1 (got {trials})")
    cfg = get_pipeline(pipeline).load_config(profile, config_file, overrides)
    load_space(space_file, pipeline, cfg, validation_metrics(pipeline))
    check_task_runner(task_runner)


def run_tune(pipeline: str, trials: int, space_file: str | None = None, profile: str = "default",
             config_file: str | None = None, overrides: list[str] | None = None, parallel: int = 1,
             task_runner: str = "local", output: str | None = None) -> TuneOutcome:
    from modelgate.flows.tune import tune

    overrides = overrides or []
    try:
        check_tune_inputs(pipeline, trials, space_file, profile, config_file, overrides, task_runner)
        api_url = ensure_services(load_settings())
    except (ConfigError, SpaceError, TaskRunnerError, ValueError) as exc:
        return TuneOutcome(EXIT_ERROR, error=str(exc))
    with temporary_settings({PREFECT_API_URL: api_url}):
        state = tune.with_options(task_runner=resolve_task_runner(task_runner))(
            pipeline=pipeline, trials=trials, space_file=space_file, profile=profile, config_file=config_file,
            overrides=overrides, parallel=parallel, return_state=True)
    result = state.result(raise_on_failure=False)
    if not state.is_completed():
        return TuneOutcome(EXIT_ERROR, error=str(result) if isinstance(result, BaseException) else state.type.value)
    path = Path(output or f"{pipeline}-best.yaml")
    path.write_text(result["best_config"])
    return TuneOutcome(EXIT_OK, summary=result, best_config_path=str(path))
