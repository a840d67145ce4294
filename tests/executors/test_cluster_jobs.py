"""The recaption job on a real `ray start` cluster of two nodes: through `ray job submit`, and spread over both."""

import json
import subprocess
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from ..ray_nodes import BIN, LocalRayCluster, cluster_env
from ..shard_factory import tar_keys

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    """A head (3 CPUs, dashboard) and a second node (3 CPUs) joined with `ray start --address`."""
    cluster = LocalRayCluster(tmp_path_factory.mktemp("ray-nodes"))
    try:
        cluster.start_head(num_cpus=3)
        cluster.wait_for(1)
        cluster.add_worker(num_cpus=3, resources={"second_node": 1})
        cluster.wait_for(2)
        yield cluster
    finally:
        cluster.stop()


def _job_arguments(shards, output, *extra):
    common = ["--output", str(output), "--stall-timeout", "120", "--quiet"]
    return ["pipelines/recap_datacomp.py", "--input", str(shards), *common, *extra]


def _keys(output):
    rows = ds.dataset(str(output), format="parquet").to_table(columns=["source_shard", "key", "status"]).to_pylist()
    return rows, {(Path(r["source_shard"]).stem, r["key"]) for r in rows}


def test_the_job_spreads_over_two_nodes(two_nodes, job_shards, tmp_path):
    output = tmp_path / "captions"
    # 2-CPU actors on 3-CPU nodes: no node can hold both, so the pool must use both nodes.
    arguments = ["--ray-address", two_nodes.address, "--actors", "2", "--cpus-per-actor", "2", "--decode-cpus", "0.5"]
    result = subprocess.run(
        ["python", *_job_arguments(job_shards, output, *arguments)],
        cwd=REPOSITORY,
        env=cluster_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    rows, keys = _keys(output)
    assert len(rows) == len(keys) and keys == tar_keys(job_shards)
    listing = subprocess.run(
        [str(BIN / "ray"), "list", "actors", "--address", two_nodes.dashboard, "--detail", "--format", "json"],
        env=cluster_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listing.returncode == 0, listing.stderr[-2000:]
    # This test runs first on the cluster, so every captioner actor listed is this job's; an actor the pool
    # asked for but released before placement has no node.
    actors = [a for a in json.loads(listing.stdout) if "MapWorker(MapBatches(_StageActor" in a["class_name"]]
    nodes = {actor["node_id"] for actor in actors if actor["node_id"]}
    assert len(nodes) == 2, [(a["class_name"], a["node_id"]) for a in actors]


def test_ray_job_submit_runs_the_pipeline(two_nodes, job_shards, tmp_path):
    output = tmp_path / "captions"
    command = [
        str(BIN / "ray"),
        "job",
        "submit",
        "--address",
        two_nodes.dashboard,
        "--working-dir",
        ".",
        "--",
        "python",
        *_job_arguments(job_shards, output, "--cpus-per-actor", "0.5", "--batch-size", "8"),
    ]
    result = subprocess.run(command, cwd=REPOSITORY, env=cluster_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "succeeded" in result.stdout
    rows, keys = _keys(output)
    assert len(rows) == len(keys) and keys == tar_keys(job_shards)
    summary = json.loads((output / "_run_summary.json").read_text())
    assert summary["rows"] == len(rows) == summary["rows_ok"] + summary["rows_failed"]
    assert summary["rows_ok"] == sum(r["status"] == "ok" for r in rows) > 0
