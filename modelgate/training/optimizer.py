"""AdamW with BERT-style weight decay and a warmup + linear-decay learning-rate schedule."""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import ops

from modelgate.training.distribution import DISTRIBUTIONS

# Matched (re.search) against variable names: LayerNorm scale/offset and every bias.
NO_DECAY_VARIABLE_NAMES = ["bias", "gamma", "beta", "LayerNorm", "layer_norm"]


@dataclass
class TrainSettings:
    """Recipe defaults of the SNGP/BERT fine-tuning recipes."""

    epochs: int = 3
    batch_size: int = 32
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    seed: int = 42
    global_clipnorm: float | None = 1.0
    epsilon: float = 1e-6
    verbose: int = 0
    # Discriminative learning rates: variables of the layers named here (path segments) learn at
    # learning_rate * head_learning_rate_multiplier, the rest (the pretrained encoder) at learning_rate.
    head_layers: tuple[str, ...] = ()
    head_learning_rate_multiplier: float = 1.0
    # Batches of similar length, each cut to its longest row (see modelgate.training.batches).
    length_bucketing: bool = False
    # "auto" | "none" | "data_parallel" (modelgate.training.distribution); None: the Keras
    # distribution already set around the call, if any.
    distribution: str | None = None

    def __post_init__(self):
        problems = []
        if self.distribution is not None and self.distribution not in DISTRIBUTIONS:
            problems.append(f"distribution must be one of {', '.join(DISTRIBUTIONS)} (got {self.distribution!r})")
        if self.epochs < 1:
            problems.append(f"epochs must be >= 1 (got {self.epochs})")
        if self.batch_size < 1:
            problems.append(f"batch_size must be >= 1 (got {self.batch_size})")
        if not self.learning_rate > 0:
            problems.append(f"learning_rate must be > 0 (got {self.learning_rate})")
        if self.weight_decay < 0:
            problems.append(f"weight_decay must be >= 0 (got {self.weight_decay})")
        if not 0 <= self.warmup_fraction < 1:
            problems.append(f"warmup_fraction must be in [0, 1) (got {self.warmup_fraction})")
        if not self.head_learning_rate_multiplier > 0:
            problems.append(
                f"head_learning_rate_multiplier must be > 0 (got {self.head_learning_rate_multiplier})"
            )
        if problems:
            raise ValueError("invalid training settings: " + "; ".join(problems))


@keras.saving.register_keras_serializable(package="modelgate")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """0 -> peak linearly over ``warmup_steps``, then linearly to 0 at ``total_steps``."""

    def __init__(self, peak_learning_rate, warmup_steps, total_steps):
        if total_steps < 1:
            raise ValueError(f"WarmupLinearDecay: total_steps must be >= 1, got {total_steps}")
        if not 0 <= warmup_steps <= total_steps:
            raise ValueError(
                f"WarmupLinearDecay: warmup_steps must be in [0, total_steps={total_steps}], got {warmup_steps}"
            )
        self.peak_learning_rate = float(peak_learning_rate)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = float(max(self.warmup_steps, 1))
        decay = float(max(self.total_steps - self.warmup_steps, 1))
        rising = self.peak_learning_rate * step / warmup
        falling = self.peak_learning_rate * (self.total_steps - step) / decay
        rate = ops.where(step < self.warmup_steps, rising, falling)
        return ops.clip(rate, 0.0, self.peak_learning_rate)

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
        }


@keras.saving.register_keras_serializable(package="modelgate")
class HeadRateAdamW(keras.optimizers.AdamW):
    """AdamW whose step is ``head_multiplier`` times larger for the variables of the layers named
    in ``head_layers`` (segments of the variable path): a randomly initialised head learns at its
    own pace while the pretrained encoder moves gently. Weight decay uses the base rate for all."""

    def __init__(self, head_layers=(), head_multiplier=1.0, **kwargs):
        super().__init__(**kwargs)
        self.head_layers = tuple(head_layers)
        self.head_multiplier = float(head_multiplier)
        self._head_indices: set[int] = set()

    def build(self, var_list):
        super().build(var_list)
        self._head_indices = {
            i for i, variable in enumerate(var_list)
            if set(variable.path.split("/")) & set(self.head_layers)
        }

    def update_step(self, gradient, variable, learning_rate):
        if self._get_variable_index(variable) in self._head_indices:
            learning_rate = ops.multiply(learning_rate, self.head_multiplier)
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "head_layers": list(self.head_layers),
                "head_multiplier": self.head_multiplier}


def build_optimizer(total_steps: int, cfg: TrainSettings | None = None) -> keras.optimizers.AdamW:
    """AdamW over ``total_steps`` optimizer steps: warmup fraction, then linear decay to zero."""
    cfg = cfg or TrainSettings()
    schedule = WarmupLinearDecay(
        cfg.learning_rate,
        warmup_steps=int(round(cfg.warmup_fraction * total_steps)),
        total_steps=total_steps,
    )
    options = {"learning_rate": schedule, "weight_decay": cfg.weight_decay, "epsilon": cfg.epsilon,
               "global_clipnorm": cfg.global_clipnorm}
    if cfg.head_layers and cfg.head_learning_rate_multiplier != 1.0:
        optimizer = HeadRateAdamW(cfg.head_layers, cfg.head_learning_rate_multiplier, **options)
    else:
        optimizer = keras.optimizers.AdamW(**options)
    optimizer.exclude_from_weight_decay(var_names=NO_DECAY_VARIABLE_NAMES)
    return optimizer
