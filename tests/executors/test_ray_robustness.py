"""The Ray executor when captioner actors die or hang: the job recovers, or ends with a message, never hangs."""

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from recap.executors.ray_executor import BATCHES_PER_ACTOR_BLOCK, RayExecutor
from recap.models.assets import shipped_captioner
from recap.models.captioner import CaptionerConfig
from recap.pipeline.pipeline import Pipeline
from recap.pipeline.stage import Resources, batch_length
from recap.stages.caption import CaptionImages
from recap.stages.caption_table_sink import CaptionTableSink
from recap.stages.decode import DecodeImages
from recap.stages.webdataset_reader import WebDatasetSource

HALF_CPU = Resources(cpus=0.5)

REPOSITORY = Path(__file__).resolve().parents[2]


@dataclass(kw_only=True)
class DiesOnce(CaptionImages):
    """The real captioner in an actor process that crashes (as on a GPU fault or OOM kill) on its first batch."""

    flag: str = ""

    def __call__(self, batch):
        if not os.path.exists(self.flag):
            Path(self.flag).touch()
            os._exit(1)
        return super().__call__(batch)


@dataclass(kw_only=True)
class Hangs(CaptionImages):
    """The real captioner in an actor that stops responding (a wedged driver, a deadlocked library)."""

    def __call__(self, batch):
        time.sleep(3600)


def _pipeline(shards, output, caption_stage, sink_class=CaptionTableSink):
    sink = sink_class(output=str(output), run_id="test", captioner_model="tiny", prompt_id="recap-datacomp-1b")
    decode = DecodeImages(image_size=64).with_(resources=HALF_CPU)
    return Pipeline([WebDatasetSource(inputs=[str(shards)]), decode, caption_stage, sink])


def _caption_stage(cls, **options):
    config = CaptionerConfig(model=str(shipped_captioner()), batch_size=8, max_new_tokens=64)
    return cls(captioner=config, **options).with_(resources=HALF_CPU)


def test_an_actor_that_dies_is_restarted_and_its_batch_retried(ray_cluster, job_shards, tmp_path):
    pipeline = _pipeline(job_shards, tmp_path / "out", _caption_stage(DiesOnce, flag=str(tmp_path / "died")))
    result = RayExecutor(actors=1, stall_timeout_s=120).run(pipeline, progress=False)
    assert (tmp_path / "died").exists(), "the actor should have crashed once"
    assert result["rows"] == 60
    rows = [row for path in sorted((tmp_path / "out").glob("*.parquet")) for row in pq.read_table(path).to_pylist()]
    assert len(rows) == 60 and len({(r["source_shard"], r["key"]) for r in rows}) == 60
    assert sum(r["status"] == "ok" for r in rows) >= 50 and all(r["re_caption"] for r in rows if r["status"] == "ok")


HUNG_DRIVER = """
import sys
from tests.executors.test_ray_robustness import Hangs, _caption_stage, _pipeline
from recap.errors import RecapError
from recap.executors.ray_executor import RayExecutor

pipeline = _pipeline(sys.argv[1], sys.argv[2], _caption_stage(Hangs))
try:
    RayExecutor(address=sys.argv[3], actors=1, stall_timeout_s=15).run(pipeline, progress=False)
except RecapError as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)
"""


def test_a_hung_actor_ends_the_job_with_a_message(ray_cluster, job_shards, tmp_path):
    import ray

    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", HUNG_DRIVER, str(job_shards), str(tmp_path / "out"), ray_cluster],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "no row finished for 15 s" in result.stderr and "--resume" in result.stderr
    assert time.monotonic() - started < 150
    assert not list((tmp_path / "out").glob("*.parquet"))
    # The driver's exit releases the stuck actor: the session's cluster gets its CPUs back.
    deadline = time.monotonic() + 60
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ray.available_resources().get("CPU", 0) == 2


@dataclass(kw_only=True)
class _ArrivalLog(CaptionTableSink):
    """The real sink, noting how many rows reach the driver at a time."""

    def __post_init__(self):
        super().__post_init__()
        self.arrivals = []

    def write(self, batch):
        self.arrivals.append(batch_length(batch))
        return super().write(batch)


def test_rows_reach_the_driver_a_few_batches_at_a_time(ray_cluster, job_shards, tmp_path):
    """Not a whole read block (a shard here; up to 128 MiB of images in general) at once: the progress bar and
    the writer see rows as the captioner finishes them."""
    config = CaptionerConfig(model=str(shipped_captioner()), batch_size=2, max_new_tokens=48)
    caption = CaptionImages(captioner=config).with_(resources=HALF_CPU)
    pipeline = _pipeline(job_shards, tmp_path / "out", caption, sink_class=_ArrivalLog)  # 3 shards of 20 samples
    writer = pipeline.sink
    result = RayExecutor(actors=1, stall_timeout_s=120).run(pipeline, progress=False)
    assert result["rows"] == sum(writer.arrivals) == 60
    assert max(writer.arrivals) <= BATCHES_PER_ACTOR_BLOCK * 2 < 20
