"""Run a pipeline with Ray Data: units are read in tasks, CPU stages run in tasks, model stages in actor pools.

This is the only module that imports Ray. Rows stream back to the driver, which counts them in a progress
bar and hands them to the sink (keep what reaches the sink small: a caption job drops the images before it).
Actors that die are restarted and their batches retried (Ray Data's defaults); a watchdog ends the job with a
clear message when no row arrives for `stall_timeout_s` (a stuck actor, or one that dies on every restart).
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time

import numpy as np
import pyarrow as pa

from recap.errors import RecapError
from recap.pipeline.pipeline import Pipeline
from recap.pipeline.progress import TIMING_PREFIX, RowProgress, timing_column
from recap.pipeline.source import Shard, Source
from recap.pipeline.stage import Stage, apply_stage, to_arrow


def _with_timing(table: pa.Table, source, stage: str, seconds: float) -> pa.Table:
    """Carry the upstream stages' per-row seconds over from `source` and add this stage's share."""
    rows = table.num_rows
    for column in source.keys() if isinstance(source, dict) else ():
        if column.startswith(TIMING_PREFIX):
            table = table.append_column(column, pa.array(np.asarray(source[column], dtype=float)))
    return table.append_column(timing_column(stage), pa.array(np.full(rows, seconds / max(rows, 1))))


def _unit_datasource(source: Source, units: list[Shard]):
    """A Ray datasource with one read task per unit (a shard is the unit of reading and of resuming)."""
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    schema = source.output_schema

    def reader(unit: Shard):
        def read():
            started = time.perf_counter()
            for batch in source.read(unit):
                table = to_arrow(batch, schema)
                yield _with_timing(table, None, source.name, time.perf_counter() - started)
                started = time.perf_counter()

        return read

    class UnitDatasource(Datasource):
        def estimate_inmemory_data_size(self):
            return None

        def get_read_tasks(self, parallelism, per_task_row_limit=None, data_context=None):
            return [
                ReadTask(
                    reader(unit),
                    BlockMetadata(num_rows=None, size_bytes=None, input_files=[unit.uri], exec_stats=None),
                )
                for unit in units
            ]

    return UnitDatasource()


class _TypedStage:
    """Runs a stage in a task and returns Arrow with the running schema's types (an all-null column of a
    block would otherwise come back as floats)."""

    def __init__(self, stage: Stage, schema: pa.Schema) -> None:
        self.stage, self.schema = stage, schema

    def __call__(self, batch) -> pa.Table:
        started = time.perf_counter()
        table = to_arrow(apply_stage(self.stage, batch), self.schema)
        return _with_timing(table, batch, self.stage.name, time.perf_counter() - started)


class _StageActor(_TypedStage):
    """Holds one stage per actor: `setup()` once (the model load), then `__call__` per batch."""

    def __init__(self, stage: Stage, schema: pa.Schema) -> None:
        super().__init__(stage, schema)
        stage.setup()


_END = object()
# Rows per block handed to a model actor, in batches. Ray Data returns an actor's output per input block, and a
# read block holds up to 128 MiB (thousands of small images, a whole shard of the embedded world): the driver
# would see rows, and the progress bar move, in jumps that large. Blocks of a few batches keep rows flowing.
BATCHES_PER_ACTOR_BLOCK = 4


class _Stream:
    """Pulls batches from a Ray dataset in a background thread, so that the driver can wait for each one with
    a timeout: Ray's own iterator blocks without one, and a job must never hang on a stuck actor."""

    def __init__(self, dataset, stall_timeout_s: float) -> None:
        self.dataset, self.timeout = dataset, stall_timeout_s
        self._queue: queue.Queue = queue.Queue(maxsize=8)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pull, daemon=True, name="recap-ray-stream")

    def _put(self, item) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def _pull(self) -> None:
        try:
            for batch in self.dataset.iter_batches(batch_size=None, batch_format="numpy"):
                self._put(batch)
                if self._stop.is_set():
                    return
            self._put(_END)
        except BaseException as error:  # noqa: BLE001 - handed to the driver thread, which re-raises it
            self._put(error)

    def __enter__(self):
        self._thread.start()
        return self

    def __iter__(self):
        while True:
            try:
                item = self._queue.get(timeout=self.timeout)
            except queue.Empty:
                raise RecapError(
                    f"no row finished for {self.timeout:g} s (a stuck actor, or one that dies on every restart?); "
                    "completed shards are kept: rerun with --resume"
                ) from None
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def __exit__(self, *exc) -> None:
        self._stop.set()
        # Stop the streaming executor and kill its actors. Ray Data keeps the executor of a running iteration
        # here once the first block has arrived; before that (or on a Ray without the attribute) the actors are
        # released when the driver process exits, as the job's CLI does after an error.
        executor = getattr(self.dataset, "_current_executor", None)
        if executor is not None:
            executor.shutdown(force=True)
            self._thread.join(timeout=30)


