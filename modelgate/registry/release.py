"""Gate and register, shared by every pipeline.

gate: absolute thresholds from the pipeline config plus change thresholds against the version that
holds the ``production`` alias now. register: one immutable registry version holding the staged
model, metrics.json (verdict included), the report and model card, and a manifest with lineage.
A model that fails its gate is still registered, with status "failed", so the evidence is kept.

An unchanged re-run registers nothing: when the latest version records the same content identity
(training key, staged model sha256, data snapshots, config, evaluation key) and passes
verification, register returns that version with status "unchanged" and the gate verdict decided
now beside the one stored with it (docs/design.md, "Unchanged re-runs").
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelgate.artifacts import read_inference, recalibrate_model_file, write_inference
from modelgate.config import PipelineConfig
from modelgate.data.snapshot import DatasetSnapshot
from modelgate.evaluation.bootstrap import metrics_from_dict
from modelgate.evaluation.report import render_model_card, render_report
from modelgate.evaluation.result import Evaluation
from modelgate.gate import Verdict, evaluate_gate
from modelgate.pipelines.base import Pipeline
from modelgate.pipelines.results import TrainedModel
from modelgate.pipelines.stages import evaluation_cache_record, staged_model_sha256
from modelgate.registry.integrity import VerifiedVersion, verify_version
from modelgate.registry.lineage import environment_lineage
from modelgate.registry.promotion import PRODUCTION, baseline
from modelgate.registry.versions import Registry, RegistryError
from modelgate.storage import ObjectStore
from modelgate.validations.runner import ValidationReport

METRICS_FILE = "metrics.json"
REPORT_DIR = "report"
MODEL_CARD = "model_card.md"
UNCHANGED = "unchanged"
IDENTITY_FIELD = "identity"  # the manifest field an unchanged re-run is recognised by


def gate(cfg: PipelineConfig, store: ObjectStore, evaluation: Evaluation) -> Verdict:
    """The candidate's metrics against the config's thresholds and against ``production`` now."""
    baseline_metrics, baseline_ref = baseline(Registry(store), cfg.pipeline, PRODUCTION)
    return evaluate_gate(metrics_from_dict(evaluation.metrics), cfg.gate, baseline_metrics, baseline_ref)


@dataclass(frozen=True)
class Candidate:
    """Everything one run produced that a version records."""

    pipeline: Pipeline
    cfg: PipelineConfig
    snapshot: DatasetSnapshot
    validated: ValidationReport
    trained: TrainedModel
    evaluation: Evaluation
    verdict: Verdict

    @property
    def status(self) -> str:
        return "passed" if self.verdict.passed else "failed"


def _write_metrics_and_model(c: Candidate, store: ObjectStore, directory: Path) -> None:
    """The staged model with the evaluation's calibration and inference settings, and metrics.json."""
    store.download_dir(store.key_of(c.trained.uri), directory)
    for name, uri in c.evaluation.files.items():  # what evaluation fitted for serving
        store.download_file(store.key_of(uri), directory / name)
    if c.evaluation.model_updates:
        recalibrate_model_file(directory, c.evaluation.model_updates)
    inference = read_inference(directory)
    inference.update(c.evaluation.inference_updates)
    write_inference(directory, inference)
    (directory / METRICS_FILE).write_text(
        json.dumps(
            {"metrics": c.evaluation.metrics, "details": c.evaluation.details,
             "verdict": c.verdict.to_dict(), "status": c.status},
            indent=2, sort_keys=True,
        )
    )


