"""Runs at several shares of original captions p, the same data, steps and seed for each: what the CLIP and the
DiT sweeps share. Each p is a trainer run folder OUT/p-0.80 (rerunning resumes it) with a result file beside
it; a p whose result was stored for the same training config is skipped, and the others run `parallel` at a
time, each in its own process with its share of the cores."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, replace
from multiprocessing import get_context
from pathlib import Path

from recap.console import echo, progress_bar


def check_p_values(p_values: tuple[float, ...], parallel: int) -> None:
    if parallel < 1:
        raise ValueError(f"parallel must be >= 1, got {parallel}")
    if not p_values or len(set(p_values)) != len(p_values):
        raise ValueError(f"p_values must be distinct values in [0, 1], got {p_values}")
    for p in p_values:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p_values must be in [0, 1], got {p}")


def run_config(training, out: Path, p: float):
    """The run of one p: the shared recipe with its own folder and p."""
    return replace(training, out=str(out / f"p-{p:.2f}"), p_original=p)


def identity(training_config: dict) -> dict:
    """What makes two runs the same run: the training config without its thread count (which changes speed only)."""
    return {key: value for key, value in training_config.items() if key != "threads"}


def finished(run, result_file: str) -> dict | None:
    """The stored result of a run with exactly this training config, or None."""
    path = Path(run.out) / result_file
    if not path.exists():
        return None
    result = json.loads(path.read_text())
    return result if identity(result.get("training_config", {})) == identity(asdict(run)) else None


def threads_each(training, parallel: int):
    """`training` with the cores split between `parallel` runs, unless it names a thread count."""
    if parallel > 1 and not training.threads:
        return replace(training, threads=max(1, (os.cpu_count() or 1) // parallel))
    return training


def run_each_p(
    function: Callable[..., dict],
    training,
    out: Path,
    p_values: tuple[float, ...],
    *,
    image_size: int,
    result_file: str,
    parallel: int = 1,
    progress: bool = True,
    desc: str = "sweep",
    extra_args: tuple = (),
) -> tuple[object, dict[float, dict]]:
    """`function(run, *extra_args)` for every p not finished earlier; returns the shared recipe as run (a world
    split made into shards + table once, in OUT/data, at `image_size`; the cores split between parallel runs)
    and p -> result (finished ones read back). `function` must store its result, with `training_config`, in the
    run folder's `result_file`, and be importable by name (the parallel runs are spawned processes)."""
    from recap.training.trainer import world_split_as_shards

    training = threads_each(world_split_as_shards(training, out / "data", image_size), parallel)
    results: dict[float, dict] = {}
    todo = []
    for p in p_values:
        run = run_config(training, out, p)
        stored = finished(run, result_file)
        if stored is not None:
            results[p] = stored
            if progress:
                echo(f"p={p:.2f}: finished earlier ({Path(run.out) / result_file}), skipped")
        else:
            todo.append(run)
    bar = progress_bar(total=len(todo), desc=desc, unit="p", disable=not progress)
    if parallel == 1:
        for run in todo:
            results[run.p_original] = function(run, *extra_args, progress=progress)
            bar.update(1)
    elif todo:
        with ProcessPoolExecutor(max_workers=parallel, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(function, run, *extra_args): run for run in todo}
            for future in as_completed(futures):
                results[futures[future].p_original] = future.result()
                bar.update(1)
    bar.close()
    return training, results
