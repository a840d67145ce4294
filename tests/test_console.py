"""The console every command runs in: the libraries' output (Python prints, loggers whenever their handlers were
made, warnings, C-level writes, child processes, other tqdm bars) to the log; our lines and bars to the terminal.
Checked in real subprocesses, whose stdout and stderr are the terminal."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from recap.console import command_console, echo, progress_bar

SCRIPT = textwrap.dedent(
    """
    import logging, os, subprocess, sys, warnings
    from pathlib import Path
    from tqdm import tqdm
    from recap.console import command_console, echo, progress_bar

    early = logging.getLogger("early")
    early.addHandler(logging.StreamHandler())  # bound to the real stderr before the block, like Ray's at import
    log, quiet, verbose = Path(sys.argv[1]), sys.argv[2] == "quiet", sys.argv[2] == "verbose"
    with command_console(log, quiet=quiet, verbose=verbose, title="test"):
        echo("OUR LINE")
        print("LIBRARY PRINT")
        early.warning("EARLY HANDLER WARNING")
        late = logging.getLogger("late")
        late.addHandler(logging.StreamHandler())  # made inside the block, like a library imported lazily
        late.warning("LATE HANDLER WARNING")
        logging.getLogger("ray.data").warning("NO HANDLER WARNING")
        warnings.warn("PYTHON WARNING")
        os.write(2, b"C LEVEL STDERR\\n")
        os.write(1, b"C LEVEL STDOUT\\n")
        subprocess.run([sys.executable, "-c", "print('CHILD PRINT')"], check=True)
        for _ in tqdm(range(3), desc="LIBRARY BAR"):
            pass
        for _ in progress_bar(range(3), desc="OUR BAR"):
            pass
    print("AFTER THE BLOCK")
    """
)
LIBRARY = (
    "LIBRARY PRINT",
    "EARLY HANDLER WARNING",
    "LATE HANDLER WARNING",
    "NO HANDLER WARNING",
    "PYTHON WARNING",
    "C LEVEL STDERR",
    "C LEVEL STDOUT",
    "CHILD PRINT",
    "LIBRARY BAR",
)


def _run(tmp_path, mode: str = "plain") -> tuple[subprocess.CompletedProcess, str | None]:
    log = tmp_path / "out" / "recap.log"
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(log), mode], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return result, log.read_text() if log.exists() else None


def test_library_output_goes_to_the_log_and_ours_to_the_terminal(tmp_path):
    result, logged = _run(tmp_path)
    terminal = result.stdout + result.stderr
    assert "OUR LINE" in result.stdout and "AFTER THE BLOCK" in result.stdout and "OUR BAR" in result.stderr
    for line in LIBRARY:
        assert line in logged and line not in terminal, line
    assert "OUR LINE" not in logged and "OUR BAR" not in logged
    assert logged.startswith("==== ") and " test ====" in logged.splitlines()[0]


def test_quiet_drops_our_bars_but_not_our_lines(tmp_path):
    result, logged = _run(tmp_path, "quiet")
    assert "OUR LINE" in result.stdout and "OUR BAR" not in result.stderr
    assert "LIBRARY BAR" in logged


def test_verbose_shows_everything_and_writes_no_log(tmp_path):
    result, logged = _run(tmp_path, "verbose")
    terminal = result.stdout + result.stderr
    assert logged is None
    for line in ("OUR LINE", "OUR BAR", *LIBRARY):
        assert line in terminal, line


def test_a_command_whose_libraries_say_nothing_leaves_no_log_and_no_folder(tmp_path):
    log = tmp_path / "made" / "for" / "recap.log"
    with command_console(log, title="silent") as console:
        echo("ours only")
        assert console.log == log and log.exists()
    assert not (tmp_path / "made").exists()


def test_an_earlier_log_keeps_its_runs_and_gets_a_header_per_command(tmp_path):
    log = tmp_path / "recap.log"
    log.write_text("==== earlier ====\nan earlier line\n")
    with command_console(log, title="now"):
        print("a library line")
    with command_console(log, title="silent"):
        pass
    lines = log.read_text().splitlines()
    assert lines[:2] == ["==== earlier ====", "an earlier line"]
    assert lines[2].endswith(" now ====") and lines[3] == "a library line" and len(lines) == 4


def test_our_lines_reach_pytests_capture_in_process(tmp_path, capsys):
    """Called in-process (as the CLI tests call `main`), our lines go to whatever sys.stdout was, not to fd 1."""
    with command_console(tmp_path / "recap.log", title="in process") as console:
        echo("captured line")
        print("library line")
        for _ in progress_bar(range(2), desc="captured bar"):
            pass
        assert console.logged_lines() == ["library line"]
    captured = capsys.readouterr()
    assert "captured line" in captured.out and "library line" not in captured.out + captured.err
    assert "captured bar" in captured.err
