"""Recaption DataComp-style webdataset shards with a LLaVA captioner on Ray Data.

    # on a cluster started with `ray start --head` (see README for RAY_AUTH_MODE):
    ray job submit --working-dir . -- python pipelines/recap_datacomp.py --config job.json --input s3://bucket/shards
    # or plainly, on a local Ray:
    python pipelines/recap_datacomp.py --input runs/demo/shards --output runs/demo/captions

A config file (JSON, or YAML with PyYAML) sets any CaptionJobConfig field; command-line options override it.
One Parquet caption table per input shard; rerun with --resume to skip finished shards.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


def base_config() -> dict:
    """The recipe's defaults: the paper's prompt, greedy decoding, 128 new tokens, 16 images per call, one actor
    (a config file or --actors sets more; with --gpus-per-actor 1, one per GPU)."""
    return {"captioner": {"prompt": "recap-datacomp-1b", "max_new_tokens": 128, "batch_size": 16}, "actors": 1}


def main(argv: list[str] | None = None) -> int:
    from recap.jobs.caption import add_job_arguments, config_from_args, run_caption_job
    from recap.jobs.runner import job_script

    return job_script(
        argv,
        prog="recap_datacomp.py",
        description=__doc__,
        add_arguments=add_job_arguments,
        build_config=lambda args: config_from_args(args, base_config()),
        run=run_caption_job,
    )


if __name__ == "__main__":
    sys.exit(main())
