"""The recaption job: webdataset shards in, one caption table per shard out, resumable and exactly once.

    [WebDatasetSource, DecodeImages, CaptionImages, CaptionTableSink]

`caption_pipeline` is the recipe (the one place the stage list is built); `pipelines/recap_datacomp.py` and
`recap caption` build a `CaptionJobConfig` and call `run_caption_job`.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from recap.errors import RecapError
from recap.jobs import config as job_config
from recap.jobs.runner import ShardJobConfig, add_shard_job_arguments, new_run_id, run_job
from recap.models.captioner import CaptionerConfig, describe
from recap.pipeline.pipeline import Pipeline
from recap.pipeline.stage import Resources
from recap.stages.caption import CaptionImages
from recap.stages.caption_table_sink import CaptionTableSink
from recap.stages.decode import DecodeImages
from recap.stages.webdataset_reader import WebDatasetSource

# Fields that were top-level before the job nested its captioner config (named in the error for old files).
MOVED_TO_CAPTIONER = dict.fromkeys(
    ("backend", "dtype", "device", "batch_size", "prompt", "max_new_tokens"), "captioner"
)


CAPTIONER_HELP = {
    "model": "HF LLaVA folder (empty: the shipped tiny captioner)",
    "backend": "transformers (everywhere) or vllm (GPUs; pip install 'recap[vllm]')",
    "revision": "checkpoint revision, for a hub id",
    "dtype": "auto, float32, bfloat16 or float16 (auto: bfloat16 on a GPU, float32 on the CPU)",
    "device": "auto, cpu, cuda (transformers backend)",
    "batch_size": "images per captioner call (transformers: padded batch; vllm: rows handed to the engine at once)",
    "prompt": "prompt preset: recap-datacomp-1b, alt-text-conditioned or short",
    "max_new_tokens": "generation limit",
    "temperature": "0: greedy decoding, as in the paper",
    "top_p": "nucleus sampling, with temperature > 0",
    "seed": "sampling seed",
    "max_model_len": "vLLM context length (default: the checkpoint's)",
    "gpu_memory_utilization": "vLLM's share of GPU memory",
    "tensor_parallel_size": "GPUs per vLLM engine",
}


def _default_captioner() -> CaptionerConfig:
    return CaptionerConfig(model="", batch_size=16)


@dataclass(kw_only=True)
class CaptionJobConfig(ShardJobConfig):
    """Everything the recaption job needs: the shared shard-job fields (`ShardJobConfig`) and the captioner.

    `captioner` is a full `CaptionerConfig` (model, backend, prompt, decoding, vLLM engine settings); its
    `model` empty means the shipped tiny captioner. A config file may give it as an object or a model path.
    """

    captioner: CaptionerConfig = field(default_factory=_default_captioner)
    image_size: int | None = None  # default: the captioner's own input size
    retries: int = 2

    output_help = "the folder (or URI) for the caption tables"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")
        if isinstance(self.captioner, str):
            self.captioner = {"model": self.captioner}
        if isinstance(self.captioner, dict):
            self.captioner = job_config.nested_from(
                CaptionerConfig, {**asdict(_default_captioner()), **self.captioner}, "captioner"
            )
        if self.captioner.preset.uses_question:
            raise ValueError(
                f"captioner.prompt {self.captioner.prompt!r} asks a question per image: it is for `recap "
                "eval-reasoning`, not a caption job (use recap-datacomp-1b, alt-text-conditioned or short)"
            )
        if not self.captioner.model:
            from recap.models.assets import shipped_captioner

            self.captioner.model = str(shipped_captioner())


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


def caption_pipeline(config: CaptionJobConfig, *, run_id: str, image_size: int) -> Pipeline:
    """The recipe: read tars, decode and resize on CPU tasks, caption in an actor pool, one table per shard."""
    captioner = config.captioner
    return Pipeline(
        [
            WebDatasetSource(inputs=config.input, storage_options=config.storage_options).with_(
                resources=Resources(cpus=config.decode_cpus), batch_size=config.rows_per_read_batch
            ),
            DecodeImages(image_size=image_size, max_pixels=config.max_pixels).with_(
                resources=Resources(cpus=config.decode_cpus)
            ),
            CaptionImages(captioner=captioner, retries=config.retries).with_(
                resources=Resources(cpus=config.cpus_per_actor, gpus=config.gpus_per_actor)
            ),
            CaptionTableSink(
                output=config.output,
                run_id=run_id,
                captioner_model=captioner.model,
                prompt_id=captioner.prompt,
                storage_options=config.storage_options,
            ),
        ]
    )


def run_caption_job(config: CaptionJobConfig, *, progress: bool = True) -> dict:
    """Caption every shard that has no finished table yet; return the run summary (also written as JSON)."""
    run_id = new_run_id()
    image_size = config.image_size or captioner_image_size(config.captioner.model)
    pipeline = caption_pipeline(config, run_id=run_id, image_size=image_size)
    executor = config.executor_for()
    manifest = {"config": asdict(config), "captioner": describe(config.captioner), "image_size": image_size}
    return run_job(
        pipeline,
        executor,
        run_id=run_id,
        resume=config.resume,
        manifest=manifest,
        progress=progress,
        desc="captioning",
    )


def add_job_arguments(parser: argparse.ArgumentParser) -> None:
    """The job's command-line options (shared by `recap caption` and pipelines/recap_datacomp.py)."""
    add_shard_job_arguments(parser, CaptionJobConfig, model="captioner")
    parser.add_argument("--image-size", type=int, help="decode/resize target (default: the captioner's input size)")
    parser.add_argument("--retries", type=int, help="captioner retries per batch before rows are marked failed")
    job_config.add_nested_arguments(
        parser,
        _default_captioner(),
        "captioner",
        helps=CAPTIONER_HELP,
        aliases={
            "model": ("--captioner",),
            "backend": ("--backend",),
            "batch_size": ("--batch-size",),
            "prompt": ("--prompt",),
            "max_new_tokens": ("--max-new-tokens",),
        },
    )


def config_from_args(args: argparse.Namespace, base: dict | None = None) -> CaptionJobConfig:
    """base < config file < command line; RecapError naming a bad field or file."""
    return job_config.config_from_args(CaptionJobConfig, args, base, moved=MOVED_TO_CAPTIONER)
