"""Helpers for the shard jobs' crash tests: a real driver SIGKILLed at a chosen point, then rerun with --resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

# The real driver (a script under pipelines/), SIGKILLed by itself at a chosen point of its 4th shard: right
# after the 3rd shard's marker, or after the 4th table is written under its temporary name but before the move.
# Waiting from outside for a marker and then killing is a race: on a fast run every shard may be done first.
DYING_DRIVER = """
import os, runpy, signal, sys
from recap.stages.parquet_sink import ParquetShardSink

point, pipeline, arguments = sys.argv[1], sys.argv[2], sys.argv[3:]
original = ParquetShardSink._write_shard


def die(*_args, **_kwargs):
    os.kill(os.getpid(), signal.SIGKILL)


def write_shard(self, name):
    if len(self.written) == 3 and point == "before-move":
        self.fs.mv = die
    original(self, name)
    if len(self.written) == 3 and point == "after-marker":
        die()


ParquetShardSink._write_shard = write_shard
sys.argv = [pipeline, *arguments]
runpy.run_path(pipeline, run_name="__main__")
"""


def kill_then_resume(pipeline: Path, arguments: list[str], output: Path, point: str) -> dict:
    """Run `pipeline` (a script under pipelines/) with `arguments` (which include --resume), SIGKILLed by itself at
    `point` of its 4th shard; check that exactly 3 shards were finished and that no partial table is visible;
    rerun it to the end and return its summary."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    killed = subprocess.run(
        [sys.executable, "-c", DYING_DRIVER, point, str(pipeline), *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert len(list((output / "_done").glob("*.json"))) == 3 and len(list(output.glob("*.parquet"))) == 3
    assert bool(list(output.glob(".*.parquet.tmp-*"))) == (point == "before-move")  # never visible as a table
    result = subprocess.run(
        [sys.executable, str(pipeline), *arguments], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout[result.stdout.index("{") :])


# A real driver that SIGKILLs itself once `count` files match `pattern` in `folder` (shards finished), so the kill
# lands mid-run whatever the machine's speed: a watcher thread polls the folder while the script runs.
DYING_WHEN_FILES = """
import os, runpy, signal, sys, threading, time
from pathlib import Path

folder, pattern, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
pipeline, arguments = sys.argv[4], sys.argv[5:]


def watch():
    while len(list(folder.glob(pattern))) < count:
        time.sleep(0.02)
    os.kill(os.getpid(), signal.SIGKILL)


threading.Thread(target=watch, daemon=True).start()
sys.argv = [pipeline, *arguments]
runpy.run_path(pipeline, run_name="__main__")
"""


def kill_when_files(pipeline: Path, arguments: list[str], folder: Path, pattern: str, count: int, env: dict) -> str:
    """Run `pipeline` with `arguments`, SIGKILLed by itself once `count` files match `pattern` in `folder`; check it
    died that way and return its stderr. The driver runs in its own session, and what it started there (helper
    processes orphaned by the kill, such as img2dataset's logger) is killed with it. Output goes to a file, not a
    pipe: an orphan holding the pipe open would keep a reader waiting for its end."""
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", DYING_WHEN_FILES, str(folder), pattern, str(count), str(pipeline), *arguments],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            process.wait(timeout=600)
        finally:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.seek(0)
        output = log.read()
    assert process.returncode == -signal.SIGKILL, output[-3000:]
    return output
