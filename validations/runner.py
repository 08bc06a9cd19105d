"""The validation engine shared by every pipeline: Great Expectations 1.x on a snapshot.

Two phases, each a set of GE expectations run on pandas batches in an ephemeral GE context:

1. Label filtering: ``FilterRule`` expectations flag rows with invalid labels. Flagged rows are
   dropped, counted per reason and quarantined; the phase fails only when the dropped fraction
   exceeds ``ValidationSuite.max_filtered_fraction``.
2. Quality: ``QualityBatch`` expectations on the kept rows (or on tables derived from them, such
   as per-class counts). All must pass. Rows behind failing row-level expectations are
   quarantined too, for inspection.

Everything is written to object storage::

    quarantine/DATASET/SNAPSHOT_SHA/RUN_ID/{filtered,quality}.jsonl
    validation/DATASET/SNAPSHOT_SHA/RUN_ID/docs/index.html        GE Data Docs (whole site)
    validation/DATASET/SNAPSHOT_SHA/RUN_ID/results/SUITE.json     GE validation results
    validation/DATASET/SNAPSHOT_SHA/RUN_ID/report.json            ValidationReport.to_dict()

and the kept rows become a new snapshot of the same dataset when validation passes.
"""

from __future__ import annotations

import logging
import re
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

import pandas as pd
from pydantic import BaseModel, Field

from modelgate.data.snapshot import DatasetSnapshot, load_snapshot, plain_value, snapshot_table
from modelgate.storage import ObjectStore
from modelgate.summary import open_command
from modelgate.validations.quarantine import (
    FILTERED_FILE,
    QUALITY_FILE,
    quarantine_prefix,
    write_quarantine,
)

log = logging.getLogger(__name__)

ROW_ID = "row_id"
DOCS_SITE = "modelgate_local_site"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class SuiteInputError(ValueError):
    """A derived batch cannot be built from the rows (for example, a column is missing)."""


@dataclass
class FilterRule:
    """A row-level expectation whose unexpected rows are dropped with ``reason``."""

    reason: str
    expectation: Any  # a great_expectations.expectations.Expectation


@dataclass
class QualityBatch:
    """Expectations on one table built from the kept rows (``build`` may return them as they are).

    ``index_columns`` identify failing rows in the results; when it is ``("row_id",)`` failing
    rows map back to the dataset and are quarantined.
    """

    name: str
    expectations: list[Any]
    build: Callable[[pd.DataFrame], pd.DataFrame] = lambda frame: frame
    index_columns: tuple[str, ...] = (ROW_ID,)


@dataclass
class ValidationSuite:
    dataset: str
    filters: list[FilterRule]
    batches: list[QualityBatch]
    max_filtered_fraction: float = 0.05


class ExpectationOutcome(BaseModel):
    """One expectation's result, as the report and the failure message show it."""

    phase: str  # "filter" or "quality"
    batch: str
    expectation_type: str
    column: str | None
    kwargs: dict[str, Any]
    success: bool
    unexpected_count: int | None = None
    observed_value: Any = None
    unexpected_sample: list[Any] = Field(default_factory=list)
    error: str | None = None

    def describe(self) -> str:
        where = f" on {self.column}" if self.column else ""
        if self.error:
            detail = f"error: {self.error}"
        elif self.unexpected_count:
            detail = f"{self.unexpected_count} unexpected, e.g. {self.unexpected_sample[:5]}"
        else:
            detail = f"observed {self.observed_value!r}"
            if not self.column:  # table-level: say what was expected too
                expected = {k: v for k, v in self.kwargs.items() if k != "row_condition"}
                detail += f", expected {expected}"
        condition = self.kwargs.get("row_condition")
        scope = f" where {condition}" if condition else ""
        return f"{self.expectation_type}{where}{scope} [{self.phase}/{self.batch}]: {detail}"


