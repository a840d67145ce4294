"""Download a DataComp-style metadata folder into webdataset shards with img2dataset, and summarise it.

For a real DataComp metadata folder this is img2dataset with DataComp's settings. For the embedded world,
`download_world` first serves the world's images on 127.0.0.1 (see `world_server`), so dead links,
timeouts and corrupt bodies go through img2dataset's real failure paths.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from recap.errors import RecapError
from recap.io_utils import ensure_writable_folder, write_json_atomic

SUMMARY_FILE = "download_summary.json"


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

    def __post_init__(self) -> None:
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


def metadata_files(folder: str | Path) -> list[Path]:
    """The Parquet files of a metadata folder, sorted; RecapError if there is no such folder or no file."""
    folder = Path(folder)
    if not folder.exists():
        raise RecapError(f"metadata folder {folder} does not exist")
    if not folder.is_dir():
        raise RecapError(f"metadata path {folder} is not a folder; pass the folder that holds the .parquet files")
    files = sorted(folder.glob("*.parquet"))
    if not files:
        raise RecapError(f"metadata folder {folder} holds no .parquet files")
    return files


def check_metadata(config: DownloadConfig) -> list[str]:
    """Check every metadata file has the columns img2dataset will need; return the columns to keep.

    Raises RecapError naming the file, the missing column, the columns it has, and the option that fixes it.
    """
    needed = {config.url_column: "--url-col", config.caption_column: "--caption-col"}
    needed.update({column: "--keep-columns" for column in config.keep_columns})
    keep = list(config.keep_columns)
    every_file_has_hash = True
    for path in metadata_files(config.metadata):
        try:
            schema = pq.read_schema(path)
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
    return keep + (["sha256"] if verify and "sha256" not in keep else [])


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
    """Add up img2dataset's `*_stats.json` files in `output`."""
    summary = DownloadSummary(output=str(output))
    reasons: Counter = Counter()
    raw: Counter = Counter()
    for path in sorted(Path(output).glob("*_stats.json")):
        stats = json.loads(path.read_text())
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


def download(config: DownloadConfig) -> DownloadSummary:
    """Run img2dataset on `config.metadata` into webdataset shards in `config.out` and summarise.

    Shards img2dataset already finished are kept (its incremental mode), so a rerun resumes.
    """
    keep = check_metadata(config)
    out = ensure_writable_folder(config.out, "output folder")
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations (via img2dataset) phones home
    from img2dataset import download as img2dataset_download

    img2dataset_download(
        url_list=str(Path(config.metadata).resolve()),
        input_format="parquet",
        url_col=config.url_column,
        caption_col=config.caption_column,
        save_additional_columns=[c for c in keep if c != "sha256"] or None,
        verify_hash=["sha256", "sha256"] if "sha256" in keep else None,
        output_folder=str(out.resolve()),
        output_format="webdataset",
        image_size=config.image_size,
        resize_mode=config.resize_mode,
        number_sample_per_shard=config.samples_per_shard,
        processes_count=config.processes,
        thread_count=config.threads,
        timeout=config.timeout,
        retries=config.retries,
        enable_wandb=False,
        incremental_mode="incremental",
    )
    summary = summarise(out)
    write_json_atomic(out / SUMMARY_FILE, {"config": asdict(config), **summary.to_dict()})
    return summary


def download_world(world: str | Path, split: str, config: DownloadConfig) -> DownloadSummary:
    """Serve a world's images on 127.0.0.1 and download one split's metadata through img2dataset."""
    from recap.ingest.world_server import WorldServer, http_proxy

    # The server stalls "timeout" URLs well past img2dataset's timeout, then lets go when we stop it.
    with WorldServer(world, stall_seconds=config.timeout + 30) as server, http_proxy(server.proxy_url):
        return download(config)
