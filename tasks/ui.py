"""What the Prefect UI shows of a run, shared by the tasks: artifact keys per pipeline, images
embedded in Markdown artifacts, and the commands that open stored files.

Keys carry the pipeline (``intent-ood-metrics``), so each key's history in the UI's Artifacts page
follows one pipeline. Images are embedded as data URIs: the UI's Markdown renderer shows them as
they are, and a data URI never expires, unlike a presigned link (docs/design.md, "Links and
artifacts").
"""

from __future__ import annotations

from modelgate.evaluation.report import png_data_uri
from modelgate.summary import open_command

__all__ = ["artifact_key", "open_lines", "png_data_uri", "png_markdown"]


def artifact_key(pipeline: str, name: str) -> str:
    """``PIPELINE-NAME`` in Prefect's key alphabet (lowercase letters, digits, dashes)."""
    return f"{pipeline}-{name}".lower().replace("_", "-")


def png_markdown(title: str, data: bytes) -> str:
    return f"## {title}\n\n![{title}]({png_data_uri(data)})\n"


def open_lines(target: str, *whats: str) -> list[str]:
    """Markdown bullets with the `modelgate open` command for each of ``whats``."""
    return [f"- {what}: `{open_command(target, what)}`" for what in whats]
