"""``modelgate run``: start what is missing, run a pipeline's flow, and say what happened."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from prefect.settings import PREFECT_API_URL, temporary_settings

from modelgate import stack
from modelgate.config import ConfigError
from modelgate.messages import one_line
from modelgate.runlog import run_log, run_log_path
from modelgate.settings import Settings, load_settings
from modelgate.summary import format_run_summary
from modelgate.validations.runner import ValidationFailed

EXIT_OK, EXIT_VALIDATION, EXIT_ERROR = 0, 1, 2


@dataclass
class RunOutcome:
    pipeline: str
    exit_code: int
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    flow_run_id: str | None = None
    ui_url: str | None = None
    log_file: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "exit_code": self.exit_code,
            "summary": self.summary,
            "error": self.error,
            "flow_run_id": self.flow_run_id,
            "ui_url": self.ui_url,
            "log_file": self.log_file,
        }

    def error_line(self) -> str | None:
        """The root cause in one line, for stderr; None when the pipeline ran."""
        if not self.error:
            return None
        label = "validation stopped the run" if self.exit_code == EXIT_VALIDATION else "run failed"
        return f"{label}: {self.error}"

    def details_line(self) -> str | None:
        """Where a failed run's details are: its log file and its page in the Prefect UI."""
        places = [self.log_file] if self.log_file else []
        if self.ui_url:
            places.append(f"Prefect run {self.ui_url}")
        return f"details: {', '.join(places)}" if self.error and places else None

    def describe(self) -> str:
        """What the pipeline produced (stdout); a failure is said by error_line and details_line."""
        lines = [format_run_summary(self.summary)] if self.summary else []
        if self.ui_url:
            lines.append(f"Prefect run: {self.ui_url}")
        return "\n".join(lines)


def _prefect_ui_url(api_url: str, flow_run_id: str | None) -> str | None:
    if not flow_run_id:
        return None
    base = api_url[: -len("/api")] if api_url.endswith("/api") else api_url
    return f"{base}/runs/flow-run/{flow_run_id}"


def ensure_services(settings: Settings) -> str:
    """Start the local stack's services that this run needs; return the Prefect API URL to use."""
    need_s3 = settings.uses_local_stack
    need_prefect = not os.environ.get("PREFECT_API_URL")
    if need_s3 or need_prefect:
        stack.ensure_stack(settings, s3=need_s3, prefect=need_prefect)
    return settings.prefect_api_url


def run_pipeline(
    pipeline: str,
    profile: str = "default",
    config_file: str | None = None,
    overrides: list[str] | None = None,
) -> RunOutcome:
    # Imported here: flows bring Prefect and every pipeline (TensorFlow, keras-hub), which the
    # CLI's other commands never need at start-up.
    from modelgate.flows import FLOWS
    from modelgate.pipelines import get_pipeline

    overrides = overrides or []
    try:
        # Resolve the configuration first: a typo should fail in a second, before any service
        # starts. The flow resolves it again from the same inputs, as a deployment's run does.
        get_pipeline(pipeline).load_config(profile, config_file, overrides)
        flow_fn = FLOWS[pipeline]
        settings = load_settings()
    except (ConfigError, ValueError) as exc:
        return RunOutcome(pipeline, EXIT_ERROR, error=one_line(exc))

    try:
        api_url = ensure_services(settings)
    except Exception as exc:  # the stack could not start: say so, exit 2
        return RunOutcome(pipeline, EXIT_ERROR, error=f"could not start the local stack: {one_line(exc)}")

    log_file = run_log_path(settings.home, pipeline)
    try:
        with temporary_settings({PREFECT_API_URL: api_url}), run_log(log_file):
            state = flow_fn(
                profile=profile, config_file=config_file, overrides=overrides, return_state=True
            )
    except Exception as exc:  # the flow did not even start (e.g. the Prefect API refused it)
        return RunOutcome(pipeline, EXIT_ERROR, error=f"the flow could not start: {one_line(exc)}",
                          log_file=str(log_file))
    return _outcome(pipeline, state, api_url, str(log_file))


def _outcome(pipeline: str, state, api_url: str, log_file: str) -> RunOutcome:
    """The flow's final state as an outcome: the summary, or the root cause of its failure."""
    flow_run_id = str(state.state_details.flow_run_id) if state.state_details.flow_run_id else None
    ui_url = _prefect_ui_url(api_url, flow_run_id)
    result = state.result(raise_on_failure=False)
    where = {"flow_run_id": flow_run_id, "ui_url": ui_url, "log_file": log_file}
    if state.is_completed():
        return RunOutcome(pipeline, EXIT_OK, summary=result, **where)
    if isinstance(result, ValidationFailed):
        return RunOutcome(pipeline, EXIT_VALIDATION, error=str(result), **where)
    message = one_line(result) if isinstance(result, BaseException) else f"flow ended {state.type.value}"
    return RunOutcome(pipeline, EXIT_ERROR, error=message, **where)