class ValidationReport(BaseModel):
    """What validate hands on (a typed stage result): the verdict, the row accounting, where the
    quarantine and Data Docs are, and the validated snapshot when the suite passed."""

    dataset: str
    run_id: str
    snapshot_uri: str
    snapshot_sha256: str
    success: bool
    filter_success: bool
    quality_success: bool
    rows_in: int
    rows_out: int
    dropped: dict[str, int]
    dropped_fraction: float
    max_filtered_fraction: float
    quarantine_uri: str
    quarantine_files: dict[str, str]
    quality_flagged_rows: int
    docs_uri: str
    results_uri: str
    expectations: list[ExpectationOutcome]
    filtered_snapshot: DatasetSnapshot | None = None
    duration_s: float = 0.0

    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [outcome for outcome in self.expectations if not outcome.success]

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ValidationReport":
        return cls.model_validate(data)

    def failure_message(self) -> str:
        lines = [f"validation of {self.dataset} snapshot {self.snapshot_sha256[:12]} failed "
                 f"(run {self.run_id}):"]
        if self.dropped_fraction > self.max_filtered_fraction:
            reasons = ", ".join(f"{k}={v}" for k, v in sorted(self.dropped.items()))
            lines.append(
                f"- label filtering dropped {sum(self.dropped.values())} of {self.rows_in} rows "
                f"({self.dropped_fraction:.2%}), more than the allowed "
                f"{self.max_filtered_fraction:.2%}: {reasons}"
            )
        lines += [f"- {outcome.describe()}" for outcome in self.failed]
        lines.append(f"quarantined rows: {self.quarantine_uri}/")
        # A command, not a presigned link: a link would sit in the run's logs and expire in a week.
        lines.append(f"Data Docs: {self.docs_uri} (open: {open_command(self.run_id, 'docs')})")
        return "\n".join(lines)


class ValidationFailed(RuntimeError):
    """The suite failed; ``report`` holds every result, the quarantine and the Data Docs link."""

    def __init__(self, report: ValidationReport):
        super().__init__(report.failure_message())
        self.report = report


# -- Great Expectations plumbing ---------------------------------------------------------------
def _ephemeral_context(docs_dir: str):
    # great_expectations takes ~5 s to import; it stays here so that importing ValidationReport /
    # ValidationFailed (modelgate.runner, the release and training stages) does not pay for it.
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.add_data_docs_site(
        site_name=DOCS_SITE,
        site_config={
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": docs_dir},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    return context, context.data_sources.add_pandas("modelgate_pandas")


def _summarise_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Expectation kwargs, readable: long value sets shortened, row conditions as their text."""
    summary: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key == "batch_id" or value is None:
            continue
        if key == "row_condition" and isinstance(value, dict):
            value = value.get("pass_through_filter", value)
        if isinstance(value, (list, tuple, set)) and len(value) > 10:
            value = f"<{len(value)} values>"
        summary[key] = value
    return summary


def _error_of(result: Any) -> str | None:
    """GE stores an expectation's exception either flat or keyed by the failing metric."""
    info = result.exception_info or {}
    entries = [info] if "raised_exception" in info else list(info.values())
    for entry in entries:
        if isinstance(entry, dict) and (entry.get("raised_exception") or entry.get("exception_message")):
            return str(entry.get("exception_message") or "expectation raised an exception")
    return None


def _sample(values: list[Any], limit: int = 20) -> list[Any]:
    """The first few unexpected values (or index entries) as plain JSON-ready values."""
    return [
        {str(k): plain_value(v) for k, v in value.items()} if isinstance(value, dict) else plain_value(value)
        for value in values[:limit]
    ]


def _outcome(phase: str, batch: str, result: Any) -> tuple[ExpectationOutcome, list[int]]:
    """One GE expectation result -> (outcome, row ids it flagged)."""
    config = result.expectation_config
    kwargs = _summarise_kwargs(dict(config.kwargs))
    body = result.result or {}
    index_list = body.get("unexpected_index_list") or []
    row_ids = [int(item[ROW_ID]) for item in index_list if isinstance(item, dict) and ROW_ID in item]
    error = _error_of(result)
    outcome = ExpectationOutcome(
        phase=phase,
        batch=batch,
        expectation_type=config.type,
        column=kwargs.get("column"),
        kwargs=kwargs,
        success=bool(result.success) and error is None,
        unexpected_count=body.get("unexpected_count"),
        observed_value=body.get("observed_value"),
        unexpected_sample=_sample(index_list or body.get("partial_unexpected_list") or []),
        error=error,
    )
    return outcome, row_ids


def _validate(context, source, suite_name: str, frame: pd.DataFrame, expectations, index_columns):
    import great_expectations as gx  # heavy; kept off this module's import (see _ephemeral_context)

    asset = source.add_dataframe_asset(suite_name)
    batch_definition = asset.add_batch_definition_whole_dataframe(f"{suite_name} (whole table)")
    suite = context.suites.add(gx.ExpectationSuite(name=suite_name))
    for expectation in expectations:
        suite.add_expectation(expectation)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=suite_name, data=batch_definition, suite=suite)
    )
    result_format = {"result_format": "COMPLETE", "unexpected_index_column_names": list(index_columns)}
    return definition.run(batch_parameters={"dataframe": frame}, result_format=result_format)


