"""Where a ``modelgate run``'s log goes: progress on the console, the failure's details in a file.

When a stage fails, Prefect logs the exception with its traceback once per attempt and again for
the flow: four tracebacks before anyone reads what went wrong. While a run is watched from the
command line, those failure records stay off the console (the command prints the root cause as one
line when the flow ends) and go, with every other record of the run, to a log file under
``MODELGATE_HOME/logs/runs/``. The Prefect server keeps them too: the run's page shows its logs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Iterator

from prefect.logging.handlers import PrefectConsoleHandler

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s - %(message)s"


def run_log_path(home: Path, pipeline: str) -> Path:
    """A new file for one run: ``HOME/logs/runs/PIPELINE-YYYYmmdd-HHMMSS-PID.log``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return home / "logs" / "runs" / f"{pipeline}-{stamp}-{os.getpid()}.log"


class _LeaveFailuresToTheLog(logging.Filter):
    """Drops Prefect's failure records (errors, and anything with a traceback) from the console."""

    def filter(self, record: logging.LogRecord) -> bool:
        failure = record.levelno >= logging.ERROR or record.exc_info is not None
        return not (failure and record.name.startswith("prefect"))


@contextlib.contextmanager
def run_log(path: Path) -> Iterator[Path]:
    """Send every record of the run to ``path``; keep Prefect's failure records off the console."""
    path.parent.mkdir(parents=True, exist_ok=True)
    file_handler = logging.FileHandler(path, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    consoles = [h for h in root.handlers if isinstance(h, PrefectConsoleHandler)]
    quiet = _LeaveFailuresToTheLog()
    root.addHandler(file_handler)
    for console in consoles:
        console.addFilter(quiet)
    try:
        yield path
    finally:
        for console in consoles:
            console.removeFilter(quiet)
        root.removeHandler(file_handler)
        file_handler.close()
