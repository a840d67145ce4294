"""Download a DataComp-style metadata folder into webdataset shards with img2dataset, and summarise it.

For a real DataComp metadata folder this is img2dataset with DataComp's settings. For the embedded world,
`download_world` first serves the world's images on 127.0.0.1 (see `world_server`), so dead links,
timeouts and corrupt bodies go through img2dataset's real failure paths.

img2dataset runs each shard with its `multiprocessing` distributor (processes on this machine) or its `ray`
distributor (one Ray task per shard, one CPU each, on the cluster `ray_address` names). Ray is imported only
on the latter path. The metadata folder and the output may be local paths or any fsspec URI img2dataset can
use (s3://..., with credentials from the environment); with Ray on several machines, every node must reach
the output (an object store or a shared file system), since img2dataset stages each shard's rows there.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from recap.console import progress_bar
from recap.errors import RecapError
from recap.io_utils import ensure_writable_folder, write_json_atomic

SUMMARY_FILE = "download_summary.json"
POLL_SECONDS = 1.0
DISTRIBUTORS = ("multiprocessing", "ray")


@dataclass(kw_only=True)
class DownloadConfig:
    """img2dataset settings; the defaults are DataComp's (512 px, keep_ratio_largest, uid kept)."""

    metadata: str
    out: str
    image_size: int = 512
    resize_mode: str = "keep_ratio_largest"
    samples_per_shard: int = 10_000
    processes: int = 2
    threads: int = 32
    timeout: int = 10
    retries: int = 0
    url_column: str = "url"
    caption_column: str = "text"
    keep_columns: tuple[str, ...] = ("uid",)
    verify_hash: bool = True  # when the metadata has a sha256 column, as DataComp's does
    distributor: str = "multiprocessing"  # or "ray": one Ray task per shard; `processes` is then unused
    ray_address: str | None = None  # with "ray": a cluster to join (None: RAY_ADDRESS, `ray start`'s, or local)

    def __post_init__(self) -> None:
        if isinstance(self.keep_columns, str):  # a config file or an option may give "uid,sha256"
            self.keep_columns = tuple(c.strip() for c in self.keep_columns.split(",") if c.strip())
        self.keep_columns = tuple(self.keep_columns)
        if self.distributor not in DISTRIBUTORS:
            raise RecapError(f"distributor must be one of {', '.join(DISTRIBUTORS)}, got {self.distributor!r}")
        if self.ray_address and self.distributor != "ray":
            raise RecapError("ray-address is for the ray distributor; add --distributor ray")
        for name in ("image_size", "samples_per_shard", "processes", "threads", "timeout"):
            if getattr(self, name) < 1:
                raise RecapError(f"{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.retries < 0:
            raise RecapError(f"retries must be >= 0, got {self.retries}")


@dataclass
class DownloadSummary:
    """What img2dataset did, from its per-shard `*_stats.json` files."""

    output: str
    shards: int = 0
    count: int = 0
    successes: int = 0
    failed_to_download: int = 0
    failed_to_resize: int = 0
    failures_by_reason: dict[str, int] = field(default_factory=dict)
    raw_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def success_rate(self) -> float:
        return self.successes / self.count if self.count else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "success_rate": round(self.success_rate, 4)}


def _metadata_listing(folder: str | Path) -> tuple[fsspec.AbstractFileSystem, list[str]]:
    fs, path = fsspec.core.url_to_fs(str(folder))
    if not fs.exists(path):
        raise RecapError(f"metadata folder {folder} does not exist")
    if not fs.isdir(path):
        raise RecapError(f"metadata path {folder} is not a folder; pass the folder that holds the .parquet files")
    files = sorted(fs.glob(path.rstrip("/") + "/*.parquet"))
    if not files:
        raise RecapError(f"metadata folder {folder} holds no .parquet files")
    return fs, files


def metadata_files(folder: str | Path) -> list[str]:
    """The Parquet files of a metadata folder (a local path or an fsspec URI), sorted, as paths on its file
    system; RecapError if there is no such folder or no file."""
    return _metadata_listing(folder)[1]


def _inspect_metadata(config: DownloadConfig) -> tuple[list[str], int]:
    """The columns to keep (see `check_metadata`) and the number of metadata rows, from the files' footers."""
    needed = {config.url_column: "--url-col", config.caption_column: "--caption-col"}
    needed.update({column: "--keep-columns" for column in config.keep_columns})
    keep = list(config.keep_columns)
    every_file_has_hash = True
    rows = 0
    fs, files = _metadata_listing(config.metadata)
    for path in files:
        try:
            with fs.open(path, "rb") as handle:
                parquet = pq.ParquetFile(handle)
                schema, rows = parquet.schema_arrow, rows + parquet.metadata.num_rows
        except (pa.ArrowInvalid, OSError) as error:
            raise RecapError(f"{path} is not a readable Parquet file ({error})") from None
        for column, option in needed.items():
            if column not in schema.names:
                raise RecapError(
                    f"{path} has no column {column!r} (it has {', '.join(schema.names)}); "
                    f"name the right column with {option}"
                )
            if not pa.types.is_string(schema.field(column).type) and not pa.types.is_large_string(
                schema.field(column).type
            ):
                raise RecapError(f"{path}: column {column!r} is {schema.field(column).type}, expected strings")
        every_file_has_hash &= "sha256" in schema.names
    verify = config.verify_hash and every_file_has_hash
    return keep + (["sha256"] if verify and "sha256" not in keep else []), rows


