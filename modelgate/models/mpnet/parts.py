"""A read-only, seekable file over several files read one after another: a split archive
(``x.zip.001``, ``x.zip.002``, ...) opened as the one zip it is, without joining it on disk."""

from __future__ import annotations

import bisect
import io
import os
from pathlib import Path


class ConcatenatedFile(io.RawIOBase):
    """The bytes of ``paths`` in order, as one file (``zipfile.ZipFile`` can open it)."""

    def __init__(self, paths):
        super().__init__()
        self._paths = [Path(p) for p in paths]
        if not self._paths:
            raise ValueError("ConcatenatedFile needs at least one file")
        sizes = [p.stat().st_size for p in self._paths]
        self._starts = [sum(sizes[:i]) for i in range(len(sizes))]
        self._size = sum(sizes)
        self._files = [open(p, "rb") for p in self._paths]
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._position = base + offset
        return self._position

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        filled = 0
        # Fill the whole buffer, crossing part boundaries (zipfile treats a short read as corrupt).
        while filled < len(view) and self._position < self._size:
            index = bisect.bisect_right(self._starts, self._position) - 1
            part = self._files[index]
            part.seek(self._position - self._starts[index])
            count = part.readinto(view[filled:])
            if not count:
                raise OSError(f"{self._paths[index]} ended early (it changed while being read)")
            filled += count
            self._position += count
        return filled

    def close(self) -> None:
        for part in getattr(self, "_files", []):
            part.close()
        super().close()
