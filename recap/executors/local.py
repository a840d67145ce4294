"""Run a pipeline in this process, unit by unit: for tests, laptops and debugging."""

from __future__ import annotations

import time
from collections import defaultdict

from recap.pipeline.pipeline import Pipeline
from recap.pipeline.progress import RowProgress
from recap.pipeline.stage import Batch, Stage, apply_stage, batch_length, concat_batches, slice_batch


def _in_chunks(stage: Stage, batch: Batch) -> Batch:
    rows = batch_length(batch)
    size = stage.batch_size or rows
    return concat_batches([apply_stage(stage, slice_batch(batch, i, i + size)) for i in range(0, rows, size)])


class LocalExecutor:
    """Same stages, same sink, no cluster. `run` returns per-stage seconds and the rows that reached the sink."""

    def run(self, pipeline: Pipeline, *, progress: bool = True, desc: str = "rows") -> dict:
        seconds: dict[str, float] = defaultdict(float)
        source, sink = pipeline.source, pipeline.sink
        for stage in pipeline.transforms:
            started = time.perf_counter()
            stage.setup()
            seconds[f"{stage.name}_setup"] += time.perf_counter() - started
        with RowProgress(len(pipeline.pending), source.unit_columns, enabled=progress, desc=desc) as bar:
            for unit in pipeline.pending:
                started = time.perf_counter()
                batches = list(source.read(unit))
                seconds[source.name] += time.perf_counter() - started
                for batch in batches:
                    for stage in pipeline.transforms:
                        started = time.perf_counter()
                        batch = _in_chunks(stage, batch)
                        seconds[stage.name] += time.perf_counter() - started
                    started = time.perf_counter()
                    sink.write(batch)
                    seconds[sink.name] += time.perf_counter() - started
                    bar.update(batch)
        return {"rows": bar.rows, "stage_seconds": {k: round(v, 3) for k, v in seconds.items()}}
