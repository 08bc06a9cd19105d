"""Data validation with Great Expectations 1.x: the shared engine and one suite per dataset."""

from modelgate.validations.runner import (
    ExpectationOutcome,
    FilterRule,
    QualityBatch,
    SuiteInputError,
    ValidationFailed,
    ValidationReport,
    ValidationSuite,
    run_validation,
)

__all__ = [
    "ExpectationOutcome",
    "FilterRule",
    "QualityBatch",
    "SuiteInputError",
    "ValidationFailed",
    "ValidationReport",
    "ValidationSuite",
    "run_validation",
]