def one_line(error: BaseException) -> str:
    """A Ray error in one line: its type and first line, and the last line of the traceback it carries (the
    worker's own exception, which is what explains it)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))  # Ray colours the worker's name
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    head = f"{type(error).__name__}: {lines[0][:300]}"
    return head if len(lines) == 1 else f"{head} ... {lines[-1][:500]}"


def connect(address: str | None, *, log_to_driver: bool = True, runtime_env: dict | None = None) -> bool:
    """Connect this process to Ray unless it already is: `address` ("local": a fresh local Ray), else RAY_ADDRESS or
    the cluster `ray start` left in /tmp/ray, else a local Ray. Returns whether this call connected. RecapError, with
    what to do, when the cluster cannot be reached. Every driver of the project (jobs, download, demo) joins here."""
    import ray

    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, runtime_env=runtime_env, include_dashboard=False, log_to_driver=log_to_driver)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = address or "the address in RAY_ADDRESS or /tmp/ray/ray_current_cluster (from `ray start`)"
        raise RecapError(
            f"cannot connect to the Ray cluster at {where}: {error}. Start the cluster, or pass "
            "--ray-address local for a fresh local Ray (`ray stop` clears a stale cluster file)"
        ) from None
    return True


def check_placement(
    nodes: list[dict], actors: int, actor_cpus: float, actor_gpus: float, task_cpus: float, what: str = "model"
) -> None:
    """Refuse a job that would hang: Ray waits silently for resources that will never be free.

    `nodes` are the alive nodes' resources (`ray.nodes()[i]["Resources"]`). The actors are placed the way
    that leaves the least room for reading and decoding (spread over the nodes, as Ray Data does); after that,
    some node must still hold `task_cpus` free CPUs (a read or decode task), or the pipeline starves.
    """
    free = [{"CPU": float(n.get("CPU", 0)), "GPU": float(n.get("GPU", 0))} for n in nodes]
    for index in range(actors):
        fits = [n for n in free if n["CPU"] >= actor_cpus and n["GPU"] >= actor_gpus]
        if not fits:
            have = ", ".join(f"{n.get('CPU', 0):g} CPU/{n.get('GPU', 0):g} GPU" for n in nodes)
            raise RecapError(
                f"{what} actor {index + 1} of {actors} ({actor_cpus:g} CPU, {actor_gpus:g} GPU each) does not fit "
                f"on the cluster's nodes ({have}); the job would wait forever. Use fewer --actors, or lower "
                "--cpus-per-actor / --gpus-per-actor"
            )
        target = max(fits, key=lambda n: (n["CPU"], n["GPU"]))
        target["CPU"] -= actor_cpus
        target["GPU"] -= actor_gpus
    room = max((n["CPU"] for n in free), default=0.0)
    if room < task_cpus:
        raise RecapError(
            f"with {actors} {what} actor(s) of {actor_cpus:g} CPU spread over {len(nodes)} node(s), no node keeps "
            f"{task_cpus:g} CPU free for reading and decoding (at most {room:g}), so the job would hang. Use fewer "
            "--actors or a smaller --cpus-per-actor (e.g. 0.5), or add CPUs"
        )


class RayExecutor:
    """Runs on the Ray cluster at `address` (None: the one `ray job submit` points at, or a local one)."""

    def __init__(
        self,
        *,
        address: str | None = None,
        actors: int = 1,
        stall_timeout_s: float = 600.0,
        read_concurrency: int | None = None,
    ) -> None:
        self.address, self.actors, self.stall_timeout_s = address, actors, stall_timeout_s
        # Read tasks in flight at once. A few per actor keep the actors fed; more only run ahead, filling the
        # object store and taking CPU time from the actors. Decode tasks follow the reads (and the CPUs free).
        self.read_concurrency = read_concurrency or 2 * actors

    def _check_resources(self, pipeline: Pipeline, ray) -> None:
        nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
        stages = pipeline.transforms
        task_cpus = max([pipeline.source.resources.cpus] + [s.resources.cpus for s in stages if not s.needs_setup])
        for stage in stages:
            if stage.needs_setup:
                cpus, gpus = stage.resources.cpus, stage.resources.gpus
                check_placement(nodes, self.actors, cpus, gpus, task_cpus, what=stage.name)

    def run(self, pipeline: Pipeline, *, progress: bool = True, desc: str = "rows") -> dict:
        import ray
        from ray.data import ActorPoolStrategy, DataContext

        connect(self.address)
        self._check_resources(pipeline, ray)
        context = DataContext.get_current()
        context.enable_progress_bars = False  # rows, not blocks: the driver shows its own bar
        units, source = pipeline.pending, pipeline.source
        concurrency = max(1, min(self.read_concurrency, len(units)))  # one read task per unit at most
        dataset = ray.data.read_datasource(
            _unit_datasource(source, units),
            override_num_blocks=len(units),
            num_cpus=source.resources.cpus,
            concurrency=concurrency,
        )
        for stage in pipeline.transforms:
            resources, schema = stage.resources, pipeline.schema_after(stage)
            if stage.needs_setup:
                # Ray fuses this split into the decode tasks (no extra tasks, no extra CPUs) as long as the decode
                # stage runs with the default task pool, which is why decode has no concurrency cap of its own.
                rows_per_block = BATCHES_PER_ACTOR_BLOCK * (stage.batch_size or 64)
                dataset = dataset.repartition(target_num_rows_per_block=rows_per_block)
                dataset = dataset.map_batches(
                    _StageActor,
                    fn_constructor_args=(stage, schema),
                    compute=ActorPoolStrategy(size=self.actors),
                    batch_size=stage.batch_size,
                    batch_format="numpy",
                    num_cpus=resources.cpus,
                    num_gpus=resources.gpus,
                )
            else:
                dataset = dataset.map_batches(
                    _TypedStage(stage, schema),
                    batch_size=stage.batch_size,
                    batch_format="numpy",
                    num_cpus=resources.cpus,
                )
        started = time.perf_counter()
        with (
            RowProgress(len(units), source.unit_columns, enabled=progress, desc=desc) as bar,
            _Stream(dataset, self.stall_timeout_s) as stream,
        ):
            try:
                for batch in stream:
                    pipeline.sink.write(batch)
                    bar.update(batch)
            except ray.exceptions.RayError as error:
                logging.getLogger("recap").error("the Ray job failed:\n%s", error)  # the whole of it, for the log
                raise RecapError(
                    f"the Ray job failed: {one_line(error)}; completed shards are kept: rerun with --resume"
                ) from error
        # Worker seconds summed over all workers per stage (they overlap in time), and the job's wall time.
        seconds = {stage: round(value, 3) for stage, value in bar.stage_seconds.items()}
        seconds["wall"] = round(time.perf_counter() - started, 3)
        return {"rows": bar.rows, "stage_seconds": seconds}
