"""``modelgate open``: links made when someone asks for them, never stored.

A target is a registered version (``MODEL:N``, ``MODEL@ALIAS``, ``MODEL`` for the latest) or a
Prefect flow-run id (the run's registered version and its Data Docs). What to open:

- ``report`` (default): the version's self-contained report.html, as a fresh presigned URL;
- ``docs``: the Great Expectations Data Docs. The site is many pages linking each other by
  relative paths, and a presigned URL signs one object only, so the whole site is copied to a
  local directory and opened as ``file://.../index.html``: every inner page works, on a private
  bucket too, for as long as the copy exists;
- any other word is a file of the version (``report/model_card.md``, ``metrics.json``...), as a
  fresh presigned URL.

Presigned URLs live ``SIGNED_SECONDS`` (15 minutes): long enough to open, short enough that a
pasted link stops working soon.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from modelgate.registry import Registry

SIGNED_SECONDS = 15 * 60
REPORT = "report"
DOCS = "docs"
REPORT_FILE = "report/report.html"
# Prefect flow-run ids are UUIDs; a run outside Prefect gets local-<hex> (tasks.context).
_RUN_ID = re.compile(r"^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|local-[0-9a-f]+)$")


class LinkError(LookupError):
    """The target or the file asked for does not exist; the message says which and where."""


@dataclass(frozen=True)
class Located:
    """Where a target's files are: the version's key prefix and the Data Docs' key prefix."""

    target: str
    version_prefix: str | None
    docs_prefix: str | None


def is_run_id(target: str) -> bool:
    return bool(_RUN_ID.match(target.strip().lower()))


def _docs_prefix(registry: Registry, docs_uri: str | None) -> str | None:
    if not docs_uri:
        return None
    return registry.store.key_of(docs_uri).rsplit("/", 1)[0]  # .../docs/index.html -> .../docs


def _version_of_run(registry: Registry, run_id: str):
    """The registered version whose manifest names this flow run, newest first; None if none."""
    for model in registry.list_models():
        for number in reversed(registry.list_versions(model)):
            version = registry.get_version(model, number)
            if version.manifest.get("prefect_flow_run_id") == run_id:
                return version
    return None


def _run_docs(registry: Registry, run_id: str) -> str | None:
    """validation/DATASET/SHA/RUN/docs: the run's Data Docs even when it registered nothing."""
    marker = f"/{run_id}/docs/index.html"
    for key in registry.store.list_keys("validation/"):
        if key.endswith(marker):
            return key[: -len("/index.html")]
    return None


def locate(registry: Registry, target: str) -> Located:
    if is_run_id(target):
        run_id = target.strip().lower()
        version = _version_of_run(registry, run_id)
        docs = _run_docs(registry, run_id)
        if version is None and docs is None:
            raise LinkError(f"flow run {run_id}: no registered version and no Data Docs in "
                            f"{registry.store.uri('')}")
    else:
        version, docs = registry.resolve(target), None
    prefix = registry.store.key_of(version.uri).rstrip("/") if version is not None else None
    if docs is None and version is not None:
        docs = _docs_prefix(registry, (version.manifest.get("datasets") or {}).get("data_docs_uri"))
    return Located(target, prefix, docs)


def signed_file(registry: Registry, located: Located, relative: str) -> str:
    """A fresh presigned URL of one file of the version."""
    if located.version_prefix is None:
        raise LinkError(f"{located.target} registered no version, so it has no {relative!r}")
    key = f"{located.version_prefix}/{relative.strip('/')}"
    if not registry.store.exists(key):
        raise LinkError(f"{located.target} has no file {relative!r} ({registry.store.uri(key)} is missing)")
    return registry.store.presigned_url(key, expires_s=SIGNED_SECONDS)


def local_docs(registry: Registry, located: Located, destination: Path | None = None) -> Path:
    """Copy the whole Data Docs site to ``destination`` (default: a new temporary directory);
    the path of its index.html."""
    if located.docs_prefix is None:
        raise LinkError(f"{located.target} has no Data Docs recorded")
    destination = Path(destination or tempfile.mkdtemp(prefix="modelgate-docs-"))
    if not registry.store.download_dir(located.docs_prefix, destination):
        raise LinkError(f"{located.target}: the Data Docs at {registry.store.uri(located.docs_prefix)} are empty")
    index = destination / "index.html"
    if not index.is_file():
        raise LinkError(f"{located.target}: no index.html in {registry.store.uri(located.docs_prefix)}")
    return index


def link_for(registry: Registry, target: str, what: str = REPORT, destination: Path | None = None) -> str:
    """What a browser opens for ``target``'s ``what``: an https presigned URL or a file:// URI."""
    located = locate(registry, target)
    if what == DOCS:
        return local_docs(registry, located, destination).resolve().as_uri()
    return signed_file(registry, located, REPORT_FILE if what == REPORT else what)
