"""Every command kind as a new user runs it, in a subprocess: the README's ingest -> caption -> score -> curate
chain, a trainer and an evaluator print only what our code wrote (no line in Ray's, Ray Data's, the core
worker's or img2dataset's formats, no other library's progress bar), the logs hold the libraries' lines, and a
failure prints our one-line error with the log's path and the log lines that explain it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

RECAP = os.path.join(os.path.dirname(sys.executable), "recap")
NOISE = {
    "Ray / Ray Data logger": re.compile(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+\s+(DEBUG|INFO|WARNING|ERROR)\s+\S+:\d+ -- "
    ),
    "core worker": re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [DIWEF] \d+ \d+\] \S+\.cc:\d+"),
    "Ray worker output": re.compile(r"^\(\S+.* pid=\d+(, ip=\S+)?\)"),
    "Ray notices": re.compile(r"Token authentication|Started a local Ray|Connecting to existing Ray|ray-data"),
    "img2dataset": re.compile(
        r"Downloading starting now|Starting the downloading|Sharding file number|File sharded in|"
        r"^(worker|total)\s+- success"
    ),
}
OUR_BARS = (
    "world ",
    "downloading",
    "train-",
    "captioning",
    "scoring",
    "release",
    "concepts",
    "balance",
    "training",
    "evaluating",
    "loading",
)


def _recap(*arguments: str, cwd: Path, ok: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_ALBUMENTATIONS_UPDATE": "1", "RAY_AUTH_MODE": "token"}
    env.pop("RAY_ADDRESS", None)
    result = subprocess.run([RECAP, *arguments], capture_output=True, text=True, timeout=600, cwd=cwd, env=env)
    if ok:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def _foreign_lines(result: subprocess.CompletedProcess) -> list[str]:
    """Lines (and progress-bar frames) on the terminal that our code did not write."""
    foreign = []
    for line in re.split(r"[\r\n]", result.stdout + result.stderr):
        if any(pattern.search(line) for pattern in NOISE.values()):
            foreign.append(line)
        elif re.search(r"\d+%\|", line) and not line.startswith(OUR_BARS) and "p0" not in line:
            foreign.append(line)  # a progress bar that is not ours (img2dataset's, transformers' weight loading)
    return foreign


@pytest.fixture(scope="module")
def readme_chain(tmp_path_factory):
    """The README's commands, run one after another in a fresh folder as a new user would (a fresh local Ray
    for each job, with Ray's token authentication on, as a new machine has it)."""
    folder = tmp_path_factory.mktemp("newcomer")
    results = {
        "world": _recap("world", "--out", "runs/world", "--size", "80", "--eval-size", "50", cwd=folder),
        "download": _recap("download", "--world", "runs/world", "--out", "runs/shards", cwd=folder),
        "caption": _recap(
            "caption", "--input", "runs/shards", "--output", "runs/captions", "--quiet", "--ray-address", "local",
            cwd=folder,
        ),
        "score": _recap(
            "score", "--input", "runs/shards", "--captions", "runs/captions", "--output", "runs/scored",
            "--ray-address", "local", cwd=folder,
        ),
        "curate": _recap(
            "curate", "--scored", "runs/scored", "--out", "runs/release", "--preset", "datacomp-clip-top30",
            "--world", "runs/world", cwd=folder,
        ),
    }  # fmt: skip
    return folder, results


@pytest.mark.slow
def test_the_readme_chain_prints_only_our_lines(readme_chain):
    _, results = readme_chain
    for command, result in results.items():
        assert _foreign_lines(result) == [], command
    assert "success rate" in results["download"].stdout
    assert '"rows_ok"' in results["caption"].stdout and "kept" in results["curate"].stdout
    assert "captioning" not in results["caption"].stderr  # --quiet: no bar
    assert "scoring" in results["score"].stderr  # without it: our bar


@pytest.mark.slow
def test_the_libraries_lines_are_in_the_logs_the_summaries_name(readme_chain):
    folder, results = readme_chain
    download_log = (folder / "runs/shards/_recap.log").read_text()
    assert "Downloading starting now" in download_log and re.search(r"^(worker|total)\s+- success", download_log, re.M)
    for command, output in (("caption", "captions"), ("score", "scored")):
        log = (folder / f"runs/{output}/_recap.log").read_text()
        assert "Started a local Ray instance" in log and "streaming_executor" in log, command
        assert f"are in runs/{output}/_recap.log" in results[command].stdout, command
    assert "are in runs/shards/_recap.log" in results["download"].stdout
    # A command whose libraries said nothing leaves no log behind, nor a line about one.
    assert not (folder / "runs/world/recap.log").exists() and "libraries' messages" not in results["world"].stdout


@pytest.mark.slow
def test_a_failed_job_prints_one_error_line_the_log_and_its_last_lines(readme_chain):
    folder, _ = readme_chain
    (folder / "not-a-model").mkdir()
    (folder / "not-a-model" / "config.json").write_text("{}")
    result = _recap(
        "caption", "--input", "runs/shards", "--output", "runs/bad", "--captioner", "not-a-model", "--image-size",
        "64", "--ray-address", "local", "--quiet", cwd=folder, ok=False,
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith("recap caption: error: the Ray job failed:") and "not-a-model" in lines[0]
    assert lines[1] == "  the log runs/bad/_recap.log ends with:"
    assert all(line.startswith("  | ") for line in lines[2:]) and 2 < len(lines) <= 14
    assert any("Unrecognized processing class" in line for line in lines[2:])
    assert _foreign_lines(result) == []


@pytest.mark.slow
def test_a_trainer_and_an_evaluator_print_only_our_lines(readme_chain):
    folder, _ = readme_chain
    train = _recap(
        "train-clip", "--train", "runs/world/web", "--out", "runs/clip", "--steps", "4", "--batch-size", "16",
        "--checkpoint-every", "4", "--warmup-steps", "1", cwd=folder,
    )  # fmt: skip
    assert "model saved to" in train.stdout and _foreign_lines(train) == []
    evaluation = _recap(
        "eval-retrieval", "--model", "runs/clip/model", "--world", "runs/world/eval", "--out", "runs/retrieval",
        cwd=folder,
    )  # fmt: skip
    assert "mean_recall@1" in evaluation.stdout and _foreign_lines(evaluation) == []


BUG = """
import sys
from recap.cli import main
from recap.training.clip_training import ClipTrainer

def buggy(self):
    print("a library line before the bug")
    return 1 / 0

ClipTrainer.run = buggy
sys.exit(main(["train-clip", "--train", "anything", "--out", sys.argv[1]]))
"""


def test_an_unexpected_error_is_one_line_with_the_traceback_in_the_log(tmp_path):
    """A bug (not a RecapError) still ends in our one-line error, exit status 1; its traceback is in the log."""
    result = subprocess.run([sys.executable, "-c", BUG, str(tmp_path / "run")], capture_output=True, text=True)
    lines = result.stderr.splitlines()
    assert result.returncode == 1 and result.stdout == ""
    assert (
        lines[0]
        == "recap train-clip: error: ZeroDivisionError: division by zero (an unexpected error: please report it)"
    )
    assert lines[1] == f"  the log {tmp_path / 'run' / 'recap.log'} ends with:"
    assert lines[2] == "  | a library line before the bug" and lines[-1] == "  | ZeroDivisionError: division by zero"
    assert "Traceback" in (tmp_path / "run" / "recap.log").read_text()
