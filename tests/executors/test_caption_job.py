"""The recaption job end to end on world shards, with the shipped tiny captioner, locally and on Ray."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from recap.errors import RecapError
from recap.jobs.caption import CaptionJobConfig, run_caption_job
from recap.world.generate import load_scenes
from recap.world.quality import score_captions

from ..shard_factory import bad_input_shard, reshard, tar_keys

PIPELINE = Path(__file__).resolve().parents[2] / "pipelines" / "recap_datacomp.py"


def _rows(output):
    return ds.dataset(str(output), format="parquet").to_table().to_pylist()


def test_local_executor_end_to_end(small_world, world_download, tmp_path):
    shards, _ = world_download
    config = CaptionJobConfig(
        input=[str(shards)], output=str(tmp_path / "captions"), executor="local", captioner={"batch_size": 32}
    )
    summary = run_caption_job(config, progress=False)
    rows = _rows(tmp_path / "captions")
    assert {(Path(r["source_shard"]).stem, r["key"]) for r in rows} == tar_keys(shards)
    assert len(rows) == summary["rows"] == summary["rows_ok"] + summary["rows_failed"]
    tokens = sum(r["output_tokens"] or 0 for r in rows)
    assert summary["output_tokens_per_s"] * summary["seconds"] == pytest.approx(tokens, rel=0.01)
    scenes = load_scenes(small_world, "web")
    quality = score_captions([r["re_caption"] for r in rows], [scenes[r["uid"]] for r in rows]).summary()
    assert quality["object_precision"] > 0.9 and quality["object_recall"] > 0.9
    manifest = json.loads((tmp_path / "captions" / "_manifests" / f"{summary['run_id']}.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["captioner"]["prompt_text"].startswith("Please generate a detailed caption")
    assert manifest["captioner"]["generation"]["max_new_tokens"] == 128
    with pytest.raises(RecapError, match="--resume"):
        run_caption_job(config, progress=False)
    again = run_caption_job(CaptionJobConfig(**{**config.__dict__, "resume": True}), progress=False)
    assert again["shards_written"] == 0 and again["shards_skipped"] == summary["shards_written"]


def test_bad_input_matrix_on_ray(ray_cluster, tmp_path):
    expected = bad_input_shard(tmp_path / "00000.tar")
    config = CaptionJobConfig(
        input=[str(tmp_path / "00000.tar")],
        output=str(tmp_path / "out"),
        executor="ray",
        cpus_per_actor=0.5,
        decode_cpus=0.5,
        max_pixels=50_000,
        captioner={"batch_size": 8},
    )
    summary = run_caption_job(config, progress=False)
    rows = {row["key"]: row for row in pq.read_table(tmp_path / "out" / "00000.parquet").to_pylist()}
    assert set(rows) == set(expected)
    for key, (name, error) in expected.items():
        if error is None:
            assert rows[key]["status"] == "ok" and rows[key]["re_caption"], name
        else:
            assert rows[key]["status"] == "bad_input" and error in rows[key]["error"], name
    assert summary["rows"] == len(expected) == summary["rows_ok"] + summary["rows_failed"]
    assert summary["rows_failed"] >= 10
    # time per stage: worker seconds summed over Ray's workers, plus the wall time
    assert {"read", "decode", "caption", "wall"} <= set(summary["stage_seconds"])
    assert all(seconds > 0 for seconds in summary["stage_seconds"].values())


def _driver_arguments(shards, output, address):
    return [
        "--input",
        str(shards),
        "--output",
        str(output),
        "--executor",
        "ray",
        "--ray-address",
        address,
        "--cpus-per-actor",
        "0.5",
        "--batch-size",
        "8",
        "--resume",
        "--quiet",
    ]


# The real driver (pipelines/recap_datacomp.py), SIGKILLed by itself at a chosen point of its 4th shard: right
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


@pytest.mark.parametrize("point", ["after-marker", "before-move"])
def test_resume_after_sigkill_gives_every_key_once(ray_cluster, world_download, tmp_path, point):
    source, _ = world_download
    shards = tmp_path / "shards"
    total = reshard(source, shards, samples_per_shard=12)
    output = tmp_path / "captions"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    arguments = _driver_arguments(shards, output, ray_cluster)
    killed = subprocess.run(
        [sys.executable, "-c", DYING_DRIVER, point, str(PIPELINE), *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert len(list((output / "_done").glob("*.json"))) == 3 and len(list(output.glob("*.parquet"))) == 3
    assert bool(list(output.glob(".*.parquet.tmp-*"))) == (point == "before-move")  # never visible as a table

    result = subprocess.run(
        [sys.executable, str(PIPELINE), *arguments], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["shards_skipped"] == 3 and summary["shards_written"] == total - 3
    assert not list(output.glob(".*"))  # the stale temporary is gone
    rows = _rows(output)
    keys = [(Path(r["source_shard"]).stem, r["key"]) for r in rows]
    assert len(keys) == len(set(keys)) and set(keys) == tar_keys(shards)
