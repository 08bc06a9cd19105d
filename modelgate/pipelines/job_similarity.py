"""job-similarity: a siamese job-title encoder tuned on ESCO pairs, checked on STS-B.

The recipe: fine-tune a pretrained sentence encoder as a siamese network on scored pairs of job
titles (scheme in ``modelgate.data.esco``): both titles go through the same encoder, the cosine of
their embeddings becomes an angular similarity 1 - arccos(cos)/pi, and the loss is its squared
error against the pair's score. Evaluation compares the tuned encoder with the base one on held-out
ESCO pairs (did related roles come closer?) and on STS-B test (did it stay general?). The registered
artifact is the encoder alone, so it embeds any text and scores any pair (its predictor is in
``modelgate.pipelines.job_similarity_predictor``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from modelgate.artifacts import save_model_dir
from modelgate.config import PipelineConfig, Section
from modelgate.data.esco import DATASET_NAME, DEFAULT_SCORES, SPLITS, load_title_pairs, normalise_title
from modelgate.data.snapshot import DatasetSnapshot, load_snapshot, snapshot_table
from modelgate.data.stsb import DATASET_NAME as STSB_DATASET
from modelgate.data.stsb import load_stsb
from modelgate.evaluation import metrics as m
from modelgate.evaluation import plots
from modelgate.evaluation.bootstrap import MetricValue, evaluate_correlation, metric_value, metrics_to_dict
from modelgate.evaluation.result import Evaluation
from modelgate.models.backbones import load_backbone, load_tokenizer, tokenizer_id
from modelgate.models.siamese import (
    SIDES,
    SentenceEncoder,
    SiameseSimilarity,
    angular_from_cosine,
    cosine_matrix_np,
    cosine_similarity_np,
    pair_inputs,
)
from modelgate.pipelines.base import Pipeline
from modelgate.pipelines.job_similarity_predictor import load_predictor
from modelgate.pipelines.results import FeatureSet, TrainedModel
from modelgate.pipelines.stages import (
    TrainingRun,
    fetch_staged_model,
    load_tokens,
    record_trained,
    reuse_or_evaluate,
    reuse_or_train,
    tokenize_text_splits,
    upload_plots,
)
from modelgate.preprocess import cached_encode, encode_texts, texts_sha256
from modelgate.storage import ObjectStore
from modelgate.training import EpochLog, S3Checkpointer
from modelgate.training.similarity import SimilarityTrainSettings, train_similarity
from modelgate.validations.esco_pairs import EscoPairsValidationConfig, validate_pairs
from modelgate.validations.runner import ValidationReport

NAME = "job-similarity"
PREDICT_EXAMPLE = '"Data Scientist" "Machine Learning Engineer"'
RECIPE_TITLES = [
    "Data Scientist", "Data Analyst", "Data Engineer", "Nurse Practitioner", "Registered Nurse",
    "Medical Assistant", "Social Media Manager", "Marketing Strategist", "Product Marketing Manager",
]
ENCODERS = ("tuned", "base")
CORRELATIONS = ("stsb_pearson", "stsb_spearman", "esco_pearson", "esco_spearman")


class PairsDataConfig(Section):
    source: str = Field("auto", description="auto | mirror | ESCO folder | occupations_en.csv | pairs CSV/TSV | s3:// URI")
    variant: Literal["v1.0", "v1.2.0"] = Field("v1.0", description="ESCO release in the mirror")
    stsb_source: str = Field("auto", description="where STS-B comes from (same spec as source)")
    pairs_per_tier: dict[str, int] = Field(
        default_factory=lambda: {"train": 1000, "validation": 150, "test": 250},
        description="ESCO pairs sampled per tier in each split",
    )
    scores: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_SCORES))
    validation_fraction: float = Field(0.1, gt=0.0, lt=0.5)
    test_fraction: float = Field(0.1, gt=0.0, lt=0.5)


class SiameseModelConfig(Section):
    preset: str = Field(
        "all-minilm-l6-v2",
        description="keras-hub preset, hf:// handle, preset dir, or use-multilingual-v3 (needs modelgate[use])",
    )
    sequence_length: int = Field(16, ge=4, le=512, description="tokens per title")
    pooling: Literal["auto", "mean", "backbone"] = Field(
        "auto", description="auto: the encoder's own sentence embedding when it has one (USE), else mean"
    )


class SiameseTrainConfig(Section):
    epochs: int = Field(10, ge=1, description="at most; early stopping usually ends sooner")
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(1e-5, gt=0.0)
    clipnorm: float = Field(1.0, gt=0.0)
    patience: int = Field(3, ge=1)
    min_delta: float = Field(0.001, ge=0.0)
    length_bucketing: bool = Field(
        False, description="batches of pairs of similar lengths, each as wide as its longer title")
    resume: bool = Field(True, description="continue from the last S3 checkpoint of the same inputs")


class SimilarityEvaluateConfig(Section):
    bootstrap_samples: int = Field(1000, ge=100)
    stsb_sequence_length: int = Field(64, ge=8, le=512)
    heatmap_titles: list[str] = Field(default_factory=lambda: list(RECIPE_TITLES), min_length=2)


class JobSimilarityConfig(PipelineConfig):
    data: PairsDataConfig = PairsDataConfig()
    model: SiameseModelConfig = SiameseModelConfig()
    train: SiameseTrainConfig = SiameseTrainConfig()
    evaluate: SimilarityEvaluateConfig = SimilarityEvaluateConfig()
    validation: EscoPairsValidationConfig = EscoPairsValidationConfig()


# -- ingest / validate / preprocess ----------------------------------------------------------
def ingest(cfg: JobSimilarityConfig, store: ObjectStore) -> DatasetSnapshot:
    d = cfg.data
    frame = load_title_pairs(
        d.source, d.variant, pairs_per_tier=d.pairs_per_tier, scores=d.scores,
        validation_fraction=d.validation_fraction, test_fraction=d.test_fraction, seed=cfg.seed, store=store,
    )
    return snapshot_table(store, DATASET_NAME, frame, source=f"{d.source} (ESCO {d.variant} or a pairs file)")


def validate(
    cfg: JobSimilarityConfig, store: ObjectStore, snapshot: DatasetSnapshot, run_id: str
) -> ValidationReport:
    return validate_pairs(store, snapshot, load_snapshot(store, snapshot), run_id, cfg.validation)


def preprocess(cfg: JobSimilarityConfig, store: ObjectStore, validated: ValidationReport) -> FeatureSet:
    """Token arrays per split and side, under the names ``SPLIT:left`` / ``SPLIT:right``."""
    snapshot = validated.filtered_snapshot
    frame = load_snapshot(store, snapshot)
    splits = {
        f"{split}:{side}": (frame.loc[frame["split"] == split, side].tolist(),)
        for split in SPLITS if (frame["split"] == split).any() for side in SIDES
    }
    return tokenize_text_splits(cfg, store, snapshot, splits)


def _targets(frame: pd.DataFrame, split: str, dtype: str) -> np.ndarray:
    return frame.loc[frame["split"] == split, "similarity"].to_numpy(dtype=dtype)


def _side_tokens(store: ObjectStore, features: FeatureSet, split: str) -> list[dict[str, np.ndarray]]:
    return [load_tokens(store, features, f"{split}:{side}") for side in SIDES]


def _pairs(store: ObjectStore, features: FeatureSet, frame: pd.DataFrame, split: str, names):
    """(the siamese model's flat ``left_*`` / ``right_*`` inputs, the pairs' target scores)."""
    x = pair_inputs(*_side_tokens(store, features, split), names)
    return x, _targets(frame, split, "float32")


# -- train -----------------------------------------------------------------------------------
def _train_settings(cfg: JobSimilarityConfig) -> SimilarityTrainSettings:
    t = cfg.train
    return SimilarityTrainSettings(
        epochs=t.epochs, batch_size=t.batch_size, learning_rate=t.learning_rate, clipnorm=t.clipnorm,
        patience=t.patience, min_delta=t.min_delta, seed=cfg.seed, length_bucketing=t.length_bucketing,
    )


def _inference(cfg: JobSimilarityConfig, encoder: SentenceEncoder) -> dict[str, Any]:
    """inference.json of the staged encoder."""
    return {
        "pipeline": NAME, "task": "similarity", "preset": cfg.model.preset,
        "sequence_length": cfg.model.sequence_length, "pooling": encoder.pooling_mode,
        "similarity": "angular: 1 - arccos(cosine) / pi",
    }


def _fit_siamese(cfg: JobSimilarityConfig, store: ObjectStore, features: FeatureSet, run: TrainingRun) -> TrainedModel:
    """Train the siamese network (resuming from the run's checkpoints); stage the encoder alone,
    and the run's TensorBoard event files beside it."""
    frame = load_snapshot(store, features.snapshot)
    encoder = SentenceEncoder(load_backbone(cfg.model.preset), cfg.model.pooling, name="sentence_encoder")
    model = SiameseSimilarity(encoder, name="siamese_similarity")
    names = encoder.input_names
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp) / "tensorboard"
        result = train_similarity(
            model, *_pairs(store, features, frame, "train", names),
            *_pairs(store, features, frame, "validation", names), _train_settings(cfg),
            checkpointer=S3Checkpointer(store, run.checkpoints), log_dir=logs,
            callbacks=[EpochLog(cfg.train.epochs)],
        )
        tensorboard_uri = run.stage_logs(logs)
        staged = Path(tmp) / "model"
        save_model_dir(staged, encoder, load_tokenizer(cfg.model.preset), [], _inference(cfg, encoder))
        uri = run.stage(staged)
    return record_trained(run, uri, result, encoder, tensorboard_uri=tensorboard_uri)


