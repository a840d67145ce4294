"""What a person sees while a command runs: our own lines, our progress bars and a summary on the terminal, and
everything the libraries print (Ray's and Ray Data's log lines and token-auth notice, the C++ core worker's lines,
img2dataset's prints, transformers' and diffusers' warnings, subprocesses) in a log file.

How: inside `command_console(log)`, file descriptors 1 and 2 (what C code and child processes write to) and
`sys.stdout` / `sys.stderr` (what Python code prints and logging handlers write to, whenever they were made)
all point at the log. Our lines go through `echo` and our bars through `progress_bar`, which write to copies of
the terminal's streams that the block keeps. Nothing has to know which libraries will run: whatever is not ours
lands in the log. With `verbose`, nothing is redirected (everything shows, as without the block).

The block ends by disconnecting Ray if the command connected it, so that Ray's shutdown lines land in the log
too and not on the terminal after it.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

LOG_FILE = "recap.log"
# The log's name in folders that people read as Parquet datasets: "_" keeps it out of pyarrow's discovery.
TABLE_LOG_FILE = "_recap.log"
LOG_FILES = (LOG_FILE, TABLE_LOG_FILE)
TAIL_LINES = 12
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass
class Console:
    """Where our output goes while a command runs. `log` is None when nothing is redirected."""

    terminal: TextIO
    bars: TextIO
    log: Path | None = None
    quiet: bool = False
    start: int = 0  # the log's size before this command wrote to it

    def logged_lines(self) -> list[str]:
        """The non-empty lines the libraries wrote to the log during this command (ANSI colours removed)."""
        if self.log is None or not self.log.exists():
            return []
        with open(self.log, encoding="utf-8", errors="replace") as handle:
            handle.seek(self.start)
            text = handle.read()
        lines = (_ANSI.sub("", line).rstrip() for line in text.replace("\r", "\n").splitlines())
        return [line for line in lines if line.strip()]


_current: Console | None = None


def current() -> Console | None:
    """The console of the running command, if one is open."""
    return _current


def echo(text: str = "") -> None:
    """Print one of our own lines on the terminal (between progress bars, not through them)."""
    console = _current
    if console is None:
        print(text, flush=True)
        return
    from tqdm import tqdm

    with tqdm.external_write_mode(file=console.bars):
        console.terminal.write(f"{text}\n")
        console.terminal.flush()


def progress_bar(iterable=None, **options):
    """A tqdm bar on the terminal even while the libraries' output goes to the log; none with --quiet."""
    from tqdm import tqdm

    console = _current
    if console is not None:
        options.setdefault("file", console.bars)
        if console.quiet:
            options["disable"] = True
    return tqdm(iterable, **options)


def add_console_arguments(parser: argparse.ArgumentParser) -> None:
    """--quiet and --verbose, the same for every command."""
    group = parser.add_argument_group("output")
    group.add_argument("--quiet", action="store_true", help="no progress bars (our lines and the summary only)")
    group.add_argument(
        "--verbose",
        action="store_true",
        help="show the libraries' output (Ray, img2dataset, ...) instead of logging it",
    )


def _own_copy(stream: TextIO, fd: int) -> tuple[TextIO, bool]:
    """A stream that still reaches where `stream` goes after `fd` is pointed at the log: a copy of `fd` when
    `stream` writes straight to it (a terminal, a pipe), else `stream` itself (pytest's capture, say)."""
    try:
        direct = stream.fileno() == fd
    except (AttributeError, OSError, ValueError):
        direct = False
    if not direct:
        return stream, False
    return os.fdopen(os.dup(fd), "w", buffering=1, encoding="utf-8", errors="replace"), True


def _ray_connected() -> bool:
    ray = sys.modules.get("ray")
    return bool(ray is not None and ray.is_initialized())


def _open_log(log: Path) -> tuple[TextIO | None, Path | None]:
    """The log opened for appending, and the highest folder made for it (None when all existed)."""
    made = next((folder for folder in reversed(log.parents) if not folder.exists()), None)
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        return open(log, "a", buffering=1, encoding="utf-8", errors="replace"), made  # noqa: SIM115  (closed below)
    except OSError:
        return None, None


@contextmanager
def command_console(
    log: Path | None, *, verbose: bool = False, quiet: bool = False, title: str = ""
) -> Iterator[Console]:
    """Route the libraries' output to `log` (appended; a header line with `title` opens this command's part) until
    the block ends, and yield the console our lines and bars use. With `verbose`, or when `log` cannot be opened
    (the command then reports its own error about the folder), nothing is redirected."""
    global _current
    handle, made = (None, None) if verbose or log is None else _open_log(log)
    if handle is None:
        _current = Console(terminal=sys.stdout, bars=sys.stderr, quiet=quiet)
        try:
            yield _current
        finally:
            _current = None
        return
    header_at = handle.tell()
    handle.write(f"==== {time.strftime('%Y-%m-%d %H:%M:%S')} {title} ====\n")
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    terminal, own_terminal = _own_copy(sys.stdout, 1)
    bars, own_bars = _own_copy(sys.stderr, 2)
    old_streams = sys.stdout, sys.stderr
    ray_before = _ray_connected()
    os.dup2(handle.fileno(), 1)
    os.dup2(handle.fileno(), 2)
    sys.stdout = sys.stderr = handle
    console = _current = Console(terminal=terminal, bars=bars, log=log, quiet=quiet, start=handle.tell())
    try:
        yield console
    finally:
        try:
            if _ray_connected() and not ray_before:
                sys.modules["ray"].shutdown()  # its goodbye lines belong in the log, not after our summary
        finally:
            _current = None
            for stream in (handle, terminal, bars):
                stream.flush()
            sys.stdout, sys.stderr = old_streams
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            handle.close()
            _drop_empty_part(log, header_at, console.start, made)
            for stream, own in ((terminal, own_terminal), (bars, own_bars)):
                if own:
                    stream.close()


def _drop_empty_part(log: Path, header_at: int, start: int, made: Path | None) -> None:
    """Take a command's header back out of the log when the libraries wrote nothing after it, and the log and
    the folders made for it when they would be left empty."""
    try:
        if log.stat().st_size != start:
            return
        if header_at:
            os.truncate(log, header_at)
            return
        log.unlink()
        for folder in [log.parent, *log.parent.parents]:
            if made is None or folder == made.parent or any(folder.iterdir()):
                break
            folder.rmdir()
    except OSError:
        pass


def tail(console: Console, lines: int = TAIL_LINES) -> list[str]:
    """The last `lines` lines the libraries logged during this command: what usually explains a failure."""
    return console.logged_lines()[-lines:]
