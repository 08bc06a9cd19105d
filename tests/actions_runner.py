"""Runs the `run:` steps of a GitHub Actions job locally, the way the Actions runner does:
each step in bash -e with the job's and the step's env, GITHUB_OUTPUT / GITHUB_PATH /
GITHUB_STEP_SUMMARY files, step outputs and outcomes, and `if:` conditions (success() by
default). `uses:` steps are actions that only exist on GitHub; the caller's environment stands in
for them (checkout = the caller's workspace, Python = this venv)."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

_EXPR = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")


@dataclass
class StepResult:
    id: str
    ran: bool
    exit_code: int | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    log: str = ""
    summary: str = ""  # what the step appended to $GITHUB_STEP_SUMMARY

    @property
    def outcome(self) -> str:
        """`steps.<id>.outcome` as the runner reports it."""
        if not self.ran:
            return "skipped"
        return "success" if self.exit_code == 0 else "failure"


class JobRun:
    def __init__(self, workflow: Path, job: str, context: dict[str, dict[str, str]]):
        spec = yaml.safe_load(workflow.read_text())
        self.job = spec["jobs"][job]
        self.context = context  # inputs, vars, secrets, github
        self.steps: dict[str, StepResult] = {}

    def _value(self, expression: str) -> str:
        scope, _, name = expression.partition(".")
        if scope == "steps":
            step_id, _, rest = name.partition(".")
            step = self.steps.get(step_id)
            if step is None:
                return ""
            if rest == "outcome":
                return step.outcome
            return step.outputs.get(rest.removeprefix("outputs."), "")
        return str(self.context.get(scope, {}).get(name, ""))

    def expand(self, text: str) -> str:
        return _EXPR.sub(lambda m: self._value(m.group(1)), str(text))

    def condition(self, expression: str | None, failed: bool) -> bool:
        expression = (expression or "success()").strip()
        expression = _EXPR.sub(lambda m: m.group(1), expression)
        if expression == "always()":
            return True
        if expression == "failure()":
            return failed
        if expression == "success()":
            return not failed
        match = re.fullmatch(r"(steps\.[\w-]+\.outputs\.[\w-]+)\s*==\s*'([^']*)'", expression)
        if not match:
            raise ValueError(f"unsupported if: {expression!r}")
        return not failed and self._value(match.group(1)) == match.group(2)

    def run(self, cwd: Path, env: dict[str, str], skip_ids=("install",)) -> dict[str, StepResult]:
        job_env = {k: self.expand(v) for k, v in (self.job.get("env") or {}).items()}
        path_file, failed = cwd / ".github_path", False
        path_file.write_text("")
        for index, step in enumerate(self.job["steps"]):
            step_id = step.get("id", f"step{index}")
            if "uses" in step or step_id in skip_ids or not self.condition(step.get("if"), failed):
                self.steps[step_id] = StepResult(step_id, ran=False)
                continue
            output_file = cwd / f".github_output_{step_id}"
            output_file.write_text("")
            summary_file = cwd / f".github_step_summary_{step_id}"
            summary_file.write_text("")
            extra_path = [p for p in path_file.read_text().splitlines() if p]
            step_env = {
                **env,
                **job_env,
                **{k: self.expand(v) for k, v in (step.get("env") or {}).items()},
                "GITHUB_OUTPUT": str(output_file),
                "GITHUB_PATH": str(path_file),
                "GITHUB_STEP_SUMMARY": str(summary_file),
                "PATH": os.pathsep.join(extra_path + [env.get("PATH", os.environ["PATH"])]),
            }
            done = subprocess.run(
                ["bash", "-e", "-c", step["run"]], cwd=cwd, env=step_env, capture_output=True, text=True
            )
            outputs = dict(
                line.split("=", 1) for line in output_file.read_text().splitlines() if "=" in line
            )
            self.steps[step_id] = StepResult(
                step_id, True, done.returncode, outputs, done.stdout + done.stderr, summary_file.read_text()
            )
            failed = failed or done.returncode != 0
        return self.steps
