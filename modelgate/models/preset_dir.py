"""Writing a converted encoder as a keras-hub preset directory, atomically: the files go into a
temporary directory beside the target, renamed into place once complete, so a crash midway leaves
nothing that looks like a preset (the USE multilingual and all-mpnet-base-v2 conversions)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Callable


def write_preset_atomically(directory: Path, build: Callable[[], tuple[object, object]]) -> Path:
    """Save ``build()``'s (backbone, tokenizer) as a preset at ``directory``; returns it. When
    another writer finished the same preset first, its directory is kept."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        backbone, tokenizer = build()
        backbone.save_to_preset(str(staging))
        tokenizer.save_to_preset(str(staging))
        try:
            staging.rename(directory)
        except OSError:
            if not (directory / "config.json").exists():  # not another writer's finished preset
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory
