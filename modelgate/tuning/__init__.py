"""Hyperparameter search over a pipeline's config: a search space file (``space``), the score
of a trained model on validation data (``objective``), and the study a tune run resumes
(``study``). The Prefect flow is ``flows/tune.py``; docs/tuning.md describes the whole."""