# -- the two phases ----------------------------------------------------------------------------
@dataclass
class _FilterPhase:
    """Phase 1's result: flag reasons per row id, the rows kept and whether the phase passed."""

    flagged: dict[int, list[str]]
    dropped: dict[str, int]
    kept: pd.DataFrame
    fraction: float
    ok: bool


@dataclass
class _QualityPhase:
    """Phase 2's result: failing expectation labels per row id and whether the phase passed."""

    flags: dict[int, list[str]]
    ok: bool


def _filter_phase(context, source, suite: ValidationSuite, frame: pd.DataFrame,
                  outcomes: list[ExpectationOutcome], results_json: dict[str, Any]) -> _FilterPhase:
    """Phase 1: label filtering. A row flagged by several rules counts under the first."""
    flagged: dict[int, list[str]] = {}
    name = f"{suite.dataset}.filters"
    result = _validate(context, source, name, frame, [r.expectation for r in suite.filters], (ROW_ID,))
    results_json[name] = result.to_json_dict()
    phase_outcomes: list[ExpectationOutcome] = []
    for rule, expectation_result in zip(suite.filters, result.results):
        outcome, row_ids = _outcome("filter", "filters", expectation_result)
        outcome.success = outcome.error is None  # flagged rows are dropped, not a failure
        phase_outcomes.append(outcome)
        for row_id in row_ids:
            flagged.setdefault(row_id, []).append(rule.reason)
    outcomes.extend(phase_outcomes)
    dropped = dict(Counter(reasons[0] for reasons in flagged.values()))
    kept = frame[~frame[ROW_ID].isin(list(flagged))].reset_index(drop=True)
    fraction = len(flagged) / len(frame) if len(frame) else 0.0
    ok = fraction <= suite.max_filtered_fraction and all(o.success for o in phase_outcomes)
    return _FilterPhase(flagged=flagged, dropped=dropped, kept=kept, fraction=fraction, ok=ok)


def _quality_batch(context, source, dataset: str, batch: QualityBatch, kept: pd.DataFrame,
                   outcomes: list[ExpectationOutcome], results_json: dict[str, Any],
                   flags: dict[int, list[str]]) -> None:
    """Validate one quality batch; rows behind failing row-level expectations go into ``flags``."""
    name = f"{dataset}.quality.{batch.name}"
    try:
        table = batch.build(kept)
    except SuiteInputError as exc:
        outcomes.append(ExpectationOutcome(
            phase="quality", batch=batch.name, expectation_type="build derived table",
            column=None, kwargs={}, success=False, error=str(exc),
        ))
        return
    result = _validate(context, source, name, table, batch.expectations, batch.index_columns)
    results_json[name] = result.to_json_dict()
    for expectation_result in result.results:
        outcome, row_ids = _outcome("quality", batch.name, expectation_result)
        outcomes.append(outcome)
        if not outcome.success:
            label = f"{outcome.expectation_type}({outcome.column or batch.name})"
            for row_id in row_ids:
                flags.setdefault(row_id, []).append(label)


def _quality_phase(context, source, suite: ValidationSuite, kept: pd.DataFrame,
                   outcomes: list[ExpectationOutcome], results_json: dict[str, Any]) -> _QualityPhase:
    """Phase 2: quality on the kept rows; row-level failures are quarantined for inspection."""
    flags: dict[int, list[str]] = {}
    for batch in suite.batches:
        _quality_batch(context, source, suite.dataset, batch, kept, outcomes, results_json, flags)
    ok = all(o.success for o in outcomes if o.phase == "quality")
    return _QualityPhase(flags=flags, ok=ok)


def _run_phases(store: ObjectStore, suite: ValidationSuite, frame: pd.DataFrame, out_prefix: str,
                outcomes: list[ExpectationOutcome],
                results_json: dict[str, Any]) -> tuple[_FilterPhase, _QualityPhase]:
    """Both phases in one ephemeral GE context, then its Data Docs uploaded under ``out_prefix``."""
    with tempfile.TemporaryDirectory(prefix="modelgate-datadocs-") as docs_dir:
        context, source = _ephemeral_context(docs_dir)
        filters = _filter_phase(context, source, suite, frame, outcomes, results_json)
        quality = _quality_phase(context, source, suite, filters.kept, outcomes, results_json)
        context.build_data_docs(site_names=[DOCS_SITE])
        store.upload_dir(docs_dir, f"{out_prefix}/docs")
    return filters, quality


