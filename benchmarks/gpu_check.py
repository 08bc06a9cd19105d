"""GPU check: training throughput and model FLOPs utilisation of the SNGP classifier and the siamese
encoder on a MiniLM-sized random BERT backbone, float32 and mixed_bfloat16, data-parallel over every
device. Needs only keras, keras_hub, jax and numpy (no TensorFlow, no object-storage client, no
package registry, no pretrained weights): tokens are random int32 ids made beforehand.

    KERAS_BACKEND=jax python benchmarks/gpu_check.py            # on the GPU machine
    KERAS_BACKEND=jax python benchmarks/gpu_check.py --smoke    # tiny sizes, any CPU

TensorFlow, boto3 and pydantic are blocked at import (as if not installed); the check fails if
anything imports them anyway, so a pass here means the same import chain works on the GPU machine.

FLOPs per training step are counted analytically (forward + backward = 3 x forward):
6 * (encoder layer and head parameters) * tokens + 12 * layers * hidden * sequence * tokens (the
attention scores and their weighted sum); embeddings are lookups, not counted. MFU is that over
the step time and the chip's dense bf16 peak (also for float32 runs, so the two compare).
"""

from __future__ import annotations

import argparse
import importlib.abc
import json
import os
import sys
import time
from pathlib import Path

BLOCKED = ("tensorflow", "tensorflow_text", "tf_keras", "boto3", "botocore", "pydantic")


