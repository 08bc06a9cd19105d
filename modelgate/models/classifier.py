"""EncoderClassifier: a pretrained keras-hub backbone with an SNGP or a plain softmax head.

    token arrays -> backbone -> masked mean pooling -> dropout -> hidden dense -> head

With ``contrastive_weight`` > 0, training also adds that times the supervised contrastive loss of
the pooled embeddings (``supervised_contrastive_loss``); the labels come in the inputs, as
``labels``, in training only.

Head "sngp": the hidden dense is spectrally normalised and the head is a random-feature Gaussian
process; at inference the model returns mean-field logits. Head "softmax": a plain tanh dense and a
dense logits layer, the deterministic baseline. Inputs are the dicts of ``modelgate.preprocess``
(``token_ids``, ``padding_mask``, ``segment_ids``); keys the backbone does not take are ignored.
"""

from __future__ import annotations

import keras
from keras import ops

from modelgate.models.gaussian_process import RandomFeatureGaussianProcess
from modelgate.models.padding import predict_by_length
from modelgate.models.pooling import MaskedMeanPooling
from modelgate.models.spectral_norm import SpectralNormDense
from modelgate.models.supervised_contrastive import supervised_contrastive_loss

HEADS = ("sngp", "softmax")


@keras.saving.register_keras_serializable(package="modelgate")
class EncoderClassifier(keras.Model):
    """Sentence classifier on a keras-hub backbone.

    Args:
        backbone: a keras-hub ``Backbone`` (e.g. from ``modelgate.models.load_backbone``).
        num_classes: number of output logits.
        head: "sngp" or "softmax".
        hidden_dim: width of the hidden dense; defaults to the backbone's hidden size.
        dropout: dropout rate on the pooled embedding.
        freeze_backbone: train only the head (``backbone.trainable = False``).
        spectral_norm_bound, power_iterations: see ``SpectralNormDense`` (sngp only).
        contrastive_weight, contrastive_temperature: the supervised contrastive loss's weight
            beside cross-entropy (0: none) and temperature; it needs a trainable encoder.
        num_inducing, ridge_penalty, mean_field_factor, gp_kernel_scale: see
            ``RandomFeatureGaussianProcess`` (sngp only).
    """

    # The layers that are not the pretrained encoder (names of the head's layers below).
    HEAD_LAYERS = ("hidden", "gaussian_process", "logits")

    def __init__(
        self,
        backbone,
        num_classes,
        head="sngp",
        hidden_dim=None,
        dropout=0.1,
        freeze_backbone=False,
        spectral_norm_bound=0.95,
        power_iterations=1,
        num_inducing=1024,
        ridge_penalty=1.0,
        mean_field_factor=30.0,
        gp_kernel_scale=1.0,
        temperature=1.0,
        contrastive_weight=0.0,
        contrastive_temperature=0.1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if head not in HEADS:
            raise ValueError(f"EncoderClassifier: head must be one of {HEADS}, got {head!r}")
        if int(num_classes) < 2:
            raise ValueError(f"EncoderClassifier: num_classes must be >= 2, got {num_classes}")
        self.backbone = backbone
        self.num_classes = int(num_classes)
        self.head = head
        self.encoder_dim = _backbone_output_dim(backbone)
        self.hidden_dim = int(hidden_dim or self.encoder_dim)
        self.dropout_rate = float(dropout)
        self.freeze_backbone = bool(freeze_backbone)
        self.spectral_norm_bound = float(spectral_norm_bound)
        self.power_iterations = int(power_iterations)
        self.num_inducing = int(num_inducing)
        self.ridge_penalty = float(ridge_penalty)
        self.mean_field_factor = float(mean_field_factor)
        self.gp_kernel_scale = float(gp_kernel_scale)
        if not temperature > 0:
            raise ValueError(f"EncoderClassifier: temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)
        if contrastive_weight < 0 or not contrastive_temperature > 0:
            raise ValueError(
                f"EncoderClassifier: contrastive_weight must be >= 0 and contrastive_temperature > 0, "
                f"got {contrastive_weight} and {contrastive_temperature}"
            )
        if contrastive_weight > 0 and freeze_backbone:
            raise ValueError(
                "EncoderClassifier: a contrastive loss on a frozen encoder's embeddings has nothing to "
                "train; set contrastive_weight to 0 or unfreeze the backbone"
            )
        self.contrastive_weight = float(contrastive_weight)
        self.contrastive_temperature = float(contrastive_temperature)
        self.backbone_input_names = tuple(_backbone_input_names(backbone))
        self._make_layers()
        self.build(None)

    def _make_layers(self):
        """Set the backbone's trainability and create the head: pooling, dropout, hidden, output."""
        self.backbone.trainable = not self.freeze_backbone
        # BERT's [CLS] pooler is unused under mean pooling: frozen, it gets no optimizer slots and
        # no "gradients do not exist" warnings.
        pooler = getattr(self.backbone, "pooled_dense", None)
        if pooler is not None:
            pooler.trainable = False
        self.pooling = MaskedMeanPooling(name="pooling")
        self.dropout = keras.layers.Dropout(self.dropout_rate, name="dropout")
        if self.head == "sngp":
            self.hidden = SpectralNormDense(
                self.hidden_dim,
                norm_bound=self.spectral_norm_bound,
                power_iterations=self.power_iterations,
                activation="tanh",
                name="hidden",
            )
            self.output_head = RandomFeatureGaussianProcess(
                self.num_classes,
                num_inducing=self.num_inducing,
                ridge_penalty=self.ridge_penalty,
                mean_field_factor=self.mean_field_factor,
                kernel_scale=self.gp_kernel_scale,
                name="gaussian_process",
            )
        else:
            self.hidden = keras.layers.Dense(self.hidden_dim, activation="tanh", name="hidden")
            self.output_head = keras.layers.Dense(self.num_classes, name="logits")

    def build(self, input_shape=None):
        # Everything's shape follows from the backbone, so the model builds at construction and
        # loads from a .keras file without a sample batch.
        self.hidden.build((None, self.encoder_dim))
        self.output_head.build((None, self.hidden_dim))
        self.built = True

    # -- forward -------------------------------------------------------------------------------
    def embed(self, inputs, training=None):
        """Pooled sentence embedding [B, encoder_dim]."""
        backbone_inputs = {name: inputs[name] for name in self.backbone_input_names}
        outputs = self.backbone(backbone_inputs, training=training)
        sequence = outputs["sequence_output"] if isinstance(outputs, dict) else outputs
        return self.pooling(sequence, inputs["padding_mask"])

    def features(self, inputs, training=None):
        """What the output layer sees: pooled -> dropout -> hidden [B, hidden_dim]."""
        return self._features_of(self.embed(inputs, training=training), training=training)

    def _features_of(self, pooled, training=None):
        return self.hidden(self.dropout(pooled, training=training), training=training)

    def call(self, inputs, training=None):
        pooled = self.embed(inputs, training=training)
        if training and self.contrastive_weight > 0:
            if "labels" not in inputs:
                raise ValueError("EncoderClassifier: with contrastive_weight > 0, training needs each row's "
                                 "label among the inputs, as 'labels'")
            self.add_loss(self.contrastive_weight * supervised_contrastive_loss(
                pooled, inputs["labels"], self.contrastive_temperature))
        features = self._features_of(pooled, training=training)
        outputs = self.output_head(features, training=training)
        if training or self.temperature == 1.0:
            return outputs
        return outputs / self.temperature

    def set_calibration(self, temperature=None, mean_field_factor=None):
        """Set the inference-time calibration chosen on validation data (training is unaffected):
        logits / (temperature * sqrt(1 + mean_field_factor * variance))."""
        if temperature is not None:
            if not temperature > 0:
                raise ValueError(f"temperature must be > 0, got {temperature}")
            self.temperature = float(temperature)
        if mean_field_factor is not None and self.head == "sngp":
            self.mean_field_factor = float(mean_field_factor)
            self.output_head.mean_field_factor = float(mean_field_factor)
        # Compiled predict functions captured the old constants.
        self.predict_function = None

    def logits_and_variance(self, inputs):
        """(logits before the mean-field adjustment, predictive variance) as backend tensors.

        The softmax head has no variance: it returns zeros.
        """
        features = self.features(inputs, training=False)
        if self.head == "sngp":
            return self.output_head.logits_and_variance(features)
        logits = self.output_head(features)
        return logits, ops.zeros((ops.shape(logits)[0],), dtype=logits.dtype)

    def predict_logits_and_variance(self, inputs, batch_size=64):
        """Numpy (logits [N, C], variance [N]) over a dict of token arrays.

        The encoder runs each row at its own length (``predict_embeddings``), the head on the
        pooled embeddings: most SNLI pairs are shorter than the 48 tokens they are padded to, and the encoder is
        nearly all of the cost."""
        return self.logits_and_variance_from_embeddings(self.predict_embeddings(inputs, batch_size=batch_size))

    def logits_and_variance_from_embeddings(self, embeddings):
        """``logits_and_variance`` from pooled embeddings (``embed``'s output) instead of tokens:
        evaluation embeds each split once and reads both the head and the embedding from it."""
        features = self.hidden(ops.convert_to_tensor(embeddings), training=False)
        if self.head == "sngp":
            logits, variance = self.output_head.logits_and_variance(features)
        else:
            logits = self.output_head(features)
            variance = ops.zeros((ops.shape(logits)[0],), dtype=logits.dtype)
        return ops.convert_to_numpy(logits), ops.convert_to_numpy(variance)

    def predict_embeddings(self, inputs, batch_size=128):
        """Numpy pooled embeddings [N, encoder_dim] over a dict of token arrays (each row at its own
        length: ``predict_by_length``). Arrays the encoder does not read (an MPNet model given
        packed pairs' ``segment_ids``) are left out."""
        names = [*self.backbone_input_names, "padding_mask"]
        return predict_by_length(self.embedding_model(), {name: inputs[name] for name in names}, batch_size=batch_size)

    # -- frozen-encoder training ----------------------------------------------------------------
    def embedding_model(self):
        """A functional model: token arrays -> pooled embedding, sharing this model's layers.

        With a frozen backbone the embeddings never change, so they can be computed once and the
        head trained on them (see ``head_model``) instead of running the encoder every epoch.
        """
        names = dict.fromkeys([*self.backbone_input_names, "padding_mask"])
        inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name) for name in names}
        return keras.Model(inputs, self.embed(inputs, training=False), name="embedding_model")

    def head_model(self):
        """A model: pooled embedding -> logits through this model's own dropout, hidden and output
        layers (shared, so training it trains them)."""
        inputs = keras.Input(shape=(self.encoder_dim,), name="embedding")
        features = self.hidden(self.dropout(inputs))
        return keras.Model(inputs, self.output_head(features), name="head_model")

    def compute_output_shape(self, input_shape):
        return (None, self.num_classes)

    # -- serialization -------------------------------------------------------------------------
    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "backbone": keras.saving.serialize_keras_object(self.backbone),
                "num_classes": self.num_classes,
                "head": self.head,
                "hidden_dim": self.hidden_dim,
                "dropout": self.dropout_rate,
                "freeze_backbone": self.freeze_backbone,
                "spectral_norm_bound": self.spectral_norm_bound,
                "power_iterations": self.power_iterations,
                "num_inducing": self.num_inducing,
                "ridge_penalty": self.ridge_penalty,
                "mean_field_factor": self.mean_field_factor,
                "gp_kernel_scale": self.gp_kernel_scale,
                "temperature": self.temperature,
                "contrastive_weight": self.contrastive_weight,
                "contrastive_temperature": self.contrastive_temperature,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)


def _backbone_output_dim(backbone) -> int:
    for attribute in ("hidden_dim", "embedding_dim"):
        value = getattr(backbone, attribute, None)
        if value:
            return int(value)
    output = backbone.output
    output = output["sequence_output"] if isinstance(output, dict) else output
    return int(output.shape[-1])


def _backbone_input_names(backbone) -> list[str]:
    inputs = backbone.input
    if isinstance(inputs, dict):
        return list(inputs.keys())
    raise ValueError(
        f"backbone {type(backbone).__name__} takes {type(inputs).__name__} inputs; "
        "EncoderClassifier needs a keras-hub backbone with named (dict) inputs"
    )
