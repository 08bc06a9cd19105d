"""Fine-tuning steps per second of the plainest keras-hub loop under the active Keras backend.

MiniLM with a mean-pooled Dense head, compiled by `model.compile` and trained by `model.fit` on
random token ids (no pipeline code in the loop), so the backend and the sequence length are the
only variables:

    KERAS_BACKEND=tensorflow python benchmarks/backend_throughput.py --sequence-length 32 --jit-compile auto
    KERAS_BACKEND=tensorflow python benchmarks/backend_throughput.py --sequence-length 32 --jit-compile off
    KERAS_BACKEND=jax python benchmarks/backend_throughput.py --sequence-length 16

Prints one JSON line: backend, sequence length, XLA setting and training examples per second
(after two warm-up batches, over ten batches of 32).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import keras
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# After the path line above: the benchmarks run as scripts from benchmarks/, not as a package.
from modelgate.models.backbones import load_backbone  # noqa: E402

NAMES = ("token_ids", "padding_mask", "segment_ids")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequence-length", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--jit-compile", choices=["auto", "on", "off"], default="auto")
    parser.add_argument("--preset", default="all-minilm-l6-v2")
    args = parser.parse_args()

    backbone = load_backbone(args.preset)
    inputs = {name: keras.Input((None,), dtype="int32", name=name) for name in NAMES}
    sequence = backbone(inputs)["sequence_output"]
    logits = keras.layers.Dense(150)(keras.layers.GlobalAveragePooling1D()(sequence))
    model = keras.Model(inputs, logits)
    jit = {"auto": "auto", "on": True, "off": False}[args.jit_compile]
    model.compile(keras.optimizers.AdamW(1e-4), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=jit)

    rows, length = args.batch_size * args.batches, args.sequence_length
    rng = np.random.default_rng(0)
    x = {"token_ids": rng.integers(1000, 20000, (rows, length)).astype("int32"),
         "padding_mask": np.ones((rows, length), "int32"), "segment_ids": np.zeros((rows, length), "int32")}
    y = rng.integers(0, 150, rows)
    warm = 2 * args.batch_size
    model.fit({k: v[:warm] for k, v in x.items()}, y[:warm], batch_size=args.batch_size, verbose=0)
    start = time.perf_counter()
    model.fit(x, y, batch_size=args.batch_size, verbose=0)
    seconds = time.perf_counter() - start
    print(json.dumps({"backend": keras.backend.backend(), "sequence_length": length,
                      "jit_compile": args.jit_compile, "examples_per_s": round(rows / seconds, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
