"""Score recaptioned DataComp-style shards with a CLIP on Ray Data: both captions of every image.

    # on a cluster started with `ray start --head` (see README for RAY_AUTH_MODE):
    ray job submit --working-dir . -- python pipelines/score_datacomp.py --config score.json
    # or plainly, on a local Ray:
    python pipelines/score_datacomp.py --input runs/demo/shards --captions runs/demo/captions \
        --output runs/demo/scored

Reads each shard's images with its caption table (the recaption job's output), encodes each image once with a
CLIP (the shipped reference CLIP by default; any open_clip model name with --pretrained, or a CLIP folder) and
writes one scored table per shard (schemas/scored_table.v1.json): the caption table with re_clip_score and
org_clip_score = 100 x max(cosine, 0). A config file (JSON, or YAML with PyYAML) sets any ScoreJobConfig
field; command-line options override it. Rerun with --resume to skip finished shards.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


def main(argv: list[str] | None = None) -> int:
    from recap.jobs.runner import job_script
    from recap.jobs.score import add_job_arguments, config_from_args, run_score_job

    return job_script(
        argv,
        prog="score_datacomp.py",
        description=__doc__,
        add_arguments=add_job_arguments,
        build_config=config_from_args,
        run=run_score_job,
    )


if __name__ == "__main__":
    sys.exit(main())
