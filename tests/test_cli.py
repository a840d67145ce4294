"""The `recap` command: its shape (help, version, the commands in pipeline order, small files), and one-line
errors for bad input."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import recap.cli
from recap.cli import build_parser, main

PIPELINE_ORDER = (
    "world", "download", "train-captioner", "caption", "score", "curate", "train-clip", "tune-clip", "train-t2i",
    "distill-t2i", "sample", "eval-captions", "eval-retrieval", "eval-t2i", "eval-reasoning", "clip-sweep",
    "t2i-sweep", "demo",
)  # fmt: skip


def _commands() -> list[str]:
    return list(build_parser()._subparsers._group_actions[0].choices)


def test_the_commands_are_the_pipeline_in_order():
    assert tuple(_commands()) == PIPELINE_ORDER


@pytest.mark.parametrize("command", PIPELINE_ORDER)
def test_every_subcommand_has_help_with_the_console_options(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert f"usage: recap {command}" in text and "options:" in text and len(text.splitlines()) > 8
    assert "--quiet" in text and "--verbose" in text


def test_recap_help_lists_each_command_on_one_line_in_pipeline_order():
    env = {**os.environ, "COLUMNS": "80"}
    recap = os.path.join(os.path.dirname(sys.executable), "recap")
    text = subprocess.run([recap, "--help"], capture_output=True, text=True, timeout=120, env=env).stdout
    listed = re.findall(r"^    (\S+) +\S.*$", text, re.MULTILINE)
    assert tuple(listed) == PIPELINE_ORDER
    assert all(len(line) <= 80 for line in text.splitlines())


def test_version_names_the_release_and_the_commit(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    text = capsys.readouterr().out.strip()
    assert re.fullmatch(rf"recap {re.escape(recap.__version__)}( \(git [0-9a-f]{{12}}\))?", text), text
    if (Path(recap.cli.__file__).parents[2] / ".git").exists():
        assert "(git " in text


def test_no_cli_file_is_over_250_lines():
    for path in Path(recap.cli.__file__).parent.glob("*.py"):
        assert len(path.read_text().splitlines()) <= 250, path.name


def test_console_entry_point_runs():
    recap = os.path.join(os.path.dirname(sys.executable), "recap")
    result = subprocess.run([recap, "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert "world" in result.stdout and "download" in result.stdout
    result = subprocess.run([recap, "--version"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("recap ")


def _error(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


def test_missing_metadata_folder(tmp_path, capsys):
    line = _error(["download", "--metadata", str(tmp_path / "nope"), "--out", str(tmp_path / "o")], capsys)
    assert line.startswith("recap download: error:") and "does not exist" in line and "nope" in line


def test_wrong_metadata_columns(tmp_path, capsys):
    folder = tmp_path / "meta"
    folder.mkdir()
    pq.write_table(pa.table({"uid": ["a"], "image_url": ["u"], "text": ["t"]}), folder / "00000.parquet")
    line = _error(["download", "--metadata", str(folder), "--out", str(tmp_path / "o")], capsys)
    assert "00000.parquet" in line and "'url'" in line and "--url-col" in line


def test_unwritable_output(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    line = _error(["world", "--out", str(blocker / "world"), "--size", "5"], capsys)
    # Root ignores permission bits, so the portable unwritable case is a path under a regular file.
    assert "is not a folder" in line and str(blocker) in line


def test_missing_world_folder(tmp_path, capsys):
    line = _error(["download", "--world", str(tmp_path / "no-world"), "--out", str(tmp_path / "o")], capsys)
    assert "is not a world folder" in line and "recap world" in line


def test_bad_world_options(tmp_path, capsys):
    line = _error(["world", "--out", str(tmp_path / "w"), "--size", "0"], capsys)
    assert "size must be >= 1" in line
    line = _error(["world", "--out", str(tmp_path / "w"), "--alt-text-mix", "poems=1"], capsys)
    assert "unknown alt-text kinds" in line


def test_world_command_prints_alt_text_quality(tmp_path, capsys):
    code = main(
        ["world", "--out", str(tmp_path / "w"), "--size", "30", "--eval-size", "5", "--sft-size", "5", "--quiet"]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "object precision" in out and "alt-text" in out and "web: 30 images" in out
