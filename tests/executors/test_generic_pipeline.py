"""The pipeline parts are generic: a second pipeline built from them (a toy image-statistics stage and a plain
Parquet sink) runs on both executors with no change to recap.pipeline or recap.executors, the executors give
identical tables (for the caption job too), and the run summary counts what was written, not what arrived."""

import io
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from recap.executors.local import LocalExecutor
from recap.executors.ray_executor import RayExecutor
from recap.jobs.caption import CaptionJobConfig, run_caption_job
from recap.jobs.runner import run_job
from recap.pipeline.pipeline import Pipeline
from recap.pipeline.stage import Resources, Stage, object_array
from recap.stages.parquet_sink import ParquetShardSink
from recap.stages.webdataset_reader import WebDatasetSource

STATISTICS = pa.schema(
    [
        ("width", pa.int64()),
        ("height", pa.int64()),
        ("mean_colour", pa.list_(pa.float64())),
        ("status", pa.string()),
    ]
)
TABLE = pa.schema([("key", pa.string()), ("source_shard", pa.string()), *STATISTICS])


@dataclass(kw_only=True)
class ImageStatistics(Stage):
    """Width, height and mean RGB of each sample's image; `bad_input` when there is none to open."""

    name: ClassVar[str] = "image_statistics"
    resources: ClassVar[Resources] = Resources(cpus=0.5)
    batch_size: ClassVar[int | None] = 8
    input_columns: ClassVar[tuple[str, ...]] = ("image",)
    added_schema: ClassVar[pa.Schema] = STATISTICS
    dropped_columns: ClassVar[tuple[str, ...]] = ("image", "txt", "json")

    def __call__(self, batch):
        rows = []
        for data in batch["image"]:
            try:
                image = Image.open(io.BytesIO(data)).convert("RGB")
                mean = np.asarray(image, dtype=np.float64).reshape(-1, 3).mean(axis=0)
                rows.append((image.width, image.height, [round(float(v), 6) for v in mean], "ok"))
            except (TypeError, OSError):
                rows.append((None, None, None, "bad_input"))
        return {name: object_array([row[i] for row in rows]) for i, name in enumerate(STATISTICS.names)}


@dataclass(kw_only=True)
class RedeliveringSource(WebDatasetSource):
    """The real reader, delivering each shard's first batch a second time, as a retried task that had already
    handed rows downstream would."""

    def read(self, unit):
        batches = list(super().read(unit))
        yield batches[0]
        yield from batches


def _statistics_pipeline(shards, output, source_class=WebDatasetSource):
    source = source_class(inputs=[str(shards)]).with_(batch_size=8, resources=Resources(cpus=0.5))
    return Pipeline([source, ImageStatistics(), ParquetShardSink(output=str(output), schema=TABLE, run_id="toy")])


def _tables(folder):
    return {path.stem: pq.read_table(path) for path in sorted(folder.glob("*.parquet"))}


def test_a_toy_pipeline_runs_on_both_executors_with_identical_tables(ray_cluster, job_shards, tmp_path):
    local = LocalExecutor().run(_statistics_pipeline(job_shards, tmp_path / "local"), progress=False)
    ray = RayExecutor(actors=1, stall_timeout_s=120).run(
        _statistics_pipeline(job_shards, tmp_path / "ray"), progress=False
    )
    assert local["rows"] == ray["rows"] == 60
    assert {"read", "image_statistics"} <= set(ray["stage_seconds"])
    local_tables, ray_tables = _tables(tmp_path / "local"), _tables(tmp_path / "ray")
    assert list(local_tables) == ["00000", "00001", "00002"] and list(ray_tables) == list(local_tables)
    for name, table in local_tables.items():
        assert table.schema.equals(TABLE) and table.num_rows == 20
        assert table.equals(ray_tables[name]), name
    row = local_tables["00000"].to_pylist()[0]
    assert row["status"] == "ok" and row["width"] == row["height"] == 64 and len(row["mean_colour"]) == 3


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_the_summary_counts_written_rows_not_redelivered_ones(ray_cluster, job_shards, tmp_path, executor):
    pipeline = _statistics_pipeline(job_shards, tmp_path / "out", source_class=RedeliveringSource)
    runner = LocalExecutor() if executor == "local" else RayExecutor(actors=1, stall_timeout_s=120)
    summary = run_job(pipeline, runner, run_id="dup", resume=False, manifest={}, progress=False)
    assert pipeline.sink.duplicates == summary["duplicates_dropped"] == 3 * 8  # one 8-row batch again per shard
    assert summary["rows"] == 60 == summary["rows_ok"] + summary["rows_failed"]
    assert summary["rows_by_status"] == {"ok": 60}
    assert sum(table.num_rows for table in _tables(tmp_path / "out").values()) == 60


def test_the_caption_job_gives_identical_tables_on_both_executors(ray_cluster, job_shards, tmp_path):
    for executor in ("local", "ray"):
        config = CaptionJobConfig(
            input=[str(job_shards)],
            output=str(tmp_path / executor),
            executor=executor,
            cpus_per_actor=0.5,
            decode_cpus=0.5,
            captioner={"batch_size": 8, "max_new_tokens": 64},
        )
        assert run_caption_job(config, progress=False)["rows"] == 60
    local_tables, ray_tables = _tables(tmp_path / "local"), _tables(tmp_path / "ray")
    assert list(local_tables) == list(ray_tables) and len(local_tables) == 3
    for name, table in local_tables.items():
        assert table.drop_columns(["run_id"]).equals(ray_tables[name].drop_columns(["run_id"])), name
        assert sum(status == "ok" for status in table["status"].to_pylist()) >= 15
