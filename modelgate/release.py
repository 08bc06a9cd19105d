"""Gate and register, shared by every pipeline.

gate: absolute thresholds from the pipeline config plus change thresholds against the version that
holds the ``production`` alias now. register: one immutable registry version holding the staged
model, metrics.json (verdict included), the report and model card, and a manifest with lineage.
A model that fails its gate is still registered, with status "failed", so the evidence is kept.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from modelgate.config import PipelineConfig
from modelgate.lineage import environment_lineage
from modelgate.storage import ObjectStore

PRODUCTION = "production"
METRICS_FILE = "metrics.json"
REPORT_DIR = "report"
MODEL_CARD = "model_card.md"


def production_baseline(store: ObjectStore, model: str):
    """(metrics, "MODEL:N") of the version holding `production`, or (None, None)."""
    from modelgate.evaluation.bootstrap import metrics_from_dict
    from modelgate.registry import Registry

    registry = Registry(store)
    alias = registry.get_alias(model, PRODUCTION)
    if alias is None:
        return None, None
    manifest = registry.get_manifest(model, alias.version)
    return metrics_from_dict(manifest.get("metrics", {})), f"{model}:{alias.version}"


def gate(cfg: PipelineConfig, store: ObjectStore, evaluation: dict) -> dict:
    from modelgate.evaluation.bootstrap import metrics_from_dict
    from modelgate.gate import evaluate_gate

    baseline, baseline_ref = production_baseline(store, cfg.pipeline)
    verdict = evaluate_gate(metrics_from_dict(evaluation["metrics"]), cfg.gate, baseline, baseline_ref)
    return {**verdict.to_dict(), "summary": verdict.summary()}


def _prepare_version_dir(
    cfg: PipelineConfig,
    store: ObjectStore,
    trained: dict,
    evaluation: dict,
    verdict: dict,
    lineage: dict,
    version: int,
    directory: Path,
) -> None:
    """Lay out everything a version holds, in ``directory``, before it is uploaded."""
    from modelgate.artifacts import read_inference, recalibrate_model_file, write_inference
    from modelgate.evaluation.report import render_model_card, render_report
    from modelgate.pipelines import get_pipeline

    pipeline = get_pipeline(cfg.pipeline)
    store.download_dir(store.key_of(trained["uri"]), directory)
    if evaluation.get("model_updates"):
        recalibrate_model_file(directory, evaluation["model_updates"])
    inference = read_inference(directory)
    inference.update(evaluation.get("inference_updates", {}))
    write_inference(directory, inference)

    status = "passed" if verdict["passed"] else "failed"
    (directory / METRICS_FILE).write_text(
        json.dumps(
            {"metrics": evaluation["metrics"], "details": evaluation.get("details", {}),
             "verdict": verdict, "status": status},
            indent=2, sort_keys=True,
        )
    )
    plots_dir = directory / "_plots"
    plots = {
        name.replace("_", " "): store.download_file(store.key_of(uri), plots_dir / Path(uri).name)
        for name, uri in evaluation["plots"].items()
    }
    report_dir = directory / REPORT_DIR
    render_report(
        report_dir,
        title=f"{cfg.pipeline} v{version}: {status}",
        model=cfg.pipeline,
        version=version,
        lineage=_lineage_lines(lineage, trained),
        metrics=evaluation["metrics"],
        verdict=verdict,
        plots=plots,
        notes=_notes(evaluation.get("details", {})),
    )
    card = pipeline.model_card(cfg)
    # What a predict call looks like for this task (a pair, two titles...), else one text.
    predict_example = getattr(pipeline, "PREDICT_EXAMPLE", '"some text"')
    (report_dir / MODEL_CARD).write_text(
        render_model_card(
            model=cfg.pipeline,
            version=version,
            metrics=evaluation["metrics"],
            verdict=verdict,
            how_to_load=(
                f"modelgate predict {cfg.pipeline}:{version} {predict_example}\n"
                f"# or in Python: modelgate.predict.load_predictor(\"{cfg.pipeline}:{version}\")"
            ),
            **card,
        )
    )
    for leftover in plots_dir.iterdir():
        leftover.unlink()
    plots_dir.rmdir()


def _notes(details: dict[str, Any]) -> list[str]:
    """Scalar details as lines; the calibration search as one line per candidate."""
    notes = [
        f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}"
        for k, v in details.items()
        if not isinstance(v, (list, dict))
    ]
    for row in details.get("calibration_candidates", []):
        notes.append(
            "calibration candidate (validation): "
            + ", ".join(f"{k}={v:.4f}" for k, v in row.items())
        )
    return notes


def _lineage_lines(lineage: dict, trained: dict) -> dict[str, str]:
    raw = lineage.get("raw_snapshot", {})
    validated = (lineage.get("validated_snapshot") or {}).get("filtered_snapshot") or {}
    return {
        "raw dataset": f"{raw.get('uri')} (sha256 {raw.get('sha256')})",
        "validated dataset": f"{validated.get('uri')} (sha256 {validated.get('sha256')})",
        "training key": trained.get("train_key", ""),
        "backend / device": f"{trained.get('backend')} / {trained.get('device')}",
    }


def register(
    cfg: PipelineConfig,
    store: ObjectStore,
    trained: dict,
    evaluation: dict,
    verdict: dict,
    lineage: dict,
    flow_run_id: str,
) -> dict[str, Any]:
    from modelgate.registry import Registry

    registry = Registry(store)
    validation = lineage.get("validated_snapshot") or {}
    manifest_fields = {
        "pipeline": cfg.pipeline,
        "status": "passed" if verdict["passed"] else "failed",
        "config": cfg.model_dump(mode="json"),
        "config_sha256": cfg.digest(),
        "datasets": {
            "raw": lineage.get("raw_snapshot"),
            "validated": validation.get("filtered_snapshot"),
            "quarantine_uri": validation.get("quarantine_uri"),
            "data_docs_uri": validation.get("docs_uri"),
        },
        "seeds": {"global": cfg.seed},
        "training": {k: v for k, v in trained.items() if k != "history"},
        "metrics": evaluation["metrics"],
        "evaluation": evaluation.get("details", {}),
        "verdict": verdict,
        "prefect_flow_run_id": flow_run_id,
        **environment_lineage(),
    }
    # Claim the number first so the report and model card can name it; the manifest is written
    # last, so a crash before it leaves no visible version and the number is never reused.
    number = registry.claim_version(cfg.pipeline)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        _prepare_version_dir(cfg, store, trained, evaluation, verdict, lineage, number, directory)
        paths = sorted(p for p in directory.rglob("*") if p.is_file())
        files = registry.upload_files(cfg.pipeline, number, directory, paths)
        report_md = (directory / REPORT_DIR / "report.md").read_text()
    version = registry.commit_version(cfg.pipeline, number, files, manifest_fields)
    prefix = store.key_of(version.uri).rstrip("/")
    report_key = f"{prefix}/{REPORT_DIR}/report.html"
    return {
        "pipeline": cfg.pipeline,
        "model": cfg.pipeline,
        "version": version.version,
        "status": manifest_fields["status"],
        "metrics": evaluation["metrics"],
        "verdict": verdict,
        "manifest_uri": store.uri(f"{prefix}/manifest.json"),
        "report_uri": store.uri(report_key),
        "report_link": store.client.generate_presigned_url(
            "get_object", Params={"Bucket": store.bucket, "Key": report_key}, ExpiresIn=7 * 24 * 3600
        ),
        "data_docs_uri": validation.get("docs_uri"),
        "report_markdown": report_md,
    }