def train(cfg: JobSimilarityConfig, store: ObjectStore, features: FeatureSet) -> TrainedModel:
    """Fine-tune the shared encoder as a siamese network; stage the encoder alone."""
    return reuse_or_train(cfg, store, features, lambda run: _fit_siamese(cfg, store, features, run))


# -- evaluate --------------------------------------------------------------------------------
def comparison_metrics(prefix: str, tuned, base, gold, n_resamples: int, seed: int) -> dict[str, MetricValue]:
    """Tuned and base correlations with gold, and tuned minus base on the same resamples."""
    out = {**evaluate_correlation(tuned, gold, f"{prefix}_", n_resamples, seed),
           **evaluate_correlation(base, gold, f"base_{prefix}_", n_resamples, seed)}
    for name, fn in (("pearson", m.pearson), ("spearman", m.spearman)):
        label = f"{prefix}_{name}_{'change' if prefix == 'stsb' else 'gain'}"
        out[label] = metric_value(label, lambda t, b, g, fn=fn: fn(t, g) - fn(b, g), tuned, base, gold,
                                  n_resamples=n_resamples, seed=seed)
    return out


def _eval_tokens(cfg: JobSimilarityConfig, store: ObjectStore, features: FeatureSet, stsb: pd.DataFrame,
                 esco_split: str) -> dict:
    """Token arrays of what both encoders embed: the STS-B split's two sides, one ESCO split's
    two sides and the heatmap titles. STS-B and the titles go through the same token cache."""
    tokenizer = load_tokenizer(cfg.model.preset)
    tok_id = tokenizer_id(tokenizer)

    def tokens(texts: list[str], length: int) -> dict[str, np.ndarray]:
        return cached_encode(store, texts_sha256(texts), tok_id, length, lambda: encode_texts(tokenizer, texts, length))

    stsb_length = cfg.evaluate.stsb_sequence_length
    titles = [normalise_title(t) for t in cfg.evaluate.heatmap_titles]
    return {
        "stsb": [tokens(stsb[column].tolist(), stsb_length) for column in ("sentence1", "sentence2")],
        "esco": _side_tokens(store, features, esco_split),
        "titles": tokens(titles, cfg.model.sequence_length),
    }


