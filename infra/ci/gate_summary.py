"""The job summary of the model-gate workflow, as Markdown on stdout (for $GITHUB_STEP_SUMMARY).

Reads what the workflow's steps wrote: gate.json (`modelgate gate --json`) and, when the job
trained the candidate, run.json (`modelgate run --json`). Shows the verdict, the gate's checks
(as re-evaluated against the alias now, else as registered) and the candidate's metrics.

    python infra/ci/gate_summary.py --gate gate.json --run run.json --promoted success
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from modelgate.summary import checks_rows, markdown_table, metrics_rows

CHECKS_HEADER = ["kind", "metric", "rule", "observed", "95% interval", "result"]
METRICS_HEADER = ["metric", "value", "95% interval"]


def read_json(path: Path) -> dict | None:
    """The file's JSON object; None when the step that writes it did not run or wrote nothing."""
    if not path.is_file() or not path.read_text().strip():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SystemExit(f"{path}: not JSON ({exc})") from None


def gate_section(gate: dict | None, promoted: str) -> list[str]:
    if gate is None:
        return ["## model-gate: no verdict", "", "No gate.json was written: see the job log for the step that failed."]
    lines = [f"## model-gate: {gate['decision'].upper()} {gate['ref']}", "", gate["reason"]]
    if gate.get("baseline_ref"):
        lines += ["", f"Baseline: {gate['baseline_ref']}"]
    if promoted:
        lines += ["", f"Promote step: {promoted}"]
    verdict = gate.get("verdict") or gate.get("stored_verdict") or {}
    if verdict.get("checks"):
        lines += ["", "### Gate checks", "", markdown_table(CHECKS_HEADER, checks_rows(verdict["checks"]))]
    return lines


def metrics_section(run: dict | None) -> list[str]:
    summary = (run or {}).get("summary") or {}
    if not summary.get("metrics"):
        return []
    title = f"### Metrics of {summary.get('model')}:{summary.get('version')}"
    return ["", title, "", markdown_table(METRICS_HEADER, metrics_rows(summary["metrics"]))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gate", type=Path, default=Path("gate.json"))
    parser.add_argument("--run", type=Path, default=Path("run.json"))
    parser.add_argument("--promoted", default="", help="outcome of the promote step (success, failure, skipped)")
    args = parser.parse_args(argv)
    lines = gate_section(read_json(args.gate), args.promoted) + metrics_section(read_json(args.run))
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
