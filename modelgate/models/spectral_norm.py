"""A dense layer whose kernel's spectral norm is kept under a bound (SNGP's distance preservation).

SNGP needs the hidden mapping to be roughly distance preserving, so that inputs far from the
training data stay far in feature space and the Gaussian process can see it. Bounding the
largest singular value of the kernel does that (Liu et al., 2020).

The kernel is re-parametrised rather than overwritten: the trainable variable holds W, and the
layer multiplies by W * min(1, bound / sigma(W)). Nothing assigns to trainable variables inside
``call``, which is what keeps the layer correct under the stateless JAX trainer.
"""

from __future__ import annotations

import keras
from keras import ops

from modelgate.models.pooling import l2_normalize


def _unit_row(x):
    """The power iteration's [1, n] vector at unit length."""
    return l2_normalize(x, 1e-12)


@keras.saving.register_keras_serializable(package="modelgate")
class SpectralNormDense(keras.layers.Layer):
    """Dense layer with a spectral-norm bound estimated by power iteration.

    Args:
        units: output size.
        norm_bound: largest allowed spectral norm; the kernel is rescaled only when its
            estimated spectral norm exceeds this value (0.95 in the SNGP recipe).
        power_iterations: power-iteration steps per training step (1 in the recipe; the
            estimate converges across steps because ``u`` persists).
        activation, use_bias, kernel_initializer, bias_initializer: as in ``keras.layers.Dense``.
    """

    def __init__(
        self,
        units,
        norm_bound=0.95,
        power_iterations=1,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if norm_bound <= 0:
            raise ValueError(f"SpectralNormDense '{self.name}': norm_bound must be > 0, got {norm_bound}")
        if power_iterations < 1:
            raise ValueError(
                f"SpectralNormDense '{self.name}': power_iterations must be >= 1, got {power_iterations}"
            )
        self.units = int(units)
        self.norm_bound = float(norm_bound)
        self.power_iterations = int(power_iterations)
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape):
        input_dim = int(input_shape[-1])
        self.kernel = self.add_weight(
            name="kernel", shape=(input_dim, self.units), initializer=self.kernel_initializer
        )
        self.bias = (
            self.add_weight(name="bias", shape=(self.units,), initializer=self.bias_initializer)
            if self.use_bias
            else None
        )
        # Left singular vector estimate; persists so one iteration per step converges over training.
        self.u = self.add_weight(
            name="u",
            shape=(1, self.units),
            initializer=keras.initializers.RandomNormal(stddev=1.0),
            trainable=False,
        )

    def _power_iteration(self, kernel, u):
        # The estimate is a constant for the gradient: differentiate only through W / sigma.
        kernel_sg = ops.stop_gradient(kernel)
        for _ in range(self.power_iterations):
            v = _unit_row(ops.matmul(u, ops.transpose(kernel_sg)))  # [1, in]
            u = _unit_row(ops.matmul(v, kernel_sg))  # [1, out]
        u = ops.stop_gradient(u)
        v = ops.stop_gradient(_unit_row(ops.matmul(u, ops.transpose(kernel_sg))))
        sigma = ops.sum(ops.matmul(v, kernel) * u)
        return u, sigma

    def _bounded(self, kernel, sigma):
        # Rescale only when the estimate exceeds the bound: a small kernel is left as it is.
        scale = ops.minimum(1.0, self.norm_bound / ops.maximum(sigma, 1e-12))
        return kernel * ops.cast(scale, kernel.dtype)

    def call(self, inputs, training=None):
        kernel = ops.convert_to_tensor(self.kernel)
        u = ops.convert_to_tensor(self.u)
        if training:
            u, sigma = self._power_iteration(kernel, u)
            self.u.assign(u)
        else:
            # Inference uses the stored estimate without advancing it: predictions are repeatable.
            v = _unit_row(ops.matmul(u, ops.transpose(kernel)))
            sigma = ops.sum(ops.matmul(v, kernel) * u)
        outputs = ops.matmul(inputs, self._bounded(kernel, sigma))
        if self.bias is not None:
            outputs = outputs + self.bias
        return self.activation(outputs) if self.activation is not None else outputs

    def effective_kernel(self):
        """The kernel inference multiplies by (W after the bound), as a backend tensor."""
        kernel = ops.convert_to_tensor(self.kernel)
        u = ops.convert_to_tensor(self.u)
        v = _unit_row(ops.matmul(u, ops.transpose(kernel)))
        sigma = ops.sum(ops.matmul(v, kernel) * u)
        return self._bounded(kernel, sigma)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "norm_bound": self.norm_bound,
                "power_iterations": self.power_iterations,
                "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config