def _encoder_scores(encoder, tokens: dict) -> dict[str, np.ndarray]:
    """One encoder's STS-B cosines, ESCO angular similarities and title heatmap."""
    def cosines(left: dict, right: dict) -> np.ndarray:
        return cosine_similarity_np(encoder.embed_arrays(left), encoder.embed_arrays(right))

    return {
        "stsb": cosines(*tokens["stsb"]),  # DESIGN: STS-B on the cosine
        "esco": angular_from_cosine(cosines(*tokens["esco"])),  # the trained output
        "heatmap": angular_from_cosine(cosine_matrix_np(encoder.embed_arrays(tokens["titles"]))),
    }


def _heatmap_plot(cfg: JobSimilarityConfig, scores: dict, directory: Path) -> Path:
    return plots.plot_similarity_heatmaps(
        {f"base encoder ({cfg.model.preset})": scores["base"]["heatmap"], "tuned encoder": scores["tuned"]["heatmap"]},
        cfg.evaluate.heatmap_titles, directory / "title_similarity_heatmap.png",
        title="Angular similarity of the recipe's nine job titles",
    )


def _details(
    cfg: JobSimilarityConfig, metrics: dict[str, MetricValue], scores: dict, test: pd.DataFrame,
    stsb: pd.DataFrame, stsb_snapshot: DatasetSnapshot, trained: TrainedModel,
) -> dict[str, Any]:
    """What the report lists beside the gated metrics: base correlations, ESCO means per tier."""
    tiers = test["kind"].to_numpy()
    by_tier = {
        f"esco_test_mean_similarity_{label}_{tier}": float(scores[label]["esco"][tiers == tier].mean())
        for tier in sorted(set(tiers)) for label in ("base", "tuned")
    }
    return {
        **{f"{name} (base encoder)": metrics[f"base_{name}"].value for name in CORRELATIONS},
        **by_tier,
        "stsb_test_pairs": int(len(stsb)),
        "stsb_snapshot": stsb_snapshot.uri,
        "stsb_snapshot_sha256": stsb_snapshot.sha256,
        "esco_test_pairs": int(len(test)),
        "heatmap_titles": list(cfg.evaluate.heatmap_titles),
        "heatmap_base": scores["base"]["heatmap"].round(4).tolist(),
        "heatmap_tuned": scores["tuned"]["heatmap"].round(4).tolist(),
        "tensorboard_uri": trained.tensorboard_uri,
    }