class _BlockImports(importlib.abc.MetaPathFinder):
    """Refuses the packages the GPU machine does not have, exactly as a missing package would."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked: the GPU check must run without it")
        return None


sys.meta_path.insert(0, _BlockImports())
os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402

from modelgate.models.classifier import EncoderClassifier  # noqa: E402
from modelgate.models.siamese import SentenceEncoder, SiameseSimilarity, pair_inputs  # noqa: E402
from modelgate.training.distribution import training_distribution  # noqa: E402
from modelgate.training.optimizer import TrainSettings  # noqa: E402
from modelgate.training.similarity import SimilarityTrainSettings, compile_regressor  # noqa: E402
from modelgate.training.trainer import compile_classifier  # noqa: E402

# Dense bf16 peak (no sparsity), FLOP/s, by a substring of jax's device_kind.
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12}
MINILM = dict(vocabulary_size=30522, num_layers=6, num_heads=12, hidden_dim=384, intermediate_dim=1536)
SMOKE = dict(vocabulary_size=1000, num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=64)
NUM_CLASSES = 150


def chip_peak(kind: str, override_tflops: float | None) -> float | None:
    if override_tflops:
        return override_tflops * 1e12
    return next((peak for name, peak in PEAK_BF16.items() if name in kind), None)


def layer_parameters(sizes: dict) -> int:
    """Weights one token meets in the encoder layers: attention (4 h^2) + feed-forward (2 h i)."""
    h, i = sizes["hidden_dim"], sizes["intermediate_dim"]
    return sizes["num_layers"] * (4 * h * h + 4 * h + 2 * h * i + i + h)


def step_flops(sizes: dict, batch: int, seq: int, sequences_per_example: int, head_parameters: int) -> float:
    tokens = batch * seq * sequences_per_example
    attention = 12 * sizes["num_layers"] * sizes["hidden_dim"] * seq * tokens
    return 6.0 * layer_parameters(sizes) * tokens + attention + 6.0 * head_parameters * batch


def random_tokens(rng, count: int, seq: int, vocabulary: int) -> dict[str, np.ndarray]:
    """Token arrays as modelgate.preprocess makes them: ids, a padding mask (lengths 1/2..1 of seq)."""
    lengths = rng.integers(seq // 2, seq + 1, count)
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype("int32")
    ids = rng.integers(1000 if vocabulary > 2000 else 5, vocabulary, (count, seq)).astype("int32") * mask
    return {"token_ids": ids, "padding_mask": mask, "segment_ids": np.zeros((count, seq), "int32")}


def build(kind: str, sizes: dict, seq: int):
    backbone = keras_hub.models.BertBackbone(**sizes, max_sequence_length=max(seq, 512))
    if kind == "classifier":
        model = EncoderClassifier(backbone, num_classes=NUM_CLASSES, head="sngp")
        head = (model.encoder_dim * model.hidden_dim + model.hidden_dim * model.num_inducing
                + model.num_inducing * NUM_CLASSES)
        return model, head, 1
    return SiameseSimilarity(SentenceEncoder(backbone)), 0, 2


def data_for(kind: str, rng, count: int, seq: int, vocabulary: int):
    if kind == "classifier":
        return random_tokens(rng, count, seq, vocabulary), rng.integers(0, NUM_CLASSES, count)
    left, right = (random_tokens(rng, count, seq, vocabulary) for _ in range(2))
    names = ("token_ids", "padding_mask", "segment_ids")
    return pair_inputs(left, right, names), rng.random(count).astype("float32")


class _StartClockAfter(keras.callbacks.Callback):
    """Waits for the warm-up steps (they compile the step) to finish, once, then starts the clock:
    one fit runs warm-up and timed steps, because a second fit compiles the step again."""

    def __init__(self, warmup_steps: int):
        super().__init__()
        self.warmup_steps = warmup_steps
        self.started = None

    def on_train_batch_end(self, batch, logs=None):
        if batch + 1 == self.warmup_steps:
            jax.block_until_ready(logs)
            self.started = time.perf_counter()


def peak_memory_bytes() -> int | None:
    """Peak device memory of device 0 in this process so far (None where the backend keeps none)."""
    stats = jax.local_devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")


def measure(kind: str, policy: str, args, sizes: dict, peak: float | None) -> dict:
    keras.backend.clear_session()
    keras.config.set_dtype_policy(policy)
    keras.utils.set_random_seed(0)
    devices = len(jax.devices())
    batch = args.per_device_batch * devices
    rng = np.random.default_rng(0)
    x, y = data_for(kind, rng, batch * (args.warmup_steps + args.steps), args.seq_len, sizes["vocabulary_size"])
    clock = _StartClockAfter(args.warmup_steps)
    with training_distribution("data_parallel") as plan:
        model, head_parameters, sequences = build(kind, sizes, args.seq_len)
        if kind == "classifier":
            compile_classifier(model, args.warmup_steps + args.steps, TrainSettings(batch_size=batch))
        else:
            compile_regressor(model, SimilarityTrainSettings(batch_size=batch))
        history = model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0, callbacks=[clock])
        seconds = time.perf_counter() - clock.started  # fit returns after the last step's loss is read
    keras.config.set_dtype_policy("float32")
    step = seconds / args.steps
    flops = step_flops(sizes, batch, args.seq_len, sequences, head_parameters)
    return {
        "model": kind, "policy": policy, "compute_dtype": model.compute_dtype, "devices": plan.devices, "global_batch": batch,
        "seq_len": args.seq_len, "steps": args.steps, "step_ms": 1e3 * step,
        "examples_per_s": batch / step, "tflops_per_s": flops / step / 1e12,
        "mfu": (flops / step / (peak * devices)) if peak else None,
        "peak_memory_gib": (peak_memory_bytes() or 0) / 2**30 or None,
        "final_loss": float(history.history["loss"][-1]),
    }


def describe(result: dict) -> str:
    mfu = f"{100 * result['mfu']:.1f}%" if result["mfu"] is not None else "n/a (unknown chip peak)"
    memory = f"{result['peak_memory_gib']:.2f} GiB" if result["peak_memory_gib"] else "n/a"
    return (f"{result['model']:<10} {result['policy']:<15} ({result['compute_dtype']}) devices={result['devices']} "
            f"batch={result['global_batch']} seq={result['seq_len']}: {result['examples_per_s']:.1f} ex/s, "
            f"step {result['step_ms']:.1f} ms, {result['tflops_per_s']:.3g} TFLOP/s, MFU {mfu}, "
            f"peak memory {memory}, loss {result['final_loss']:.4f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny backbone and batch: a CPU run that proves the path")
    parser.add_argument("--seq-len", type=int, default=None, help="default 128 (16 with --smoke)")
    parser.add_argument("--per-device-batch", type=int, default=None, help="default 256 (4 with --smoke)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps, default 30 (3 with --smoke)")
    parser.add_argument("--warmup-steps", type=int, default=3, help="untimed steps that compile (>= 2)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the chip's dense bf16 peak, if not known")
    parser.add_argument("--models", default="classifier,siamese")
    parser.add_argument("--policies", default="float32,mixed_bfloat16")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if keras.backend.backend() != "jax":
        parser.error(f"needs KERAS_BACKEND=jax (got {keras.backend.backend()})")
    args.seq_len = args.seq_len or (16 if args.smoke else 128)
    args.per_device_batch = args.per_device_batch or (4 if args.smoke else 256)
    args.steps = args.steps or (3 if args.smoke else 30)
    sizes = SMOKE if args.smoke else MINILM
    kind = jax.devices()[0].device_kind
    peak = chip_peak(kind, args.peak_tflops)
    print(f"devices: {len(jax.devices())} x {kind} ({jax.devices()[0].platform}); dense bf16 peak "
          f"{peak / 1e12 if peak else 'unknown'} TFLOP/s per device; backbone {sizes}", flush=True)
    results = []
    for model_kind in args.models.split(","):
        for policy in args.policies.split(","):
            results.append(measure(model_kind, policy, args, sizes, peak))
            print(describe(results[-1]), flush=True)
    leaked = sorted(name for name in sys.modules if name.split(".")[0] in BLOCKED)
    print(f"imported of {', '.join(BLOCKED)}: {', '.join(leaked) or 'none'}")
    if args.json:
        args.json.write_text(json.dumps({"device_kind": kind, "results": results}, indent=2))
    return 1 if leaked else 0


if __name__ == "__main__":
    sys.exit(main())