def _write_report(c: Candidate, store: ObjectStore, version: int, directory: Path) -> None:
    """report/: the HTML and Markdown report with its plots, and the model card."""
    plots_dir = directory / "_plots"
    plots = {
        name.replace("_", " "): store.download_file(store.key_of(uri), plots_dir / Path(uri).name)
        for name, uri in c.evaluation.plots.items()
    }
    report_dir = directory / REPORT_DIR
    verdict = c.verdict.to_dict()
    render_report(
        report_dir,
        title=f"{c.cfg.pipeline} v{version}: {c.status}",
        model=c.cfg.pipeline,
        version=version,
        lineage=_lineage_lines(c),
        metrics=c.evaluation.metrics,
        verdict=verdict,
        plots=plots,
        notes=_notes(c.evaluation.details),
    )
    (report_dir / MODEL_CARD).write_text(
        render_model_card(
            model=c.cfg.pipeline,
            version=version,
            metrics=c.evaluation.metrics,
            verdict=verdict,
            how_to_load=(
                f"modelgate predict {c.cfg.pipeline}:{version} {c.pipeline.predict_example}\n"
                f"# or in Python: modelgate.predict.load_predictor(\"{c.cfg.pipeline}:{version}\")"
            ),
            **c.pipeline.model_card(c.cfg),
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


def _lineage_lines(c: Candidate) -> dict[str, str]:
    raw, validated = c.snapshot, c.validated.filtered_snapshot
    return {
        "raw dataset": f"{raw.uri} (sha256 {raw.sha256})",
        "validated dataset": f"{validated.uri if validated else None} (sha256 {validated.sha256 if validated else None})",
        "training key": c.trained.train_key,
        "backend / device": f"{c.trained.backend} / {c.trained.device}",
    }


def content_identity(c: Candidate, store: ObjectStore) -> dict[str, Any]:
    """What makes two registrations the same model: the trained weights (training key and the
    staged model's sha256), the data snapshots, the whole config (gate included) and the
    evaluation key (which covers the evaluate config and the code)."""
    validated = c.validated.filtered_snapshot
    return {
        "training_key": c.trained.train_key,
        "model_sha256": staged_model_sha256(store, c.trained),
        "datasets": {"raw": c.snapshot.sha256, "validated": validated.sha256 if validated else None},
        "config_sha256": c.cfg.digest(),
        "evaluation_key": evaluation_cache_record(c.evaluation).get("key"),
    }


def unchanged_version(registry: Registry, model: str, identity: dict[str, Any]) -> VerifiedVersion | None:
    """The latest version when it records ``identity`` and passes verification (signature, every
    file's sha256, manifest against metrics.json); else None, so a new version is registered."""
    if not identity.get("evaluation_key"):
        return None  # an evaluation without a key cannot be recognised again
    versions = registry.list_versions(model)
    if not versions or registry.get_manifest(model, versions[-1]).get(IDENTITY_FIELD) != identity:
        return None
    try:
        verified = verify_version(registry, model, versions[-1])
    except RegistryError as exc:
        print(f"{model}:{versions[-1]} records this model but fails verification ({exc}); registering a new version")
        return None
    return verified if verified.version.manifest.get(IDENTITY_FIELD) == identity else None


def _unchanged_summary(c: Candidate, store: ObjectStore, existing: VerifiedVersion) -> dict[str, Any]:
    """The summary of a run whose model ``existing`` already holds: its files and stored
    verdict, and the verdict decided now against production (reported; nothing is written)."""
    manifest = existing.version.manifest
    prefix = store.key_of(existing.version.uri).rstrip("/")
    report_key = f"{prefix}/{REPORT_DIR}/report.html"
    docs_uri = (manifest.get("datasets") or {}).get("data_docs_uri") or c.validated.docs_uri
    return {
        "pipeline": c.cfg.pipeline,
        "model": c.cfg.pipeline,
        "version": existing.version.version,
        "status": UNCHANGED,
        "registered_status": manifest.get("status"),
        "metrics": existing.metrics,
        "verdict": c.verdict.to_dict(),
        "stored_verdict": existing.verdict,
        "evaluation_cache": evaluation_cache_record(c.evaluation),
        "manifest_uri": store.uri(f"{prefix}/manifest.json"),
        "report_uri": store.uri(report_key),
        "data_docs_uri": docs_uri,
        "report_markdown": (existing.directory / REPORT_DIR / "report.md").read_text(),
    }


def _manifest_fields(c: Candidate, flow_run_id: str) -> dict[str, Any]:
    validated = c.validated.filtered_snapshot
    return {
        "pipeline": c.cfg.pipeline,
        "status": c.status,
        "config": c.cfg.model_dump(mode="json"),
        "config_sha256": c.cfg.digest(),
        "datasets": {
            "raw": c.snapshot.to_dict(),
            "validated": validated.to_dict() if validated else None,
            "quarantine_uri": c.validated.quarantine_uri,
            "data_docs_uri": c.validated.docs_uri,
        },
        "seeds": {"global": c.cfg.seed},
        "training": c.trained.model_dump(mode="json", exclude={"history"}),
        "metrics": c.evaluation.metrics,
        "evaluation": c.evaluation.details,
        "verdict": c.verdict.to_dict(),
        "prefect_flow_run_id": flow_run_id,
        **environment_lineage(),
    }


def register(candidate: Candidate, store: ObjectStore, flow_run_id: str) -> dict[str, Any]:
    """One immutable version, or none when the latest already holds this model (status
    "unchanged"); its summary (version, status, links, the Markdown report)."""
    c = candidate
    registry = Registry(store)
    identity = content_identity(c, store)
    existing = unchanged_version(registry, c.cfg.pipeline, identity)
    if existing is not None:
        return _unchanged_summary(c, store, existing)
    manifest_fields = {**_manifest_fields(c, flow_run_id), IDENTITY_FIELD: identity}
    # Claim the number first so the report and model card can name it; the manifest is written
    # last, so a crash before it leaves no visible version and the number is never reused.
    number = registry.claim_version(c.cfg.pipeline)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        _write_metrics_and_model(c, store, directory)
        _write_report(c, store, number, directory)
        paths = sorted(p for p in directory.rglob("*") if p.is_file())
        files = registry.upload_files(c.cfg.pipeline, number, directory, paths)
        report_md = (directory / REPORT_DIR / "report.md").read_text()
    version = registry.commit_version(c.cfg.pipeline, number, files, manifest_fields)
    prefix = store.key_of(version.uri).rstrip("/")
    report_key = f"{prefix}/{REPORT_DIR}/report.html"
    return {
        "pipeline": c.cfg.pipeline,
        "model": c.cfg.pipeline,
        "version": version.version,
        "status": c.status,
        "metrics": c.evaluation.metrics,
        "verdict": c.verdict.to_dict(),
        "manifest_uri": store.uri(f"{prefix}/manifest.json"),
        "report_uri": store.uri(report_key),
        "data_docs_uri": c.validated.docs_uri,
        "evaluation_cache": evaluation_cache_record(c.evaluation),
        "report_markdown": report_md,
    }
