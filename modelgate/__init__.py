"""modelgate: Prefect pipelines that take pretrained NLP models to gated, versioned models in S3."""

from modelgate import quiet as _quiet

# TensorFlow's C++ start-up chatter (CPU features, missing CUDA) drowns the pipeline's own output.
_quiet.default_tensorflow_log_level()

__version__ = "0.1.0"
