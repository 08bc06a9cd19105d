"""Training: optimizer and schedule, per-epoch S3 checkpoints, the fine-tuning loop."""

from modelgate.training.checkpoint import S3Checkpointer
from modelgate.training.optimizer import (
    NO_DECAY_VARIABLE_NAMES,
    TrainSettings,
    WarmupLinearDecay,
    build_optimizer,
)
from modelgate.training.trainer import (
    EpochLog,
    TrainResult,
    compile_classifier,
    describe_device,
    set_seed,
    train_classifier,
)

__all__ = [
    "EpochLog",
    "NO_DECAY_VARIABLE_NAMES",
    "S3Checkpointer",
    "TrainResult",
    "TrainSettings",
    "WarmupLinearDecay",
    "build_optimizer",
    "compile_classifier",
    "describe_device",
    "set_seed",
    "train_classifier",
]
