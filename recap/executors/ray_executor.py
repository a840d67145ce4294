"""Run a pipeline with Ray Data: shards are read in tasks, CPU stages run in tasks, model stages in actor pools.

This is the only module that imports Ray. Rows stream back to the driver, which counts them in a progress
bar and hands them to the writer (caption rows are small: images are dropped by the caption stage).
A watchdog ends the job with a clear message when no row arrives for `stall_timeout_s`.
"""

from __future__ import annotations

import _thread
import threading
import time

import pyarrow as pa
from tqdm import tqdm

from recap.errors import RecapError
from recap.pipeline.pipeline import Pipeline
from recap.pipeline.stage import Stage, batch_length, to_arrow
from recap.stages.webdataset_reader import READER_SCHEMA, Shard, read_shard


def _shard_datasource(shards: list[Shard], rows_per_batch: int, storage_options: dict | None):
    """A Ray datasource with one read task per tar (a shard is the unit of reading and of resuming)."""
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    def reader(shard: Shard):
        def read():
            for batch in read_shard(shard, rows_per_batch=rows_per_batch, storage_options=storage_options):
                yield to_arrow(batch, READER_SCHEMA)

        return read

    class WebDatasetShards(Datasource):
        def estimate_inmemory_data_size(self):
            return None

        def get_read_tasks(self, parallelism, per_task_row_limit=None, data_context=None):
            return [
                ReadTask(
                    reader(shard),
                    BlockMetadata(num_rows=None, size_bytes=None, input_files=[shard.uri], exec_stats=None),
                )
                for shard in shards
            ]

    return WebDatasetShards()


class _TypedStage:
    """Runs a stage in a task and returns Arrow with the stage's declared types (an all-null column of a
    block would otherwise come back as floats)."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage

    def __call__(self, batch) -> pa.Table:
        return to_arrow(self.stage(batch), self.stage.output_schema)


class _StageActor(_TypedStage):
    """Holds one stage per actor: `setup()` once (the model load), then `__call__` per batch."""

    def __init__(self, stage: Stage) -> None:
        super().__init__(stage)
        stage.setup()


class _Watchdog:
    """Interrupts the driver when no progress is reported for `timeout` seconds."""

    def __init__(self, timeout: float) -> None:
        self.timeout, self.last, self.fired = timeout, time.monotonic(), False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="recap-watchdog")

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()

    def tick(self) -> None:
        self.last = time.monotonic()

    def _watch(self) -> None:
        while not self._stop.wait(min(5.0, self.timeout / 4)):
            if time.monotonic() - self.last > self.timeout:
                self.fired = True
                _thread.interrupt_main()
                return


class RayExecutor:
    """Runs on the Ray cluster at `address` (None: the one `ray job submit` points at, or a local one)."""

    def __init__(
        self,
        *,
        address: str | None = None,
        actors: int = 1,
        stall_timeout_s: float = 600.0,
        max_actor_restarts: int = 2,
    ) -> None:
        self.address, self.actors, self.stall_timeout_s = address, actors, stall_timeout_s
        self.max_actor_restarts = max_actor_restarts

    def _check_resources(self, pipeline: Pipeline, ray) -> None:
        """On a CPU-only cluster an actor pool that holds every CPU starves the readers and hangs silently."""
        cpus = ray.cluster_resources().get("CPU", 0)
        held = sum(stage.resources.cpus * self.actors for stage in pipeline.stages if stage.needs_setup)
        if held > cpus - 1:
            raise RecapError(
                f"{self.actors} captioner actor(s) would hold {held:g} of the cluster's {cpus:g} CPUs, leaving less "
                "than one for reading and decoding (the job would hang); use fewer --actors or a smaller "
                "--cpus-per-actor (e.g. 0.5)"
            )

    def run(self, pipeline: Pipeline, *, progress: bool = True, total_rows: int | None = None) -> dict:
        import ray
        from ray.data import ActorPoolStrategy, DataContext

        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, ignore_reinit_error=True, log_to_driver=True)
        self._check_resources(pipeline, ray)
        context = DataContext.get_current()
        context.enable_progress_bars = False  # rows, not blocks: the driver shows its own bar
        source = _shard_datasource(pipeline.shards, pipeline.rows_per_read_batch, pipeline.storage_options)
        dataset = ray.data.read_datasource(source, override_num_blocks=len(pipeline.shards))
        for stage in pipeline.stages:
            resources = stage.resources
            if stage.needs_setup:
                dataset = dataset.map_batches(
                    _StageActor,
                    fn_constructor_args=(stage,),
                    compute=ActorPoolStrategy(size=self.actors),
                    batch_size=stage.batch_size,
                    batch_format="numpy",
                    num_cpus=resources.cpus,
                    num_gpus=resources.gpus,
                    max_restarts=self.max_actor_restarts,
                    max_task_retries=self.max_actor_restarts,
                )
            else:
                dataset = dataset.map_batches(
                    _TypedStage(stage), batch_size=stage.batch_size, batch_format="numpy", num_cpus=resources.cpus
                )
        rows = 0
        started = time.perf_counter()
        with (
            tqdm(total=total_rows, unit="img", desc="captioning", disable=not progress, smoothing=0.1) as bar,
            _Watchdog(self.stall_timeout_s) as watchdog,
        ):
            try:
                for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                    pipeline.writer.add(batch)
                    count = batch_length(batch)
                    rows += count
                    bar.update(count)
                    watchdog.tick()
            except KeyboardInterrupt:
                if watchdog.fired:
                    raise RecapError(
                        f"no row finished for {self.stall_timeout_s:g} s (a stuck or starved actor?); completed "
                        "shards are kept: rerun with --resume"
                    ) from None
                raise
        return {"rows": rows, "stage_seconds": {"pipeline": round(time.perf_counter() - started, 3)}}
