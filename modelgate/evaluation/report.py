"""The evaluation report of a model version (Markdown + self-contained HTML) and its model card.

Inputs are plain values (dicts, MetricValue, Verdict or their to_dict() forms) so every pipeline
can call these with what it already has. The HTML embeds plots as base64 data URIs so one file
opened from S3 or a CI artifact shows everything; the Markdown links the PNGs next to it, and
``embed_images`` turns those links into data URIs where the Markdown is shown on its own (the
Prefect UI's artifacts), so its images never depend on a link that expires.
"""

from __future__ import annotations

import base64
import html
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from modelgate.evaluation.bootstrap import MetricValue
from modelgate.gate import Verdict

MARKDOWN_NAME = "report.md"
HTML_NAME = "report.html"
PLOTS_DIR = "plots"

_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; max-width: 980px;
       margin: 2em auto; padding: 0 1em; color: #1f2328; line-height: 1.5; }
h1 { border-bottom: 2px solid #d0d7de; padding-bottom: .3em; }
h2 { margin-top: 1.8em; border-bottom: 1px solid #d0d7de; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #d0d7de; padding: .35em .8em; text-align: left; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.pass { color: #1a7f37; font-weight: 600; } .fail { color: #cf222e; font-weight: 600; }
.refuse, .skipped { color: #9a6700; font-weight: 600; }
.verdict { font-size: 1.2em; padding: .6em 1em; border-radius: 6px; background: #f6f8fa; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #d0d7de; }
dl.lineage dt { font-weight: 600; }
dl.lineage dd { margin: 0 0 .4em 1.5em; font-family: monospace; }
"""


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    html: Path


# -- normalising inputs ----------------------------------------------------------------------
def _metric_list(metrics: Mapping[str, Any] | Sequence[Any]) -> list[MetricValue]:
    items = metrics.items() if isinstance(metrics, Mapping) else ((None, m) for m in metrics)
    out = []
    for name, value in items:
        if isinstance(value, MetricValue):
            out.append(value)
        elif isinstance(value, Mapping):
            out.append(MetricValue.from_dict({"name": name, **value}))
        else:
            raise TypeError(
                f"metric {name!r}: expected MetricValue or dict, got {type(value).__name__}"
            )
    return out


def _verdict(verdict: Verdict | Mapping[str, Any] | None) -> Verdict | None:
    if verdict is None or isinstance(verdict, Verdict):
        return verdict
    return Verdict.from_dict(dict(verdict))


def _num(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _interval(metric: MetricValue) -> str:
    return f"[{_num(metric.low)}, {_num(metric.high)}]" if metric.has_interval else "n/a"


def _status(passed: bool | None) -> str:
    return "skipped" if passed is None else ("pass" if passed else "fail")


def _check_interval(check) -> str:
    return f"[{_num(check.low)}, {_num(check.high)}]" if check.low is not None else "n/a"


def _rule(check) -> str:
    suffix = "" if check.use == "value" else f" ({check.use} bound)"
    return f"{check.comparator} {_num(check.threshold)}{suffix}"


def _md_cell(text: Any) -> str:
    # A pipe or newline would break the Markdown table row.
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return lines


def _metric_rows(
    metrics: list[MetricValue], confidence: float
) -> tuple[list[str], list[list[Any]]]:
    header = ["metric", "value", f"{confidence:.0%} interval", "n", "direction"]
    rows = [[m.name, _num(m.value), _interval(m), m.n,
             "higher is better" if m.higher_is_better else "lower is better"] for m in metrics]
    return header, rows


def _verdict_rows(verdict: Verdict) -> tuple[list[str], list[list[Any]]]:
    header = ["kind", "metric", "threshold", "observed", "interval", "baseline", "change",
              "result", "note"]
    rows = [[c.kind, c.metric, _rule(c), _num(c.observed), _check_interval(c), _num(c.baseline),
             _num(c.change), _status(c.passed), c.note] for c in verdict.checks]
    return header, rows


# -- Markdown --------------------------------------------------------------------------------
def render_report_markdown(
    *,
    title: str,
    model: str,
    version: int | str,
    lineage: Mapping[str, Any],
    metrics: Mapping[str, Any] | Sequence[Any],
    verdict: Verdict | Mapping[str, Any] | None = None,
    plots: Mapping[str, str] | None = None,
    notes: str | Sequence[str] = (),
    confidence: float = 0.95,
) -> str:
    """Markdown text; ``plots`` maps a section title to an image path relative to the report."""
    lines = [f"# {title}", "", f"- **model**: `{model}`", f"- **version**: `{version}`"]
    lines += [f"- **{key}**: `{value}`" for key, value in lineage.items()]
    lines += ["", "## Metrics", "", *_md_table(*_metric_rows(_metric_list(metrics), confidence))]
    verdict = _verdict(verdict)
    lines += ["", "## Gate verdict", ""]
    if verdict is None:
        lines.append("The gate has not been evaluated for this version.")
    else:
        lines += [f"**{verdict.summary()}**", ""]
        lines += [f"- {reason}" for reason in verdict.reasons]
        if verdict.checks:
            lines += ["", *_md_table(*_verdict_rows(verdict))]
    for section, image in (plots or {}).items():
        lines += ["", f"## {section}", "", f"![{section}]({Path(image).as_posix()})"]
    notes = [notes] if isinstance(notes, str) else list(notes)
    if notes:
        lines += ["", "## Notes", "", *[f"- {note}" for note in notes]]
    return "\n".join(lines) + "\n"


# -- HTML ------------------------------------------------------------------------------------
def _html_table(header: list[str], rows: list[list[Any]], status_column: int | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            text = html.escape(str(cell))
            if i == status_column:
                cells.append(f'<td class="{text}">{text}</td>')
            elif isinstance(cell, (int, float)) or text[:1].isdigit():
                cells.append(f'<td class="num">{text}</td>')
            else:
                cells.append(f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def png_data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _data_uri(path: Path) -> str:
    return png_data_uri(path.read_bytes())


# A Markdown image whose target is a relative .png path (what render_report_markdown writes).
_RELATIVE_PNG = re.compile(r"!\[([^\]]*)\]\((?![a-z][a-z0-9+.-]*:)([^)\s]+\.png)\)")


def embed_images(markdown: str, read: Callable[[str], bytes]) -> str:
    """The Markdown with every relative PNG link replaced by a data URI of ``read(path)``."""
    return _RELATIVE_PNG.sub(lambda m: f"![{m.group(1)}]({png_data_uri(read(m.group(2)))})", markdown)


def render_report_html(
    *,
    title: str,
    model: str,
    version: int | str,
    lineage: Mapping[str, Any],
    metrics: Mapping[str, Any] | Sequence[Any],
    verdict: Verdict | Mapping[str, Any] | None = None,
    plots: Mapping[str, str | Path] | None = None,
    notes: str | Sequence[str] = (),
    confidence: float = 0.95,
) -> str:
    """Self-contained HTML; ``plots`` maps a section title to a PNG file that gets embedded."""
    esc = html.escape
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{esc(title)}</h1><dl class=\"lineage\">",
             f"<dt>model</dt><dd>{esc(model)}</dd><dt>version</dt><dd>{esc(str(version))}</dd>"]
    parts += [f"<dt>{esc(str(k))}</dt><dd>{esc(str(v))}</dd>" for k, v in lineage.items()]
    parts += ["</dl><h2>Metrics</h2>",
              _html_table(*_metric_rows(_metric_list(metrics), confidence))]
    verdict = _verdict(verdict)
    parts.append("<h2>Gate verdict</h2>")
    if verdict is None:
        parts.append("<p>The gate has not been evaluated for this version.</p>")
    else:
        parts.append(f'<p class="verdict"><span class="{verdict.decision}">'
                     f"{esc(verdict.summary())}</span></p>")
        if verdict.reasons:
            parts.append("<ul>" + "".join(f"<li>{esc(r)}</li>" for r in verdict.reasons) + "</ul>")
        if verdict.checks:
            parts.append(_html_table(*_verdict_rows(verdict), status_column=7))
    for section, image in (plots or {}).items():
        image = Path(image)
        if not image.is_file():
            raise FileNotFoundError(f"plot for section {section!r} not found: {image}")
        parts.append(f"<h2>{esc(section)}</h2><figure><img alt=\"{esc(section)}\" "
                     f"src=\"{_data_uri(image)}\"><figcaption>{esc(section)}</figcaption></figure>")
    notes = [notes] if isinstance(notes, str) else list(notes)
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def render_report(
    out_dir: str | Path,
    *,
    title: str,
    model: str,
    version: int | str,
    lineage: Mapping[str, Any],
    metrics: Mapping[str, Any] | Sequence[Any],
    verdict: Verdict | Mapping[str, Any] | None = None,
    plots: Mapping[str, str | Path] | None = None,
    notes: str | Sequence[str] = (),
    confidence: float = 0.95,
) -> ReportFiles:
    """Write report.md (+ plots/ beside it) and a self-contained report.html into ``out_dir``.

    ``lineage`` holds lines such as dataset snapshot URIs and hashes, git commit, config hash.
    The directory is what the registry stores under ``versions/N/report/``.
    """
    out_dir = Path(out_dir)
    (out_dir / PLOTS_DIR).mkdir(parents=True, exist_ok=True)
    relative: dict[str, str] = {}
    for section, image in (plots or {}).items():
        image = Path(image)
        if not image.is_file():
            raise FileNotFoundError(f"plot for section {section!r} not found: {image}")
        target = out_dir / PLOTS_DIR / image.name
        if image.resolve() != target.resolve():
            shutil.copyfile(image, target)
        relative[section] = f"{PLOTS_DIR}/{image.name}"
    common = dict(title=title, model=model, version=version, lineage=lineage, metrics=metrics,
                  verdict=verdict, notes=notes, confidence=confidence)
    markdown = out_dir / MARKDOWN_NAME
    markdown.write_text(render_report_markdown(plots=relative, **common), encoding="utf-8")
    page = out_dir / HTML_NAME
    page.write_text(
        render_report_html(plots={s: out_dir / p for s, p in relative.items()}, **common),
        encoding="utf-8",
    )
    return ReportFiles(markdown=markdown, html=page)


# -- model card ------------------------------------------------------------------------------
def render_model_card(
    *,
    model: str,
    version: int | str,
    intended_use: str,
    training_data: str | Mapping[str, Any],
    evaluation_data: str | Mapping[str, Any],
    metrics: Mapping[str, Any] | Sequence[Any],
    limitations: str | Sequence[str],
    how_to_load: str,
    description: str = "",
    verdict: Verdict | Mapping[str, Any] | None = None,
    confidence: float = 0.95,
) -> str:
    """Markdown model card: intended use, data, metrics with intervals, limitations, loading."""

    def block(value: str | Mapping[str, Any]) -> list[str]:
        if isinstance(value, Mapping):
            return [f"- **{k}**: `{v}`" for k, v in value.items()]
        return [value]

    limitations = [limitations] if isinstance(limitations, str) else list(limitations)
    lines = [f"# Model card: {model} v{version}", ""]
    if description:
        lines += [description, ""]
    lines += ["## Intended use", "", intended_use, "",
              "## Training data", "", *block(training_data), "",
              "## Evaluation data", "", *block(evaluation_data), "",
              "## Metrics", "", *_md_table(*_metric_rows(_metric_list(metrics), confidence))]
    verdict = _verdict(verdict)
    if verdict is not None:
        lines += ["", f"Gate: {verdict.summary()}"]
    lines += ["", "## Limitations", "", *[f"- {item}" for item in limitations],
              "", "## How to load", "", "```", how_to_load.strip(), "```"]
    return "\n".join(lines) + "\n"