def evaluate(
    cfg: JobSimilarityConfig, store: ObjectStore, trained: TrainedModel, features: FeatureSet, run_id: str
) -> Evaluation:
    """The tuned encoder against the base one on held-out ESCO pairs and on STS-B test; read back
    from the evaluation cache when nothing it depends on (STS-B test's snapshot too) changed."""
    stsb = load_stsb(cfg.data.stsb_source, "test", store=store)
    stsb_snapshot = snapshot_table(store, STSB_DATASET, stsb, source=f"{cfg.data.stsb_source} (STS-B test)")
    return reuse_or_evaluate(
        cfg, store, trained, features, run_id,
        lambda: compute_evaluation(cfg, store, trained, features, run_id, stsb, stsb_snapshot),
        data={"stsb_test_sha256": stsb_snapshot.sha256},
    )


def compare_encoders(
    cfg: JobSimilarityConfig, store: ObjectStore, trained: TrainedModel, features: FeatureSet,
    stsb: pd.DataFrame, esco_split: str, tmp: Path,
) -> tuple[dict[str, MetricValue], dict]:
    """Tuned against base encoder on one STS-B split and one ESCO split: (metrics, raw scores)."""
    frame = load_snapshot(store, features.snapshot)
    tokens = _eval_tokens(cfg, store, features, stsb, esco_split)
    tuned = fetch_staged_model(store, trained, tmp / "model").model
    base = SentenceEncoder(load_backbone(cfg.model.preset), cfg.model.pooling, name="base_encoder")
    scores = {label: _encoder_scores(encoder, tokens) for label, encoder in zip(ENCODERS, (tuned, base))}
    n, seed = cfg.evaluate.bootstrap_samples, cfg.seed
    golds = {"stsb": stsb["score"].to_numpy(), "esco": _targets(frame, esco_split, "float64")}
    metrics = {
        name: value
        for data, gold in golds.items()
        for name, value in comparison_metrics(data, scores["tuned"][data], scores["base"][data], gold, n, seed).items()
    }
    return metrics, scores


