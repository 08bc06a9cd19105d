"""A quiet start-up: TensorFlow's import-time notices stay off the command line's stderr.

Importing TensorFlow prints notices that say nothing about the run ("Could not find cuda drivers",
CPU instruction sets, "All log messages before absl::InitializeLog() ..."). ``TF_CPP_MIN_LOG_LEVEL``
(defaulted to 2 when ``modelgate`` is imported) hides most of them, but the CUDA-stub notice is
written through absl before TensorFlow reads that variable, so it is caught at the file-descriptor
level.

``install()`` wraps the first ``import tensorflow`` of the process: while it runs, file descriptor
2 goes to a temporary file; afterwards every line that is not one of the known notices is written
to the real stderr, so a real error during the import is still seen. ``TF_CPP_MIN_LOG_LEVEL=0``
asks for all of TensorFlow's logging and gets it unfiltered.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import tempfile
from typing import Iterator

# The exact notices seen when TensorFlow starts on a machine without a GPU or TensorRT.
TENSORFLOW_NOTICES = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|cudart_stub\.cc:\d+\] Could not find cuda drivers"
    r"|cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized"
    r"|^To enable the following instructions: .* rebuild TensorFlow"
    r"|port\.cc:\d+\] oneDNN custom operations are on"
    r"|TF-TRT Warning: Could not find TensorRT"
    r"|Unable to register cu(DNN|FFT|BLAS) factory"
    r"|computation_placer\.cc:\d+\] computation placer already registered"
    # CUDA's "no driver here" answer when the first device is looked up on a machine without one.
    r"|cuda_platform\.cc:\d+\] failed call to cuInit: .*\(303\)"
)


@contextlib.contextmanager
def filtered_stderr(noise: re.Pattern[str] = TENSORFLOW_NOTICES) -> Iterator[None]:
    """Hold what is written to file descriptor 2; then pass on every line ``noise`` does not match."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable stderr: nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            text = held.read().decode("utf-8", errors="replace")
            kept = [line for line in text.splitlines(keepends=True) if not noise.search(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


class _QuietLoader(importlib.abc.Loader):
    """The real loader of a package, run with its start-up notices filtered."""

    def __init__(self, loader: importlib.abc.Loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        module.__loader__ = self._loader
        module.__spec__.loader = self._loader
        with filtered_stderr():
            self._loader.exec_module(module)
            # CUDA is asked for a device the first time one is listed, not at import; ask now,
            # inside the filter, so "failed call to cuInit" on a machine without a GPU is caught
            # here instead of surfacing in the middle of a run.
            with contextlib.suppress(Exception):
                module.config.list_physical_devices()


class _QuietFirstImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: hands the first import of ``name`` to _QuietLoader, then steps aside."""

    def __init__(self, name: str):
        self.name = name

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _QuietLoader(spec.loader)
        return spec


def default_tensorflow_log_level() -> None:
    """Hide TensorFlow's C++ info and warning lines unless the user chose a level."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def install() -> None:
    """Quiet TensorFlow's start-up for this process, unless TF_CPP_MIN_LOG_LEVEL=0 asks for all."""
    default_tensorflow_log_level()
    if os.environ["TF_CPP_MIN_LOG_LEVEL"].strip() == "0" or "tensorflow" in sys.modules:
        return
    # absl's Python logger repeats TensorFlow's warnings about tracing and saving; errors still show.
    logging.getLogger("absl").setLevel(logging.ERROR)
    if not any(isinstance(finder, _QuietFirstImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietFirstImport("tensorflow"))
