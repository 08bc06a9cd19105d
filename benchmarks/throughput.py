"""Fine-tuning and inference throughput of the intent classifier on the real MiniLM encoder.

Prints examples per second for one head under the active Keras backend (KERAS_BACKEND):

    python benchmarks/throughput.py --head sngp --examples 640 --sequence-length 32
    KERAS_BACKEND=jax python benchmarks/throughput.py --head softmax

The first epoch includes tracing/compilation and is reported separately.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# After the path line above: the benchmarks run as scripts from benchmarks/, not as a package.
from modelgate.models.backbones import load_backbone, load_tokenizer  # noqa: E402
from modelgate.models.classifier import EncoderClassifier  # noqa: E402
from modelgate.preprocess import encode_texts  # noqa: E402
from modelgate.training import TrainSettings, compile_classifier, describe_device  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--head", choices=["sngp", "softmax"], default="sngp")
    parser.add_argument("--examples", type=int, default=640)
    parser.add_argument("--sequence-length", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--preset", default="all-minilm-l6-v2")
    args = parser.parse_args()

    texts = [f"how do i move money to account number {i} before friday" for i in range(args.examples)]
    x = encode_texts(load_tokenizer(args.preset), texts, args.sequence_length)
    y = np.random.default_rng(0).integers(0, 150, size=args.examples)
    model = EncoderClassifier(load_backbone(args.preset), 150, head=args.head)
    steps = 2 * -(-args.examples // args.batch_size)
    compile_classifier(model, steps, TrainSettings(batch_size=args.batch_size))

    start = time.perf_counter()
    model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0)
    first = time.perf_counter() - start
    start = time.perf_counter()
    model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0)
    train = time.perf_counter() - start
    model.predict(x, batch_size=128, verbose=0)  # warm-up: builds the predict function
    start = time.perf_counter()
    model.predict(x, batch_size=128, verbose=0)
    infer = time.perf_counter() - start
    print(json.dumps({
        **describe_device(),
        "head": args.head,
        "cores": os.cpu_count(),
        "sequence_length": args.sequence_length,
        "first_epoch_s": round(first, 1),
        "train_examples_per_s": round(args.examples / train, 1),
        "inference_examples_per_s": round(args.examples / infer, 1),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
