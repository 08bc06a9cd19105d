"""Training: optimizer and schedule, per-epoch S3 checkpoints, the fine-tuning loop.

Names are imported on first use, so a module that needs only the training loop (the GPU check,
on a machine with no object-storage client installed) does not import the S3 checkpointer.
"""

from importlib import import_module

_EXPORTS = {
    "S3Checkpointer": "modelgate.training.checkpoint",
    "NO_DECAY_VARIABLE_NAMES": "modelgate.training.optimizer",
    "TrainSettings": "modelgate.training.optimizer",
    "WarmupLinearDecay": "modelgate.training.optimizer",
    "build_optimizer": "modelgate.training.optimizer",
    "EpochLog": "modelgate.training.trainer",
    "TrainResult": "modelgate.training.trainer",
    "compile_classifier": "modelgate.training.trainer",
    "describe_device": "modelgate.training.trainer",
    "set_seed": "modelgate.training.trainer",
    "train_classifier": "modelgate.training.trainer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'modelgate.training' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
