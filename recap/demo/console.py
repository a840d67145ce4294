"""What a newcomer sees while the demo runs: our own lines and progress bars on the terminal, and everything the
libraries print (Ray's and Ray Data's INFO/WARNING lines and its token-auth notice, transformers' and diffusers'
warnings, img2dataset's prints, C++ core-worker lines, subprocesses) in a log file under the run folder.

How: file descriptors 1 and 2 (what C code and child processes write to) and `sys.stdout` (in-process prints)
point at the log file, while `sys.stderr` (where tqdm draws its bars) is a new stream on the terminal. The
libraries' console log handlers (Ray's write to the `sys.stderr` of the moment, transformers' and diffusers' bind
it when made, which is lazily) are made first and then swapped for one that writes to the log, as is Python's
root logger's; `warnings` go through logging. Ray's workers' output must not be sent to the driver
(`ray.init(log_to_driver=False)`): it stays in Ray's session logs.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


def _bind_library_handlers() -> None:
    """Create the lazily made handlers of transformers, diffusers and Ray (Data) now, on the original stderr."""
    import ray  # noqa: F401  (its "ray" logger gets its handler at import)
    import ray.data  # noqa: F401  (Ray Data configures its loggers at import)
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    transformers_logging.get_logger("transformers")  # makes the library's default handler
    diffusers_logging.get_logger("diffusers")


def _console_handlers() -> list[tuple[logging.Logger, logging.Handler]]:
    """Every (logger, handler) pair that writes to a console stream rather than a file."""
    loggers = [logging.getLogger()]
    loggers += [item for item in logging.Logger.manager.loggerDict.values() if isinstance(item, logging.Logger)]
    return [
        (logger, handler)
        for logger in loggers
        for handler in logger.handlers
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
    ]


@contextmanager
def library_output_to(log_path: Path, *, verbose: bool = False) -> Iterator[TextIO]:
    """Yield the stream for the demo's own lines; unless `verbose`, the libraries' output goes to `log_path`
    (appended) until the block ends, and everything is put back afterwards."""
    if verbose:
        yield sys.stdout
        return
    _bind_library_handlers()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    log = open(log_path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115  (closed below)
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    terminal = os.fdopen(os.dup(saved[1]), "w", buffering=1, encoding="utf-8")
    bars = os.fdopen(os.dup(saved[2]), "w", buffering=1, encoding="utf-8")
    old_stdout, old_stderr = sys.stdout, sys.stderr
    root = logging.getLogger()
    handler = logging.StreamHandler(log)
    handler.setLevel(logging.INFO)  # Ray Data logs every scheduling loop at DEBUG
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    swapped = _console_handlers()
    old_level = root.level
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdout, sys.stderr = log, bars
    for logger, console in swapped:
        logger.removeHandler(console)
        logger.addHandler(handler)
    if not root.handlers:
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    try:
        yield terminal
    finally:
        logging.captureWarnings(False)
        for logger in {logger for logger, _ in swapped} | {root}:
            if handler in logger.handlers:
                logger.removeHandler(handler)
        for logger, console in swapped:
            logger.addHandler(console)
        root.setLevel(old_level)
        for stream in (log, terminal, bars):
            stream.flush()
        sys.stdout, sys.stderr = old_stdout, old_stderr
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        for stream in (log, terminal, bars):
            stream.close()