# -- the engine --------------------------------------------------------------------------------
def _load_frame(store: ObjectStore, snapshot: DatasetSnapshot, frame: pd.DataFrame | None) -> pd.DataFrame:
    frame = load_snapshot(store, snapshot) if frame is None else frame
    if ROW_ID not in frame.columns:
        raise ValueError(f"snapshot {snapshot.uri} has no {ROW_ID} column: {list(frame.columns)}")
    return frame


def _store_results(store: ObjectStore, quarantine: str, out_prefix: str, frame: pd.DataFrame,
                   filters: _FilterPhase, quality: _QualityPhase,
                   results_json: dict[str, Any]) -> dict[str, str]:
    """Write both quarantine files and the GE results; return the quarantine files' URIs."""
    files = {
        "filtered": write_quarantine(store, quarantine, FILTERED_FILE, frame, filters.flagged, "filter"),
        "quality": write_quarantine(store, quarantine, QUALITY_FILE, filters.kept, quality.flags, "quality"),
    }
    for name, payload in results_json.items():
        store.put_json(f"{out_prefix}/results/{name}.json", payload)
    return files


def _validated_snapshot(store: ObjectStore, suite: ValidationSuite, snapshot: DatasetSnapshot,
                        run_id: str, filters: _FilterPhase) -> DatasetSnapshot:
    """The kept rows as a new snapshot of the same dataset."""
    return snapshot_table(
        store, suite.dataset, filters.kept,
        source=f"validated rows of {snapshot.uri}",
        extra={"parent_sha256": snapshot.sha256, "validation_run_id": run_id,
               "dropped": filters.dropped},
    )


def run_validation(
    store: ObjectStore,
    snapshot: DatasetSnapshot,
    suite: ValidationSuite,
    run_id: str,
    *,
    frame: pd.DataFrame | None = None,
) -> ValidationReport:
    """Filter, validate, quarantine and document one snapshot; raise ValidationFailed on failure.

    ``frame`` may pass the snapshot's rows when the caller already holds them.
    """
    if not _RUN_ID.match(run_id):
        raise ValueError(f"run_id {run_id!r} must be letters, digits, '.', '_' or '-'")
    started = time.monotonic()
    frame = _load_frame(store, snapshot, frame)
    quarantine = quarantine_prefix(suite.dataset, snapshot.sha256, run_id)
    out_prefix = f"validation/{suite.dataset}/{snapshot.sha256}/{run_id}"
    outcomes: list[ExpectationOutcome] = []
    results_json: dict[str, Any] = {}

    filters, quality = _run_phases(store, suite, frame, out_prefix, outcomes, results_json)
    files = _store_results(store, quarantine, out_prefix, frame, filters, quality, results_json)
    docs_key = f"{out_prefix}/docs/index.html"
    success = filters.ok and quality.ok
    filtered_snapshot = _validated_snapshot(store, suite, snapshot, run_id, filters) if success else None
    report = ValidationReport(
        dataset=suite.dataset,
        run_id=run_id,
        snapshot_uri=snapshot.uri,
        snapshot_sha256=snapshot.sha256,
        success=success,
        filter_success=filters.ok,
        quality_success=quality.ok,
        rows_in=len(frame),
        rows_out=len(filters.kept),
        dropped=filters.dropped,
        dropped_fraction=filters.fraction,
        max_filtered_fraction=suite.max_filtered_fraction,
        quarantine_uri=store.uri(quarantine),
        quarantine_files=files,
        quality_flagged_rows=len(quality.flags),
        docs_uri=store.uri(docs_key),
        results_uri=store.uri(f"{out_prefix}/results/"),
        expectations=outcomes,
        filtered_snapshot=filtered_snapshot,
        duration_s=round(time.monotonic() - started, 3),
    )
    store.put_json(f"{out_prefix}/report.json", report.to_dict())
    log.info("validation of %s %s: success=%s rows %d -> %d in %.1fs", suite.dataset,
             snapshot.sha256[:12], success, report.rows_in, report.rows_out, report.duration_s)
    if not success:
        raise ValidationFailed(report)
    return report
