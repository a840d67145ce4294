"""Run a pipeline in this process, shard by shard: for tests, laptops and debugging."""

from __future__ import annotations

import time
from collections import defaultdict

from recap.pipeline.pipeline import Pipeline
from recap.pipeline.progress import RowProgress
from recap.pipeline.stage import Batch, Stage, batch_length
from recap.stages.webdataset_reader import read_shard


def _in_chunks(stage: Stage, batch: Batch) -> Batch:
    size = stage.batch_size or batch_length(batch)
    outputs = [stage({k: v[i : i + size] for k, v in batch.items()}) for i in range(0, batch_length(batch), size)]
    return {key: _concat([out[key] for out in outputs]) for key in outputs[0]}


def _concat(parts):
    import numpy as np

    return parts[0] if len(parts) == 1 else np.concatenate(parts)


class LocalExecutor:
    """Same stages, same writer, no cluster. `run` returns per-stage seconds and row counts."""

    def run(self, pipeline: Pipeline, *, progress: bool = True) -> dict:
        seconds: dict[str, float] = defaultdict(float)
        for stage in pipeline.stages:
            started = time.perf_counter()
            stage.setup()
            seconds[f"{stage.name}_setup"] += time.perf_counter() - started
        with RowProgress(len(pipeline.shards), enabled=progress) as bar:
            for shard in pipeline.shards:
                started = time.perf_counter()
                batches = list(
                    read_shard(
                        shard, rows_per_batch=pipeline.rows_per_read_batch, storage_options=pipeline.storage_options
                    )
                )
                seconds["read"] += time.perf_counter() - started
                for batch in batches:
                    for stage in pipeline.stages:
                        started = time.perf_counter()
                        batch = _in_chunks(stage, batch)
                        seconds[stage.name] += time.perf_counter() - started
                    started = time.perf_counter()
                    pipeline.writer.add(batch)
                    seconds["write"] += time.perf_counter() - started
                    bar.update(batch)
        return {"rows": bar.rows, "stage_seconds": {k: round(v, 3) for k, v in seconds.items()}}
