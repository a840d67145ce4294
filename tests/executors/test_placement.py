"""The Ray executor refuses, with a message, resource plans under which Ray would wait forever."""

import pytest

from recap.errors import RecapError
from recap.executors.ray_executor import check_placement
from recap.jobs.caption import CaptionJobConfig, run_caption_job


def _node(cpus, gpus=0):
    return {"CPU": cpus, "GPU": gpus, "memory": 1e9} if gpus else {"CPU": cpus, "memory": 1e9}


@pytest.mark.parametrize(
    ("nodes", "actors", "cpus", "gpus"),
    [
        ([_node(2)], 1, 0.5, 0),  # the CPU demo: one actor, a CPU and a half left
        ([_node(2)], 1, 1, 0),
        ([_node(2), _node(2)], 2, 1, 0),  # one actor per node, a CPU free on each
        ([_node(16, 8), _node(16, 8)], 16, 1, 1),  # GPU nodes: one actor per GPU
    ],
)
def test_plans_that_run(nodes, actors, cpus, gpus):
    check_placement(nodes, actors, cpus, gpus, task_cpus=1)


@pytest.mark.parametrize(
    ("nodes", "actors", "cpus", "gpus", "message"),
    [
        ([_node(2)], 2, 1, 0, "no node keeps 1 CPU free"),  # actors hold every CPU: readers starve
        ([_node(1), _node(1)], 2, 0.5, 0, "no node keeps 1 CPU free"),  # seen here: hung until killed
        ([_node(8, 1)], 2, 1, 1, "actor 2 of 2"),  # more GPU actors than GPUs
        ([_node(2)], 1, 4, 0, "does not fit"),
    ],
)
def test_plans_that_would_hang_are_refused(nodes, actors, cpus, gpus, message):
    with pytest.raises(RecapError, match=message):
        check_placement(nodes, actors, cpus, gpus, task_cpus=1)


def test_the_job_refuses_before_running(ray_cluster, job_shards, tmp_path):
    config = CaptionJobConfig(input=[str(job_shards)], output=str(tmp_path / "out"), actors=2, cpus_per_actor=1.0)
    with pytest.raises(RecapError, match="would hang"):
        run_caption_job(config, progress=False)
    assert not list((tmp_path / "out").glob("*.parquet"))


@pytest.mark.parametrize("name", ["tiny-cpu.json", "llava-llama3-8b-vllm.json"])
def test_example_job_configs_parse(name, tmp_path):
    import argparse
    from pathlib import Path

    from recap.jobs.caption import add_job_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_job_arguments(parser)
    path = Path(__file__).resolve().parents[2] / "pipelines" / "configs" / name
    args = parser.parse_args(["--config", str(path), "--input", str(tmp_path), "--output", str(tmp_path / "out")])
    config = config_from_args(args)
    assert config.captioner.max_new_tokens == 128 and config.captioner.prompt == "recap-datacomp-1b"
    assert config.output == str(tmp_path / "out")
