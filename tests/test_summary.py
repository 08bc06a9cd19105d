"""What `modelgate run` prints at the end: links a person can open, not s3:// URIs."""

from __future__ import annotations

from modelgate.summary import format_run_summary


def _summary(**extra) -> dict:
    return {
        "model": "intent-ood", "version": 3, "status": "passed",
        "metrics": {"accuracy": {"value": 0.95, "low": 0.94, "high": 0.96}},
        "verdict": {"decision": "pass", "summary": "PASS: 1/1 checks passed", "checks": []},
        "report_uri": "s3://b/registry/intent-ood/versions/3/report/report.html",
        "data_docs_uri": "s3://b/validation/x/docs/index.html",
        **extra,
    }


def test_the_summary_prints_browser_links_and_how_to_read_the_manifest():
    text = format_run_summary(_summary(
        report_link="http://127.0.0.1:8333/b/registry/intent-ood/versions/3/report/report.html?X-Amz-Signature=abc",
        data_docs_link="http://127.0.0.1:8333/b/validation/x/docs/index.html?X-Amz-Signature=def",
    ))
    assert "report: http://127.0.0.1:8333/" in text and "data docs: http://127.0.0.1:8333/" in text
    assert "s3://" not in text
    assert "manifest: modelgate registry show intent-ood:3 --json" in text


def test_without_links_the_summary_falls_back_to_the_uris():
    text = format_run_summary(_summary())
    assert "report: s3://b/registry/intent-ood/versions/3/report/report.html" in text
