"""What `modelgate run` prints at the end: commands a person runs to open the report and the Data
Docs (each makes a fresh link), never s3:// URIs or stored links that expire."""

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


def test_the_summary_prints_open_commands_not_uris_or_expiring_links():
    text = format_run_summary(_summary(
        report_link="http://127.0.0.1:8333/b/registry/intent-ood/versions/3/report/report.html?X-Amz-Signature=abc",
    ))
    assert "report: modelgate open intent-ood:3 report" in text
    assert "data docs: modelgate open intent-ood:3 docs" in text
    assert "manifest: modelgate registry show intent-ood:3 --json" in text
    assert "s3://" not in text and "X-Amz-Signature" not in text


def test_a_run_without_data_docs_offers_no_docs_command():
    text = format_run_summary(_summary(data_docs_uri=""))
    assert "modelgate open intent-ood:3 report" in text and "docs" not in text