def validation_comparison(
    cfg: JobSimilarityConfig, store: ObjectStore, trained: TrainedModel, features: FeatureSet
) -> dict[str, MetricValue]:
    """The gate's comparisons on validation data only (ESCO validation pairs, STS-B dev), for
    choices such as the tier scores that must never look at the test splits."""
    stsb = load_stsb(cfg.data.stsb_source, "validation", store=store)
    with tempfile.TemporaryDirectory() as tmp:
        return compare_encoders(cfg, store, trained, features, stsb, "validation", Path(tmp))[0]


def compute_evaluation(
    cfg: JobSimilarityConfig, store: ObjectStore, trained: TrainedModel, features: FeatureSet, run_id: str,
    stsb: pd.DataFrame, stsb_snapshot: DatasetSnapshot,
) -> Evaluation:
    frame = load_snapshot(store, features.snapshot)
    test = frame.loc[frame["split"] == "test"]
    with tempfile.TemporaryDirectory() as tmp:
        metrics, scores = compare_encoders(cfg, store, trained, features, stsb, "test", Path(tmp))
        uris = upload_plots(store, NAME, run_id, {"title_similarity_heatmap": _heatmap_plot(cfg, scores, Path(tmp))})
    return Evaluation(
        metrics=metrics_to_dict(metrics), plots=uris,
        details=_details(cfg, metrics, scores, test, stsb, stsb_snapshot, trained),
    )


# -- serve -----------------------------------------------------------------------------------
def model_card(cfg: JobSimilarityConfig) -> dict[str, Any]:
    return {
        "description": (
            f"Sentence encoder `{cfg.model.preset}` (pooling: {cfg.model.pooling}) fine-tuned as a siamese network on "
            "scored job-title pairs, so that related roles embed close together. Similarity of two "
            "titles = 1 - arccos(cosine of their embeddings) / pi, in [0, 1]."
        ),
        "intended_use": (
            "Matching and searching job titles (normalising free-text titles to occupations, finding "
            "related roles); embeddings for downstream use. Not for judging people or candidates."
        ),
        "training_data": {
            "dataset": "job-title pairs scored from the ESCO taxonomy (synonyms, ISCO unit group, "
                       "major group, unrelated) or a user's pairs file",
            "source": cfg.data.source,
            "scores": dict(cfg.data.scores),
        },
        "evaluation_data": {
            "in-domain": "held-out ESCO pairs (test split: ISCO unit groups never seen in training)",
            "generality": "STS Benchmark test (1379 sentence pairs, gold 0-5)",
        },
        "limitations": [
            "Tuned and evaluated on English titles only; ESCO's European occupation vocabulary.",
            "Target scores come from the taxonomy, not from people: two titles in one ISCO unit group "
            "can be less alike than their score says.",
            f"Titles are truncated to {cfg.model.sequence_length} tokens.",
        ],
    }


PIPELINE = Pipeline(
    name=NAME,
    config_class=JobSimilarityConfig,
    validation_suite=DATASET_NAME,
    ingest=ingest,
    validate=validate,
    preprocess=preprocess,
    train=train,
    evaluate=evaluate,
    load_predictor=load_predictor,
    model_card=model_card,
    predict_example=PREDICT_EXAMPLE,
)
