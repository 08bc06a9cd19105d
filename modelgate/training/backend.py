"""Which Keras backend a training process runs.

Training runs in a process of its own (``training.isolated``), so it need not run under the flow's
backend: ``train.backend`` names the one it uses. On the project's 2-core CPU machine, fine-tuning
MiniLM under JAX ran about twice the examples per second of TensorFlow (docs/benchmarks.md,
intent-ood default profile), and the GPU image has JAX and no TensorFlow. ``inherit`` keeps the caller's
backend (``KERAS_BACKEND``, else TensorFlow). The trained model is saved in Keras' backend-neutral
``.keras`` format, so evaluation and serving load it under whichever backend they run.

The backend is part of the training configuration, so it is part of the training key: a model
trained under JAX is never reused for a configuration that asks for TensorFlow.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Mapping

import keras

INHERIT = "inherit"
# The package each backend imports: it must be installed for a training process to use it.
BACKEND_PACKAGES = {"jax": "jax", "tensorflow": "tensorflow", "torch": "torch"}


class TrainingBackendError(RuntimeError):
    """The configured training backend cannot be used here; the message says why and what to do."""


def requested_backend(cfg) -> str | None:
    """The backend ``cfg.train.backend`` asks for, or None to keep the caller's."""
    backend = getattr(cfg.train, "backend", INHERIT)
    return None if backend == INHERIT else backend


def training_environment(cfg, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a training child process: the caller's, with the requested backend."""
    env = dict(os.environ if environ is None else environ)
    backend = requested_backend(cfg)
    if backend is None:
        return env
    package = BACKEND_PACKAGES[backend]
    if importlib.util.find_spec(package) is None:
        raise TrainingBackendError(
            f"train.backend={backend} needs the {package} package, which is not installed here; "
            f"install it or set train.backend={INHERIT} to train under {keras.backend.backend()}"
        )
    env["KERAS_BACKEND"] = backend
    return env


def check_process_backend(cfg) -> None:
    """Refuse to train in this process under another backend than the configuration asks for
    (Keras picks its backend once, at import)."""
    backend = requested_backend(cfg)
    current = keras.backend.backend()
    if backend is not None and backend != current:
        raise TrainingBackendError(
            f"train.backend={backend}, but this process runs Keras on {current}: train in a child "
            f"process (the default; unset MODELGATE_TRAIN_IN_PROCESS) or start this one with "
            f"KERAS_BACKEND={backend}"
        )
