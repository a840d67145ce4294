"""Run a pipeline as a resumable job: refuse or resume a used output, run manifest, executor, run summary.

Every job that writes one table per shard through a `ParquetShardSink` runs through `run_job`, so each gets
the same guarantees: a rerun without `--resume` never mixes runs, stale temporaries of a crashed run are
removed, the manifest says what ran with which code, and the summary counts what the completion markers say
was written (rows a retried task delivered twice are dropped by the sink, and not counted).
The summary's counts are over the shards this run wrote; `shards_skipped` are those an earlier run finished.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from recap import __version__
from recap.errors import RecapError
from recap.pipeline.pipeline import Pipeline
from recap.stages.parquet_sink import MANIFEST_FOLDER, ParquetShardSink

EXECUTORS = ("ray", "local")
SUMMARY_FILE = "_run_summary.json"  # "_" keeps it out of Parquet dataset discovery


@dataclass(kw_only=True)
class ShardJobConfig:
    """What every shard job has: its inputs and output, and how it runs (executor, cluster, actors, reading,
    resume, storage). Each job's config adds its own fields; `add_shard_job_arguments` gives the shared options.
    Paths may be local or any fsspec URI (s3://...)."""

    input: list[str] = field(default_factory=list)
    output: str = ""
    executor: str = "ray"
    ray_address: str | None = None
    actors: int = 1
    gpus_per_actor: float = 0.0
    cpus_per_actor: float = 1.0
    decode_cpus: float = 1.0
    max_pixels: int = 89_478_485
    stall_timeout_s: float = 600.0
    rows_per_read_batch: int = 256
    resume: bool = False
    storage_options: dict = field(default_factory=dict)

    output_help = "the folder (or URI) for the tables"  # what the job writes, for the error when output is empty

    def __post_init__(self) -> None:
        if isinstance(self.input, str):
            self.input = [self.input]
        if not self.input:
            raise ValueError("input: give at least one shard path, folder or glob")
        if not self.output:
            raise ValueError(f"output: give {self.output_help}")
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {EXECUTORS}, got {self.executor!r}")
        for name in ("actors", "rows_per_read_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("gpus_per_actor", "cpus_per_actor", "decode_cpus"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    def executor_for(self):
        """The executor this config asks for."""
        return make_executor(
            self.executor, ray_address=self.ray_address, actors=self.actors, stall_timeout_s=self.stall_timeout_s
        )


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def code_version() -> dict:
    version = {"recap": __version__}
    try:
        here = Path(__file__).resolve().parent
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if commit.returncode == 0:
            version["git_commit"] = commit.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return version


def make_executor(kind: str, *, ray_address: str | None = None, actors: int = 1, stall_timeout_s: float = 600.0):
    """`local` (this process) or `ray` (a cluster; imports Ray only then)."""
    if kind not in EXECUTORS:
        raise RecapError(f"executor must be one of {EXECUTORS}, got {kind!r}")
    if kind == "local":
        from recap.executors.local import LocalExecutor

        return LocalExecutor()
    from recap.executors.ray_executor import RayExecutor

    return RayExecutor(address=ray_address, actors=actors, stall_timeout_s=stall_timeout_s)


def run_job(
    pipeline: Pipeline,
    executor,
    *,
    run_id: str,
    resume: bool,
    manifest: dict,
    progress: bool = True,
    desc: str = "rows",
    ok_status: str = "ok",
) -> dict:
    """Run the pipeline's pending units; return the run summary (also written as JSON beside the tables).

    `manifest` holds the job's own description (config, models); status, code and shard counts are added.
    """
    started = time.perf_counter()
    sink = pipeline.sink
    if not isinstance(sink, ParquetShardSink):
        raise TypeError(f"run_job needs a ParquetShardSink, got {type(sink).__name__}")
    done = pipeline.completed
    if done and not resume:
        raise RecapError(
            f"{sink.output} already holds {len(done)} finished shard table(s); pass --resume to continue that "
            "run, or choose an empty output"
        )
    sink.remove_stale_temporaries()
    todo = pipeline.pending
    manifest = {
        "run_id": run_id,
        "status": "running",
        **manifest,
        "code": code_version(),
        "shards": {"input": len(pipeline.source.units()), "already_done": len(done), "to_do": len(todo)},
    }
    manifest_path = f"{MANIFEST_FOLDER}/{run_id}.json"
    sink.write_json(manifest_path, manifest)
    result = executor.run(pipeline, progress=progress, desc=desc) if todo else {"rows": 0, "stage_seconds": {}}
    incomplete = sink.incomplete()
    if incomplete:
        raise RecapError(f"shards ended incomplete (rows seen, expected): {incomplete}; rerun with --resume")
    elapsed = time.perf_counter() - started
    markers = sink.markers().values()
    rows = sum(marker["rows"] for marker in markers)
    by_status: Counter = Counter()
    for marker in markers:
        by_status.update(marker.get(sink.count_column, {}))
    summary = {
        "run_id": run_id,
        "shards_written": len(markers),
        "shards_skipped": len(done),
        "rows": rows,
        "rows_by_status": dict(by_status),
        "rows_ok": by_status[ok_status],
        "rows_failed": rows - by_status[ok_status],
        "duplicates_dropped": sink.duplicates,
        "seconds": round(elapsed, 2),
        "images_per_s": round(rows / elapsed, 2) if elapsed else None,
    }
    for column in sink.sum_columns:
        total = sum(marker.get(column, 0) for marker in markers)
        summary[f"{column}_total"] = total
        if column in sink.rate_columns:
            summary[f"{column}_per_s"] = round(total / elapsed, 1) if elapsed else None
    summary["stage_seconds"] = result["stage_seconds"]
    manifest.update(status="complete", summary=summary)
    sink.write_json(manifest_path, manifest)
    sink.write_json(SUMMARY_FILE, summary)
    return summary


def add_shard_job_arguments(parser: argparse.ArgumentParser, config_class: type, *, model: str) -> None:
    """The options every shard job shares, for the job whose config is `config_class` and whose actors each hold
    one `model`: its config file, inputs and output, its actor pool, then `add_run_arguments`. Each job adds its
    own options; their `dest`s are the config's field names."""
    parser.add_argument(
        "--config", help=f"JSON/YAML file of job fields (see {config_class.__module__}.{config_class.__name__})"
    )
    parser.add_argument("--input", nargs="+", help="shard paths, folders or globs (local or s3://, gs://, ...)")
    parser.add_argument("--output", help=config_class.output_help)
    parser.add_argument("--actors", type=int, help=f"{model} actors, one model each (default 1)")
    parser.add_argument("--gpus-per-actor", type=float, help="GPUs per actor (default 0: CPU)")
    parser.add_argument("--cpus-per-actor", type=float, help="CPUs per actor; keep one CPU free for reading")
    add_run_arguments(parser)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """How a shard job runs (reading, executor, cluster, resume, storage)."""
    parser.add_argument("--decode-cpus", type=float, help="CPUs per read and per decode/resize task (default 1)")
    parser.add_argument(
        "--stall-timeout", dest="stall_timeout_s", type=float, help="fail when no row finishes for this long (s)"
    )
    parser.add_argument("--max-pixels", type=int, help="refuse images with more pixels than this (bad_input rows)")
    parser.add_argument("--executor", choices=EXECUTORS, help="ray (default) or local (no cluster)")
    parser.add_argument(
        "--ray-address",
        help="Ray cluster address (default: RAY_ADDRESS, or the cluster `ray start` began here, else a new local Ray; "
        "'local' always starts a new one)",
    )
    parser.add_argument("--resume", action="store_true", default=None, help="skip shards already finished")
    parser.add_argument("--storage-options", type=json.loads, help="fsspec options as JSON, e.g. '{\"key\": ...}'")


def job_script(
    argv: list[str] | None,
    *,
    prog: str,
    description: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    build_config: Callable[[argparse.Namespace], ShardJobConfig],
    run: Callable[..., dict],
) -> int:
    """The `main` of a job script under pipelines/ (what `ray job submit` runs): parse, build the config, run,
    print the summary as JSON. Everything prints where it runs (`ray job logs` shows it); errors are one line."""
    from recap.console import add_console_arguments

    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    add_console_arguments(parser)
    args = parser.parse_args(argv)
    try:
        summary = run(build_config(args), progress=not args.quiet)
    except RecapError as error:
        print(f"{prog.removesuffix('.py')}: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0
