"""The demo's step runner (resume, invalidation, errors) on small steps of its own."""

from __future__ import annotations

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
    config, calls, terminal = DemoConfig(out=str(tmp_path), size=100), [], []
    records = run_steps(config, terminal.append, tmp_path / "demo.log", _steps(calls))
    assert calls == ["one", "two", "three"]
    assert [records[name]["result"]["value"] for name in ("one", "two", "three")] == [0, 1, 2]

    calls.clear()
    terminal = []
    run_steps(config, terminal.append, tmp_path / "demo.log", _steps(calls))
    assert calls == []
    assert "\n".join(terminal).count("finished earlier") == 3 and "value 2" in "\n".join(terminal)

    (tmp_path / "steps" / "two.json").unlink()  # as if the demo had been killed during step two
    terminal = []
    run_steps(config, terminal.append, tmp_path / "demo.log", _steps(calls))
    assert calls == ["two", "three"]  # a step that runs again makes every later one run again
    assert "[1/3] doing one: finished earlier" in "\n".join(terminal)


def test_other_options_run_every_step_again(tmp_path):
    calls = []
    run_steps(DemoConfig(out=str(tmp_path), size=100), print, tmp_path / "log", _steps(calls))
    calls.clear()
    run_steps(DemoConfig(out=str(tmp_path), size=100, seed=1), print, tmp_path / "log", _steps(calls))
    assert calls == ["one", "two", "three"]


def test_a_failing_step_is_named_with_the_log_and_earlier_steps_are_kept(tmp_path):
    calls = []
    config = DemoConfig(out=str(tmp_path), size=100)
    with pytest.raises(RecapError) as error:
        run_steps(config, print, tmp_path / "demo.log", _steps(calls, fail="two"))
    message = str(error.value)
    assert "demo step 2 (two) failed" in message and "missing.parquet" in message
    assert str(tmp_path / "demo.log") in message and "run the same command again" in message
    assert (tmp_path / "steps" / "one.json").exists() and not (tmp_path / "steps" / "two.json").exists()
    calls.clear()
    run_steps(config, print, tmp_path / "demo.log", _steps(calls))
    assert calls == ["two", "three"]


def test_quick_mode_shrinks_the_world_and_training():
    quick = DemoConfig(quick=True)
    assert quick.size == 200 and quick.clip_steps < DemoConfig().clip_steps and quick.dit_prompts < 48
    with pytest.raises(ValueError, match="size"):
        DemoConfig(size=10)
