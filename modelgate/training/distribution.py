"""Data-parallel training with Keras' distribution API, on one host or several (JAX backend).

``train.distribution`` chooses how a training run uses the accelerators it sees:

- ``none``: one device, as before.
- ``data_parallel``: ``keras.distribution.DataParallel`` over every device (of every process, in a
  multi-host run): variables replicated, each batch split along its first axis, gradients reduced
  by XLA inside the compiled step. Needs the JAX backend; under TensorFlow or torch it is refused
  with one line saying so (Keras' distribution API trains only under JAX here).
- ``auto``: ``data_parallel`` when the JAX backend sees more than one device, else ``none`` (so on
  one GPU, on a CPU, or under TensorFlow it changes nothing).

A batch split over D devices must have a multiple of D rows: ``batch_size`` must be one, and each
epoch's last, short batch is cut down to a multiple of D (at most D - 1 rows of that epoch are
skipped; the order is drawn again each epoch, so no row is always the one left out). Validation
sets are cut the same way, always their last rows.

Several hosts (one process per host) join with ``keras.distribution.initialize`` before anything
touches the backend. ``MODELGATE_COORDINATOR`` (host:port of process 0), ``MODELGATE_NUM_PROCESSES``
and ``MODELGATE_PROCESS_ID`` configure it, or Keras' own ``KERAS_DISTRIBUTION_JOB_ADDRESSES``,
``KERAS_DISTRIBUTION_NUM_PROCESSES`` and ``KERAS_DISTRIBUTION_PROCESS_ID``. Each process then feeds
its own slice of every global batch (``DataPlan.epoch_rows``), and only process 0 writes
checkpoints.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Iterator, Mapping

import keras
import numpy as np

DISTRIBUTIONS = ("auto", "none", "data_parallel")
COORDINATOR_ENV = "MODELGATE_COORDINATOR"
NUM_PROCESSES_ENV = "MODELGATE_NUM_PROCESSES"
PROCESS_ID_ENV = "MODELGATE_PROCESS_ID"
# Keras reads these itself when initialize() gets no arguments; accepted here as the fallback.
KERAS_ENV = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
             "KERAS_DISTRIBUTION_PROCESS_ID")


class DistributionError(ValueError):
    """The distribution settings cannot work here; the message says which and why."""


# -- several hosts ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class MultiHost:
    coordinator: str  # host:port of process 0
    num_processes: int
    process_id: int


def multihost_from_env(environ: Mapping[str, str] = os.environ) -> MultiHost | None:
    """The multi-host settings in the environment (modelgate's names first, then Keras'), or None."""
    for names in ((COORDINATOR_ENV, NUM_PROCESSES_ENV, PROCESS_ID_ENV), KERAS_ENV):
        values = [environ.get(name, "").strip() for name in names]
        if not any(values):
            continue
        missing = [name for name, value in zip(names, values) if not value]
        if missing:
            raise DistributionError(f"multi-host training needs {', '.join(names)}; missing: {', '.join(missing)}")
        try:
            count, index = int(values[1]), int(values[2])
        except ValueError:
            raise DistributionError(
                f"{names[1]}={values[1]!r} and {names[2]}={values[2]!r} must be integers"
            ) from None
        if count < 1 or not 0 <= index < count:
            raise DistributionError(f"{names[2]}={index} must be in [0, {names[1]}={count})")
        # Keras passes JAX only the first address (the coordinator's) of a comma-separated list.
        return MultiHost(values[0].split(",")[0].strip(), count, index)
    return None


def initialize_multihost(environ: Mapping[str, str] = os.environ) -> MultiHost | None:
    """Join the multi-host job the environment describes (call before the backend computes anything)."""
    settings = multihost_from_env(environ)
    if settings is None:
        return None
    if keras.backend.backend() != "jax":
        raise DistributionError(
            f"multi-host training ({COORDINATOR_ENV}) needs the JAX backend, not {keras.backend.backend()}"
        )
    import jax  # only under the JAX backend

    # CPU processes exchange gradients through gloo (GPUs use NCCL and ignore this setting).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    keras.distribution.initialize(settings.coordinator, settings.num_processes, settings.process_id)
    return settings


def process_index() -> int:
    """This process's index in a multi-host job (0 when there is only one process)."""
    if keras.backend.backend() != "jax":
        return 0
    import jax

    return jax.process_index()


