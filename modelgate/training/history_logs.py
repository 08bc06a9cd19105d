"""TensorBoard event files written from a training run's per-epoch history.

Every pipeline records its per-epoch metrics in ``TrainedModel.history``; this writes them as
Keras's TensorBoard callback lays them out (``train/`` and ``validation/`` runs, tags
``epoch_NAME``), so ``tensorboard --logdir`` shows the same curves for every pipeline, including
those whose training loop has no TensorBoard callback. Only the ``tensorboard`` package's protobuf
writer is used: no TensorFlow import.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Mapping, Sequence

VALIDATION_PREFIX = "val_"


def write_history_events(history: Mapping[str, Sequence[float]], directory: Path, first_epoch: int = 0) -> int:
    """Write one scalar per metric and epoch (steps ``first_epoch`` onwards); how many were written."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    runs: dict[str, dict[str, Sequence[float]]] = {"train": {}, "validation": {}}
    for name, values in history.items():
        if name.startswith(VALIDATION_PREFIX):
            runs["validation"][name[len(VALIDATION_PREFIX):]] = values
        else:
            runs["train"][name] = values
    written = 0
    for run, metrics in runs.items():
        if not metrics:
            continue
        writer = EventFileWriter(str(Path(directory) / run))
        for name, values in sorted(metrics.items()):
            for offset, value in enumerate(values):
                summary = Summary(value=[Summary.Value(tag=f"epoch_{name}", simple_value=float(value))])
                writer.add_event(Event(wall_time=time.time(), step=first_epoch + offset, summary=summary))
                written += 1
        writer.close()
    return written