def check_metadata(config: DownloadConfig) -> list[str]:
    """Check every metadata file has the columns img2dataset will need; return the columns to keep.

    Raises RecapError naming the file, the missing column, the columns it has, and the option that fixes it.
    """
    return _inspect_metadata(config)[0]


_REASON_PATTERNS = (
    (re.compile(r"HTTP Error (\d+)"), lambda m: f"http_{m.group(1)}"),
    (re.compile(r"timed? ?out", re.IGNORECASE), lambda m: "timeout"),
    (re.compile(r"hash mismatch"), lambda m: "hash_mismatch"),
    (
        re.compile(r"Connection refused|Name or service not known|urlopen error", re.IGNORECASE),
        lambda m: "unreachable",
    ),
    (re.compile(r"decod|cannot identify|image", re.IGNORECASE), lambda m: "not_decodable"),
)


def failure_reason(message: str) -> str:
    """A short category for one of img2dataset's error messages ('HTTP Error 404: Not Found' -> 'http_404')."""
    for pattern, name in _REASON_PATTERNS:
        match = pattern.search(message)
        if match:
            return name(match)
    return "other"


def summarise(output: str | Path) -> DownloadSummary:
    """Add up img2dataset's `*_stats.json` files in `output` (a local path or an fsspec URI)."""
    summary = DownloadSummary(output=str(output))
    reasons: Counter = Counter()
    raw: Counter = Counter()
    fs, root = fsspec.core.url_to_fs(str(output))
    for path in sorted(fs.glob(root.rstrip("/") + "/*_stats.json")):
        with fs.open(path, "r") as handle:
            stats = json.load(handle)
        summary.shards += 1
        summary.count += stats.get("count", 0)
        summary.successes += stats.get("successes", 0)
        summary.failed_to_download += stats.get("failed_to_download", 0)
        summary.failed_to_resize += stats.get("failed_to_resize", 0)
        for message, n in stats.get("status_dict", {}).items():
            if message != "success":
                raw[message] += n
                reasons[failure_reason(message)] += n
    summary.failures_by_reason = dict(reasons.most_common())
    summary.raw_reasons = dict(raw.most_common())
    return summary


