"""`modelgate open` against a real SeaweedFS: links made on demand (a fresh presigned URL of the
report or any file of a version, found by MODEL:V or by the flow run that registered it), and the
Data Docs as a local copy of the whole site, whose inner pages work on a private bucket."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelgate.cli import app
from modelgate.links import SIGNED_SECONDS, LinkError, link_for
from modelgate.registry import Registry

RUN_ID = str(uuid.uuid4())


def _register(registry: Registry, tmp_path: Path) -> str:
    """A version with a report, registered by flow run RUN_ID, with a two-page Data Docs site."""
    files = tmp_path / "version"
    (files / "report").mkdir(parents=True)
    (files / "model.keras").write_bytes(b"weights")
    (files / "report" / "report.html").write_text("<html><body>the report of intent-ood v1</body></html>")
    (files / "report" / "model_card.md").write_text("# Model card")
    docs = f"validation/clinc_oos/abc123/{RUN_ID}/docs"
    registry.store.put_bytes(f"{docs}/index.html", b'<a href="validations/run/page.html">run</a>')
    registry.store.put_bytes(f"{docs}/validations/run/page.html", b"<html>expectation results</html>")
    fields = {"prefect_flow_run_id": RUN_ID, "datasets": {"data_docs_uri": registry.store.uri(f"{docs}/index.html")}}
    return registry.register("intent-ood", files, fields).ref


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def test_open_signs_the_report_now_for_a_short_time(modelgate_env, object_store, tmp_path):
    ref = _register(Registry(object_store), tmp_path)
    result = CliRunner().invoke(app, ["open", ref, "--print"])
    assert result.exit_code == 0, result.output
    url = result.stdout.strip()
    assert url.startswith("http") and "X-Amz-Signature" in url
    query = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
    assert query["X-Amz-Expires"] == [str(SIGNED_SECONDS)]
    assert b"the report of intent-ood v1" in _fetch(url)  # no credentials needed
    # The bucket is private: the same object without a signature is refused.
    with pytest.raises(urllib.error.HTTPError):
        _fetch(url.split("?")[0])
    card = link_for(Registry(object_store), ref, "report/model_card.md")
    assert _fetch(card) == b"# Model card"


def test_open_finds_the_version_and_docs_of_a_flow_run(modelgate_env, object_store, tmp_path):
    registry = Registry(object_store)
    _register(registry, tmp_path)
    assert b"the report of intent-ood v1" in _fetch(link_for(registry, RUN_ID, "report"))
    result = CliRunner().invoke(app, ["open", RUN_ID, "docs", "--print"])
    assert result.exit_code == 0, result.output
    index = Path(urllib.parse.urlparse(result.stdout.strip()).path)
    assert index.name == "index.html" and index.is_file()
    # The relative link from the index resolves in the local copy: every inner page works.
    assert (index.parent / "validations" / "run" / "page.html").read_text() == "<html>expectation results</html>"


def test_missing_targets_and_files_are_named(modelgate_env, object_store, tmp_path):
    registry = Registry(object_store)
    ref = _register(registry, tmp_path)
    with pytest.raises(LinkError, match="has no file 'nope.txt'"):
        link_for(registry, ref, "nope.txt")
    unknown = str(uuid.uuid4())
    result = CliRunner().invoke(app, ["open", unknown, "--print"])
    assert result.exit_code == 2 and f"flow run {unknown}: no registered version" in result.output
    result = CliRunner().invoke(app, ["open", "intent-ood:9", "--print"])
    assert result.exit_code == 2 and "intent-ood:9 is not in the registry" in result.output
