"""Human-readable summaries of a pipeline run, shared by the CLI and the flows' final artifact."""

from __future__ import annotations

from typing import Any


def open_command(target: str, what: str) -> str:
    """The command that opens ``what`` of ``target`` with a link made when it runs
    (modelgate/links.py): what a person is shown instead of a stored, expiring link."""
    return f"modelgate open {target} {what}"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def metrics_rows(metrics: dict[str, dict[str, Any]]) -> list[list[str]]:
    rows = []
    for name, metric in metrics.items():
        interval = f"[{_fmt(metric.get('low'))}, {_fmt(metric.get('high'))}]"
        rows.append([name, _fmt(metric.get("value")), interval])
    return rows


def checks_rows(checks: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for check in checks:
        interval = (
            f"[{_fmt(check.get('low'))}, {_fmt(check.get('high'))}]" if check.get("low") is not None else "-"
        )
        rule = f"{check.get('comparator', '')} {_fmt(check.get('threshold'))}"
        if check.get("kind") == "change":
            rule = f"{rule} vs {_fmt(check.get('baseline'))}"
        outcome = "pass" if check.get("passed") else ("skipped" if check.get("passed") is None else "FAIL")
        rows.append([check.get("kind", ""), check.get("metric", ""), rule, _fmt(check.get("observed")), interval, outcome])
    return rows


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)] if rows else [len(h) for h in header]
    line = lambda cells: "  ".join(str(cell).ljust(width) for cell, width in zip(cells, widths))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(row) for row in rows)])


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(out)


def unchanged_line(summary: dict[str, Any]) -> str:
    """The first line of an unchanged re-run: the version that already holds the model, and the
    gate decided now against the one stored with it."""
    ref = f"{summary.get('model')}:{summary.get('version')}"
    now = (summary.get("verdict") or {}).get("decision", "-")
    stored = (summary.get("stored_verdict") or {}).get("decision", "-")
    line = (f"unchanged: {ref} already holds this model (registered {summary.get('registered_status', '-')}; "
            f"gate decision now: {now}")
    if now != stored:
        line += f", stored with {ref}: {stored}; reported only, no new version written"
    return line + ")"


def format_run_summary(summary: dict[str, Any]) -> str:
    """The block `modelgate run` prints at the end: version, verdict, metrics, where things are."""
    verdict = summary.get("verdict", {})
    headline = (
        unchanged_line(summary) if summary.get("status") == "unchanged" else
        f"{summary.get('model')} version {summary.get('version')} registered "
        f"({summary.get('status', 'unknown')}; gate decision: {verdict.get('decision', '-')})"
    )
    lines = [
        headline,
        "",
        text_table(["metric", "value", "95% interval"], metrics_rows(summary.get("metrics", {}))),
        "",
        "Gate: " + verdict.get("summary", ""),
    ]
    if verdict.get("checks"):
        lines += [
            text_table(
                ["kind", "metric", "rule", "observed", "95% interval", "result"],
                checks_rows(verdict["checks"]),
            )
        ]
    # Commands that make a fresh link when run (docs/design.md, "Links and artifacts"): a stored
    # link would expire, and an s3:// URI opens nowhere.
    if summary.get("model") and summary.get("version"):
        ref = f"{summary['model']}:{summary['version']}"
        lines.append(f"report: {open_command(ref, 'report')}")
        if summary.get("data_docs_uri"):
            lines.append(f"data docs: {open_command(ref, 'docs')}")
        lines.append(f"manifest: modelgate registry show {ref} --json")
    return "\n".join(lines)