def _prepare_output(out: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """Create the output folder (proving a local one writable) and drop the summary of an earlier run: in its
    incremental mode img2dataset reads every `*.json` in the folder as a finished shard's stats, by number."""
    fs, root = fsspec.core.url_to_fs(out)
    if isinstance(fs, LocalFileSystem):
        root = str(ensure_writable_folder(root, "output folder").resolve())
    else:
        fs.makedirs(root, exist_ok=True)
    summary = f"{root.rstrip('/')}/{SUMMARY_FILE}"
    if fs.exists(summary):
        fs.rm(summary)
    return fs, root


def _urls_in_finished_shards(fs: fsspec.AbstractFileSystem, root: str) -> int:
    total = 0
    for path in fs.glob(root.rstrip("/") + "/*_stats.json"):
        try:
            total += json.loads(fs.cat_file(path)).get("count", 0)
        except (OSError, ValueError):
            pass  # being written: counted on the next look
    return total


@contextlib.contextmanager
def _finished_shards_bar(fs: fsspec.AbstractFileSystem, root: str, rows: int, enabled: bool) -> Iterator[None]:
    """A bar of the metadata rows in shards img2dataset has finished (its `NNNNN_stats.json`), looked at every
    `POLL_SECONDS` by a thread: img2dataset's own bar counts input files, and goes to the log with its prints."""
    bar = progress_bar(total=rows, desc="downloading", unit="url", disable=not enabled)
    stop = threading.Event()

    def watch() -> None:
        while True:
            bar.update(_urls_in_finished_shards(fs, root) - bar.n)
            if stop.wait(POLL_SECONDS):
                return

    watcher = threading.Thread(target=watch, name="download-progress", daemon=True)
    if enabled:
        watcher.start()
    try:
        yield
    finally:
        stop.set()
        if enabled:
            watcher.join()
        bar.close()


@contextlib.contextmanager
def _ray_cluster(address: str | None, task_env: dict[str, str] | None) -> Iterator[None]:
    """Connect to Ray the way the recaption job does (`address`, else RAY_ADDRESS or `ray start`'s cluster, else
    a local Ray) with `task_env` in the job's runtime environment; disconnect afterwards if this connected."""
    import ray

    from recap.executors.ray_executor import connect

    if ray.is_initialized():
        job_env = (ray.get_runtime_context().runtime_env or {}).get("env_vars") or {}
        differing = sorted(name for name, value in (task_env or {}).items() if job_env.get(name) != value)
        if differing:
            raise RecapError(
                f"Ray is already connected in this process without {', '.join(differing)} in its runtime "
                "environment, which the download tasks need: call ray.shutdown() first, or download in a new process"
            )
    connected = connect(address, runtime_env={"env_vars": dict(task_env)} if task_env else None)
    try:
        # img2dataset asks one CPU per shard task; on a cluster with no node that has one, they would wait forever.
        if not any(node.get("Alive") and node["Resources"].get("CPU", 0) >= 1 for node in ray.nodes()):
            raise RecapError(
                "no node of the Ray cluster has a whole CPU, which each of img2dataset's shard tasks asks for"
            )
        try:
            yield
        except ray.exceptions.RayError as error:
            raise RecapError(
                f"a shard's download task failed on the Ray cluster ({type(error).__name__}: {error}); "
                "finished shards are kept: rerun the same command to resume"
            ) from None
    finally:
        if connected:
            ray.shutdown()


def download(
    config: DownloadConfig, *, task_env: dict[str, str] | None = None, progress: bool = True
) -> DownloadSummary:
    """Run img2dataset on `config.metadata` into webdataset shards in `config.out` and summarise.

    Shards img2dataset already finished are kept (its incremental mode), so a rerun resumes. With the ray
    distributor the shard tasks run with `task_env` set (for example a proxy; local processes inherit this
    process's environment instead). Raises RecapError when the run ends with metadata rows in no finished shard
    (a shard that failed as a whole), after writing the summary; a rerun then downloads those shards.
    """
    keep, rows = _inspect_metadata(config)
    fs, out = _prepare_output(config.out)
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations (via img2dataset) phones home
    from img2dataset import download as img2dataset_download

    metadata_fs, metadata = fsspec.core.url_to_fs(config.metadata)
    metadata = str(Path(metadata).resolve()) if isinstance(metadata_fs, LocalFileSystem) else config.metadata
    ray_path = _ray_cluster(config.ray_address, task_env) if config.distributor == "ray" else contextlib.nullcontext()
    with ray_path, _finished_shards_bar(fs, out, rows, progress):
        img2dataset_download(
            url_list=metadata,
            input_format="parquet",
            url_col=config.url_column,
            caption_col=config.caption_column,
            save_additional_columns=[c for c in keep if c != "sha256"] or None,
            verify_hash=["sha256", "sha256"] if "sha256" in keep else None,
            output_folder=out if isinstance(fs, LocalFileSystem) else config.out,
            output_format="webdataset",
            image_size=config.image_size,
            resize_mode=config.resize_mode,
            number_sample_per_shard=config.samples_per_shard,
            processes_count=config.processes,
            thread_count=config.threads,
            timeout=config.timeout,
            retries=config.retries,
            distributor=config.distributor,
            enable_wandb=False,
            incremental_mode="incremental",
        )
    summary = summarise(config.out)
    payload = {"config": asdict(config), **summary.to_dict(), "metadata_rows": rows}
    if isinstance(fs, LocalFileSystem):
        write_json_atomic(Path(out) / SUMMARY_FILE, payload)
    else:
        fs.pipe_file(f"{out.rstrip('/')}/{SUMMARY_FILE}", (json.dumps(payload, indent=2) + "\n").encode())
    if summary.count < rows:
        raise RecapError(
            f"{rows - summary.count} of {rows} metadata rows are in no finished shard (img2dataset gave up on a "
            f"shard; its messages say why): rerun the same command to download them, finished shards are kept"
        )
    return summary


def world_settings(world: str | Path, split: str = "web") -> dict:
    """DownloadConfig fields for a world made by `recap world`: its split's metadata folder, its image size,
    1,000 samples per shard and a 3 s timeout (the server answers at once or stalls for good)."""
    from recap.world.generate import load_manifest

    manifest = load_manifest(world)
    metadata = str(Path(world) / split / "metadata")
    return {
        "metadata": metadata,
        "image_size": manifest["config"]["image_size"],
        "samples_per_shard": 1000,
        "timeout": 3,
    }


def download_world(world: str | Path, split: str, config: DownloadConfig, *, progress: bool = True) -> DownloadSummary:
    """Serve a world's images on 127.0.0.1 and download one split's metadata through img2dataset.

    With the ray distributor the shard tasks reach the server through the job's runtime environment, so they
    must run on this machine (a local Ray, or a cluster whose nodes all run here, as in the tests)."""
    from recap.ingest.world_server import WorldServer, http_proxy

    # The server stalls "timeout" URLs well past img2dataset's timeout, then lets go when we stop it.
    with WorldServer(world, stall_seconds=config.timeout + 30) as server, http_proxy(server.proxy_url):
        proxy = server.proxy_url
        task_env = {"http_proxy": proxy, "HTTP_PROXY": proxy, "no_proxy": "", "NO_PROXY": ""}
        return download(config, task_env=task_env, progress=progress)