# -- choosing a distribution -----------------------------------------------------------------------
def resolve_distribution(mode: str) -> keras.distribution.DataParallel | None:
    """The Keras distribution ``mode`` means on this machine and backend (None: one device)."""
    if mode not in DISTRIBUTIONS:
        raise DistributionError(f"train.distribution must be one of {', '.join(DISTRIBUTIONS)}, got {mode!r}")
    if mode == "none":
        return None
    backend = keras.backend.backend()
    if backend != "jax":
        if mode == "data_parallel":
            raise DistributionError(
                f"train.distribution=data_parallel needs the JAX backend (KERAS_BACKEND=jax); the "
                f"{backend} backend trains on one device here: set train.distribution=auto or none"
            )
        return None
    devices = keras.distribution.list_devices()  # every process's devices: the accelerators if any
    if mode == "auto" and len(devices) < 2:
        return None
    # Each process feeds its own slice of the batches (DataPlan), so Keras must not shard them again.
    return keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)


@dataclass(frozen=True)
class DataPlan:
    """Which rows this process feeds, and in what batches, when a batch is split over devices."""

    devices: int = 1  # devices every global batch is split over, all processes together
    processes: int = 1
    process_id: int = 0

    @property
    def primary(self) -> bool:
        """Whether this process writes shared results (checkpoints): process 0 only."""
        return self.process_id == 0

    def check(self, batch_size: int, length_bucketing: bool = False) -> None:
        if batch_size % self.devices:
            raise DistributionError(
                f"train.batch_size={batch_size} is not a multiple of the {self.devices} devices "
                "data-parallel training splits each batch over"
            )
        if length_bucketing and self.processes > 1:
            raise DistributionError("train.length_bucketing is not supported with multi-host training")

    def usable(self, count: int, batch_size: int) -> int:
        """Rows of ``count`` an epoch trains on: full batches, the last cut to a multiple of devices."""
        return count - (count % batch_size) % self.devices

    def local_batch_size(self, batch_size: int) -> int:
        return batch_size // self.processes

    def epoch_rows(self, order: np.ndarray, batch_size: int) -> np.ndarray:
        """This process's rows of the epoch's ``order``: its 1/processes slice of each global batch,
        so that the processes' slices, put side by side, are exactly the one-process batches."""
        order = order[: self.usable(len(order), batch_size)]
        if self.processes == 1:
            return order
        slices = []
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            share = len(batch) // self.processes
            slices.append(batch[self.process_id * share : (self.process_id + 1) * share])
        return np.concatenate(slices)

    def validation_rows(self, count: int) -> np.ndarray:
        """This process's share of a validation set, cut to a multiple of the devices."""
        usable = count - count % self.devices
        share = usable // self.processes
        return np.arange(self.process_id * share, (self.process_id + 1) * share)


SINGLE_DEVICE = DataPlan()


def plan_for(distribution: keras.distribution.DataParallel | None) -> DataPlan:
    if distribution is None:
        return SINGLE_DEVICE
    import jax  # a distribution exists only under the JAX backend

    devices = int(np.prod(distribution.device_mesh.shape))
    return DataPlan(devices=devices, processes=jax.process_count(), process_id=jax.process_index())


def _replicate_variables(model, distribution) -> None:
    """Give every variable of a model built outside the distribution its layout (replicated), so
    the compiled step sees one device set. Keras offers no public way to re-lay-out an existing
    variable; its JAX variables keep the layout in ``_layout`` and apply it on assignment."""
    for variable in [*model.variables, *model.metrics_variables]:
        if getattr(variable, "_layout", None) is None:
            variable._layout = distribution.get_variable_layout(variable)
            variable.assign(variable.value)


@contextlib.contextmanager
def training_distribution(mode: str | None, model=None) -> Iterator[DataPlan]:
    """Train inside the distribution ``mode`` resolves to; yields the DataPlan the loop follows.

    ``mode`` None (and any mode while a distribution is already set, e.g. by ``distributed_stage``
    around the whole train stage) uses the distribution already set, if any. ``model``, when given,
    may have been built outside the distribution: its variables are replicated onto it.
    """
    distribution = keras.distribution.distribution()
    if distribution is None and mode is not None:
        distribution = resolve_distribution(mode)
    if distribution is None:
        yield SINGLE_DEVICE
        return
    with distribution.scope():
        if model is not None:
            _replicate_variables(model, distribution)
        yield plan_for(distribution)


@contextlib.contextmanager
def distributed_stage(mode: str) -> Iterator[DataPlan]:
    """Around a whole train stage: the model is then built under the distribution already."""
    with training_distribution(mode) as plan:
        if plan.devices > 1:
            print(f"data-parallel training over {plan.devices} devices "
                  f"({plan.processes} process(es), this is process {plan.process_id})", flush=True)
        yield plan
