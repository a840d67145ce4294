"""The demo's step runner (resume, invalidation, errors) on small steps of its own, and the console split
(libraries' output to the log, our lines and progress bars to the terminal) in a real subprocess."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap

import pytest

from recap.demo.config import DemoConfig
from recap.demo.runner import run_steps
from recap.demo.steps import Step
from recap.errors import RecapError


def _steps(calls: list[str], fail: str | None = None) -> tuple[Step, ...]:
    def make(name: str):
        def run(config, results):
            calls.append(name)
            if name == fail:
                raise FileNotFoundError(f"no such file: {config.out}/missing.parquet")
            return {"value": len(results), "command": f"recap {name}"}

        return Step(name, f"doing {name}", run, lambda result: f"value {result['value']}")

    return tuple(make(name) for name in ("one", "two", "three"))


def test_a_rerun_keeps_finished_steps_and_reruns_from_the_first_unfinished(tmp_path):
    config, calls, terminal = DemoConfig(out=str(tmp_path), size=100), [], io.StringIO()
    records = run_steps(config, terminal, tmp_path / "demo.log", _steps(calls))
    assert calls == ["one", "two", "three"]
    assert [records[name]["result"]["value"] for name in ("one", "two", "three")] == [0, 1, 2]

    calls.clear()
    terminal = io.StringIO()
    run_steps(config, terminal, tmp_path / "demo.log", _steps(calls))
    assert calls == []
    assert terminal.getvalue().count("finished earlier") == 3 and "value 2" in terminal.getvalue()

    (tmp_path / "steps" / "two.json").unlink()  # as if the demo had been killed during step two
    terminal = io.StringIO()
    run_steps(config, terminal, tmp_path / "demo.log", _steps(calls))
    assert calls == ["two", "three"]  # a step that runs again makes every later one run again
    assert "[1/3] doing one: finished earlier" in terminal.getvalue()


def test_other_options_run_every_step_again(tmp_path):
    calls = []
    run_steps(DemoConfig(out=str(tmp_path), size=100), io.StringIO(), tmp_path / "log", _steps(calls))
    calls.clear()
    run_steps(DemoConfig(out=str(tmp_path), size=100, seed=1), io.StringIO(), tmp_path / "log", _steps(calls))
    assert calls == ["one", "two", "three"]


def test_a_failing_step_is_named_with_the_log_and_earlier_steps_are_kept(tmp_path):
    calls = []
    config = DemoConfig(out=str(tmp_path), size=100)
    with pytest.raises(RecapError) as error:
        run_steps(config, io.StringIO(), tmp_path / "demo.log", _steps(calls, fail="two"))
    message = str(error.value)
    assert "demo step 2 (two) failed" in message and "missing.parquet" in message
    assert str(tmp_path / "demo.log") in message and "run the same command again" in message
    assert (tmp_path / "steps" / "one.json").exists() and not (tmp_path / "steps" / "two.json").exists()
    calls.clear()
    run_steps(config, io.StringIO(), tmp_path / "demo.log", _steps(calls))
    assert calls == ["two", "three"]


def test_quick_mode_shrinks_the_world_and_training():
    quick = DemoConfig(quick=True)
    assert quick.size == 200 and quick.clip_steps < DemoConfig().clip_steps and quick.dit_prompts < 48
    with pytest.raises(ValueError, match="size"):
        DemoConfig(size=10)


CONSOLE_SCRIPT = textwrap.dedent(
    """
    import logging, os, subprocess, sys, warnings
    from pathlib import Path
    from tqdm import tqdm
    from recap.demo.console import library_output_to

    log = Path(sys.argv[1])
    with library_output_to(log) as terminal:
        terminal.write("OUR LINE\\n")
        print("LIBRARY PRINT")
        logging.getLogger("ray").warning("RAY WARNING")
        logging.getLogger("ray.data").info("RAY DATA INFO")
        logging.getLogger("transformers").warning("TRANSFORMERS WARNING")
        warnings.warn("PYTHON WARNING")
        os.write(2, b"C LEVEL STDERR\\n")
        subprocess.run([sys.executable, "-c", "print('CHILD PRINT')"], check=True)
        for _ in tqdm(range(3), desc="OUR BAR"):
            pass
    print("AFTER THE BLOCK")
    """
)


def test_library_output_goes_to_the_log_and_ours_to_the_terminal(tmp_path):
    log = tmp_path / "demo.log"
    result = subprocess.run(
        [sys.executable, "-c", CONSOLE_SCRIPT, str(log)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    terminal = result.stdout + result.stderr
    logged = log.read_text()
    assert "OUR LINE" in result.stdout and "OUR BAR" in result.stderr and "AFTER THE BLOCK" in result.stdout
    for line in ("LIBRARY PRINT", "RAY WARNING", "RAY DATA INFO", "TRANSFORMERS WARNING", "PYTHON WARNING"):
        assert line in logged and line not in terminal, line
    for line in ("C LEVEL STDERR", "CHILD PRINT"):
        assert line in logged and line not in terminal, line
