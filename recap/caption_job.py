"""The recaption job: webdataset shards in, one caption table per shard out, resumable and exactly once.

`pipelines/recap_datacomp.py` and `recap caption` both build a `CaptionJobConfig` and call `run_caption_job`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from recap import __version__
from recap.errors import RecapError
from recap.models.captioner import CaptionerConfig, describe
from recap.models.prompts import DEFAULT_PROMPT
from recap.pipeline.pipeline import Pipeline
from recap.stages.caption import CaptionImages
from recap.stages.caption_table_writer import MANIFEST_FOLDER, CaptionTableWriter
from recap.stages.decode import DecodeImages
from recap.stages.webdataset_reader import list_shards

EXECUTORS = ("ray", "local")
SUMMARY_FILE = "_run_summary.json"  # "_" keeps it out of Parquet dataset discovery


@dataclass(kw_only=True)
class CaptionJobConfig:
    """Everything the recaption job needs. Paths may be local or any fsspec URI (s3://...)."""

    input: list[str] = field(default_factory=list)
    output: str = ""
    captioner: str = ""  # an HF LLaVA folder; empty: the shipped tiny captioner
    backend: str = "transformers"
    dtype: str = "auto"
    device: str = "auto"
    batch_size: int = 16
    prompt: str = DEFAULT_PROMPT
    max_new_tokens: int = 128
    image_size: int | None = None  # default: the captioner's own input size
    executor: str = "ray"
    ray_address: str | None = None
    actors: int = 1
    gpus_per_actor: float = 0.0
    cpus_per_actor: float = 1.0
    decode_cpus: float = 1.0
    max_pixels: int = 89_478_485
    retries: int = 2
    stall_timeout_s: float = 600.0
    rows_per_read_batch: int = 256
    resume: bool = False
    storage_options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.input, str):
            self.input = [self.input]
        if not self.input:
            raise ValueError("input: give at least one shard path, folder or glob")
        if not self.output:
            raise ValueError("output: give the folder (or URI) for the caption tables")
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {EXECUTORS}, got {self.executor!r}")
        for name in ("actors", "batch_size", "max_new_tokens", "rows_per_read_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("gpus_per_actor", "cpus_per_actor", "decode_cpus", "retries"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.captioner:
            from recap.models.assets import shipped_captioner

            self.captioner = str(shipped_captioner())

    def captioner_config(self) -> CaptionerConfig:
        return CaptionerConfig(
            model=self.captioner,
            backend=self.backend,
            dtype=self.dtype,
            device=self.device,
            batch_size=self.batch_size,
            prompt=self.prompt,
            max_new_tokens=self.max_new_tokens,
        )


def _image_side(config: dict) -> int | None:
    crop = config.get("crop_size") or {}
    size = config.get("size") or {}
    if isinstance(crop, int):
        return crop
    side = crop.get("height") or size.get("shortest_edge") or size.get("height")
    return int(side) if side else None


def captioner_image_size(model: str) -> int:
    """The input side of a checkpoint's image processor (336 for LLaVA-1.5 towers).

    Read from the folder's processor JSON when it is a local folder (importing transformers in the driver costs
    seconds); otherwise, or when the JSON says nothing, through AutoImageProcessor.
    """
    folder = Path(model)
    for name, nested in (("preprocessor_config.json", False), ("processor_config.json", True)):
        path = folder / name
        if path.is_file():
            try:
                config = json.loads(path.read_text())
            except (OSError, ValueError) as error:
                raise RecapError(f"cannot read the captioner's {path}: {error}") from None
            side = _image_side(config.get("image_processor", {}) if nested else config)
            if side:
                return side
    from transformers import AutoImageProcessor

    try:
        processor = AutoImageProcessor.from_pretrained(model)
    except (OSError, ValueError) as error:
        raise RecapError(f"cannot load the captioner's image processor from {model} ({error})") from None
    sizes = {"crop_size": getattr(processor, "crop_size", None), "size": getattr(processor, "size", None)}
    return _image_side(sizes) or 336


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


def run_caption_job(config: CaptionJobConfig, *, progress: bool = True) -> dict:
    """Caption every shard that has no finished table yet; return the run summary (also written as JSON)."""
    started = time.perf_counter()
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
    captioner = config.captioner_config()
    writer = CaptionTableWriter(
        config.output,
        run_id=run_id,
        captioner_model=config.captioner,
        prompt_id=captioner.prompt,
        storage_options=config.storage_options,
    )
    shards = list_shards(config.input, config.storage_options)
    done = writer.completed_shards()
    if done and not config.resume:
        raise RecapError(
            f"{config.output} already holds {len(done)} finished shard table(s); pass --resume to continue that "
            "run, or choose an empty output"
        )
    writer.remove_stale_temporaries()
    todo = [shard for shard in shards if shard.name not in done]
    image_size = config.image_size or captioner_image_size(config.captioner)
    stages = [
        DecodeImages(image_size=image_size, max_pixels=config.max_pixels, cpus=config.decode_cpus),
        CaptionImages(
            captioner=captioner, retries=config.retries, cpus=config.cpus_per_actor, gpus=config.gpus_per_actor
        ),
    ]
    pipeline = Pipeline(
        shards=todo,
        stages=stages,
        writer=writer,
        rows_per_read_batch=config.rows_per_read_batch,
        read_cpus=config.decode_cpus,
        storage_options=config.storage_options,
    )
    pipeline.validate()
    manifest = {
        "run_id": run_id,
        "status": "running",
        "config": asdict(config),
        "captioner": describe(captioner),
        "image_size": image_size,
        "code": code_version(),
        "shards": {"input": len(shards), "already_done": len(done), "to_do": len(todo)},
    }
    writer.write_json(f"{MANIFEST_FOLDER}/{run_id}.json", manifest)
    if config.executor == "local":
        from recap.executors.local import LocalExecutor

        executor = LocalExecutor()
    else:
        from recap.executors.ray_executor import RayExecutor

        executor = RayExecutor(
            address=config.ray_address, actors=config.actors, stall_timeout_s=config.stall_timeout_s
        )
    result = executor.run(pipeline, progress=progress) if todo else {"rows": 0, "stage_seconds": {}}
    incomplete = writer.incomplete()
    if incomplete:
        raise RecapError(f"shards ended incomplete (rows seen, expected): {incomplete}; rerun with --resume")
    elapsed = time.perf_counter() - started
    status_counts: dict[str, int] = {}
    for marker in writer.written.values():
        for status, count in marker["status"].items():
            status_counts[status] = status_counts.get(status, 0) + count
    tokens = sum(marker["output_tokens"] for marker in writer.written.values())
    summary = {
        "run_id": run_id,
        "shards_written": len(writer.written),
        "shards_skipped": len(done),
        "rows": result["rows"],
        "rows_by_status": status_counts,
        "rows_ok": status_counts.get("ok", 0),
        "rows_failed": result["rows"] - status_counts.get("ok", 0),
        "duplicates_dropped": writer.duplicates,
        "seconds": round(elapsed, 2),
        "images_per_s": round(result["rows"] / elapsed, 2) if elapsed else None,
        "output_tokens_per_s": round(tokens / elapsed, 1) if elapsed else None,
        "stage_seconds": result["stage_seconds"],
    }
    manifest.update(status="complete", summary=summary)
    writer.write_json(f"{MANIFEST_FOLDER}/{run_id}.json", manifest)
    writer.write_json(SUMMARY_FILE, summary)
    return summary


def load_config_file(path: str) -> dict:
    """A JSON (or, with PyYAML installed, YAML) file of CaptionJobConfig fields."""
    text = Path(path).read_text()
    if path.endswith((".yaml", ".yml")):
        import yaml

        return yaml.safe_load(text) or {}
    return json.loads(text)


def add_job_arguments(parser: argparse.ArgumentParser) -> None:
    """The job's command-line options (shared by `recap caption` and pipelines/recap_datacomp.py)."""
    parser.add_argument("--config", help="JSON/YAML file of job fields (see recap.caption_job.CaptionJobConfig)")
    parser.add_argument("--input", nargs="+", help="shard paths, folders or globs (local or s3://, gs://, ...)")
    parser.add_argument("--output", help="folder or URI for the caption tables")
    parser.add_argument("--captioner", help="HF LLaVA folder (default: the shipped tiny captioner)")
    parser.add_argument("--backend", choices=("transformers", "vllm"), help="captioner backend")
    parser.add_argument("--actors", type=int, help="captioner actors, one model each (default 1)")
    parser.add_argument("--gpus-per-actor", type=float, help="GPUs per actor (default 0: CPU)")
    parser.add_argument("--cpus-per-actor", type=float, help="CPUs per actor; keep one CPU free for reading")
    parser.add_argument("--decode-cpus", type=float, help="CPUs per read and per decode/resize task (default 1)")
    parser.add_argument(
        "--stall-timeout", dest="stall_timeout_s", type=float, help="fail when no row finishes for this long (s)"
    )
    parser.add_argument("--batch-size", type=int, help="images per captioner call (default 16)")
    parser.add_argument("--prompt", help="prompt preset: recap-datacomp-1b (default), alt-text-conditioned, short")
    parser.add_argument("--max-new-tokens", type=int, help="generation limit (default 128)")
    parser.add_argument("--image-size", type=int, help="decode/resize target (default: the captioner's input size)")
    parser.add_argument("--executor", choices=EXECUTORS, help="ray (default) or local (no cluster)")
    parser.add_argument(
        "--ray-address",
        help="Ray cluster address (default: RAY_ADDRESS, or the cluster `ray start` began here, else a new local Ray; "
        "'local' always starts a new one)",
    )
    parser.add_argument("--resume", action="store_true", default=None, help="skip shards already finished")
    parser.add_argument("--storage-options", type=json.loads, help="fsspec options as JSON, e.g. '{\"key\": ...}'")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace, base: dict | None = None) -> CaptionJobConfig:
    """base < config file < command line; RecapError naming a bad field or file."""
    options = dict(base or {})
    if args.config:
        try:
            options.update(load_config_file(args.config))
        except (OSError, ValueError) as error:
            raise RecapError(f"cannot read config file {args.config}: {error}") from None
    known = {f.name for f in fields(CaptionJobConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise RecapError(f"unknown config field(s) {unknown} in {args.config or 'the base config'}")
    for name in known:
        value = getattr(args, name, None)
        if value is not None:
            options[name] = value
    try:
        return CaptionJobConfig(**options)
    except ValueError as error:
        raise RecapError(str(error)) from None
