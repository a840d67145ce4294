"""The scoring job: shards and their caption tables in, one scored table per shard out, resumable and exactly once.

    [CaptionedShardSource, DecodeImages, ClipScores, ScoredTableSink]

`score_pipeline` is the recipe; `pipelines/score_datacomp.py` and `recap score` build a `ScoreJobConfig` and
call `run_score_job`. It runs through the same `run_job` as the recaption job (manifest, `--resume`, stale
temporaries removed, a summary counted from the completion markers).
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass

from recap.errors import RecapError
from recap.jobs import config as job_config
from recap.jobs.runner import ShardJobConfig, add_shard_job_arguments, new_run_id, run_job
from recap.pipeline.pipeline import Pipeline
from recap.pipeline.stage import Resources
from recap.stages.captioned_shards import CaptionedShardSource
from recap.stages.clip_score import ClipScores
from recap.stages.decode import DecodeImages
from recap.stages.scored_table_sink import ScoredTableSink


@dataclass(kw_only=True)
class ScoreJobConfig(ShardJobConfig):
    """Everything the scoring job needs: the shared shard-job fields (`ShardJobConfig`), the caption tables and
    the CLIP.

    `clip` is a CLIP folder or an open_clip model name (with `pretrained`, a local checkpoint); empty means the
    shipped reference CLIP. Images are resized and centre-cropped to the CLIP's input size, as CLIP's own
    preprocessing does.
    """

    captions: str = ""
    clip: str = ""
    pretrained: str | None = None
    batch_size: int = 256

    output_help = "the folder (or URI) for the scored tables"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.captions:
            raise ValueError("captions: give the caption tables' folder (the recaption job's output)")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.clip:
            from recap.models.assets import shipped_clip

            self.clip = str(shipped_clip())

    @property
    def clip_model(self) -> str:
        """What the tables' clip_model column says."""
        return f"{self.clip} ({self.pretrained})" if self.pretrained else self.clip


def clip_input_size(clip: str) -> int:
    """The image side the CLIP takes (from its config, without loading weights)."""
    import json
    from pathlib import Path

    from recap.models.clip import CONFIG_FILE, model_config

    folder = Path(clip.removeprefix("local-dir:"))
    try:
        if (folder / CONFIG_FILE).is_file():
            config = json.loads((folder / CONFIG_FILE).read_text())["model_cfg"]
        else:
            config = model_config(clip)
    except (KeyError, OSError, ValueError) as error:
        raise RecapError(f"cannot read the CLIP config of {clip!r}: {error}") from None
    size = config["vision_cfg"]["image_size"]
    return int(size[0] if isinstance(size, list | tuple) else size)


def score_pipeline(config: ScoreJobConfig, *, run_id: str, image_size: int) -> Pipeline:
    """The recipe: read tars with their caption tables, decode and crop on CPU tasks, score in an actor pool,
    one scored table per shard."""
    return Pipeline(
        [
            CaptionedShardSource(
                inputs=config.input, captions=config.captions, storage_options=config.storage_options
            ).with_(resources=Resources(cpus=config.decode_cpus), batch_size=config.rows_per_read_batch),
            DecodeImages(image_size=image_size, max_pixels=config.max_pixels, pad_to_square=False).with_(
                resources=Resources(cpus=config.decode_cpus)
            ),
            ClipScores(model=config.clip, pretrained=config.pretrained).with_(
                resources=Resources(cpus=config.cpus_per_actor, gpus=config.gpus_per_actor),
                batch_size=config.batch_size,
            ),
            ScoredTableSink(
                output=config.output,
                captions=config.captions,
                clip_model=config.clip_model,
                run_id=run_id,
                storage_options=config.storage_options,
            ),
        ]
    )


def run_score_job(config: ScoreJobConfig, *, progress: bool = True) -> dict:
    """Score every shard that has no finished scored table yet; return the run summary (also written as JSON)."""
    run_id = new_run_id()
    image_size = clip_input_size(config.clip)
    pipeline = score_pipeline(config, run_id=run_id, image_size=image_size)
    executor = config.executor_for()
    manifest = {"config": asdict(config), "clip_model": config.clip_model, "image_size": image_size}
    summary = run_job(
        pipeline,
        executor,
        run_id=run_id,
        resume=config.resume,
        manifest=manifest,
        progress=progress,
        desc="scoring",
    )
    return summary


def add_job_arguments(parser: argparse.ArgumentParser) -> None:
    """The scoring job's command-line options (shared by `recap score` and pipelines/score_datacomp.py)."""
    add_shard_job_arguments(parser, ScoreJobConfig, model="CLIP")
    parser.add_argument("--captions", help="folder or URI of the shards' caption tables (the recaption job's output)")
    parser.add_argument(
        "--clip", help="CLIP folder, or an open_clip model name with --pretrained (default: the shipped reference)"
    )
    parser.add_argument("--pretrained", help="local checkpoint for an open_clip model name (e.g. a ViT-B-16 file)")
    parser.add_argument("--batch-size", type=int, help="images per CLIP call (default 256)")


def config_from_args(args: argparse.Namespace, base: dict | None = None) -> ScoreJobConfig:
    """base < config file < command line; RecapError naming a bad field or file."""
    return job_config.config_from_args(ScoreJobConfig, args, base)
