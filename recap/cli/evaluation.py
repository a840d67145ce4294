"""Evaluation: `recap eval-captions`, `recap sample` and `recap eval-t2i` (`recap eval-retrieval` is in
`retrieval.py`). The option groups t2i-sweep shares with them (`add_generation_arguments`,
`add_t2i_eval_arguments`) live here too."""

from __future__ import annotations

import argparse
from pathlib import Path

from recap.cli.options import add_command, add_threads_argument, config_from_args, float_list, log_in, set_threads
from recap.console import echo

NEGATIVE_SCALE_HELP = "Perp-Neg's scale for the negative (default: --scale minus 1, the plain negative's weight on it)"


def add_eval_captions_parser(subparsers) -> None:
    parser = add_command(
        subparsers,
        "eval-captions",
        help="score captions against the world's ground truth",
        description="Join a table (Parquet file or folder, with a uid column) to the embedded world's ground "
        "truth by uid and print precision (1 - hallucination rate), recall (coverage), per-attribute accuracy "
        "and mean length of --column beside the table's original alt-text (--baseline).",
        handler=_run_eval_captions,
        log=lambda args: None,
    )
    parser.add_argument("--table", required=True, help="Parquet file or folder of them, with uid")
    parser.add_argument("--world", required=True, help="the world folder the table's samples come from")
    parser.add_argument("--column", default="re_caption", help="caption column to score")
    parser.add_argument("--baseline", default="org_caption", help="column to show beside it (skipped if absent)")


def _run_eval_captions(args: argparse.Namespace) -> int:
    from recap.caption_quality import score_table
    from recap.report import quality_table
    from recap.world.generate import load_manifest

    load_manifest(args.world)
    result = score_table(args.table, args.world, column=args.column, baseline=args.baseline)
    echo(quality_table(result["summaries"]))
    echo(
        f"rows {result['rows']}, null captions skipped {result['skipped_null']}, uids not in the world "
        f"{result['unknown_uid']}"
    )
    return 0


def add_generation_arguments(parser: argparse.ArgumentParser, *, sweep: bool = False) -> None:
    """How images are drawn; in t2i-sweep, whose training takes --steps, --seed and --batch-size, these are
    --eval-steps, --eval-seed and --eval-batch-size."""
    from recap.models.t2i import SCHEDULERS

    prefix = "--eval-" if sweep else "--"
    parser.add_argument(
        "--scale",
        type=float,
        default=None if not sweep else 4.0,
        help="classifier-free guidance scale (sample: "
        "default the model's recorded scale, else 4; eval with --scales: the fallback when none is given)",
    )
    parser.add_argument(f"{prefix}steps", type=int, default=20, help="sampling steps")
    parser.add_argument("--scheduler", default="ddim", choices=SCHEDULERS)
    parser.add_argument(f"{prefix}seed", type=int, default=0, help="image i starts from the noise of seed + i")
    parser.add_argument(f"{prefix}batch-size", type=int, default=64, help="images drawn at once")
    parser.add_argument(
        "--skip-bricks",
        type=float,
        default=1.0,
        metavar="FRACTION",
        help="LEGO stacks: skip the top brick after this fraction of the sampling steps (1: never; 0.5: the second "
        "half runs one brick fewer)",
    )
    if not sweep:
        add_threads_argument(parser)


def add_sample_parser(subparsers) -> None:
    from recap.models.t2i import GUIDANCE_MODES

    parser = add_command(
        subparsers,
        "sample",
        help="draw images for prompts with a text-to-image model",
        description="Draw one image per prompt (from --prompts, a text file with one prompt per line, or a "
        "caption table's column) with classifier-free guidance. --negative adds a negative prompt: "
        "--guidance negative puts it in the unconditional branch (as most samplers do), --guidance perp-neg "
        "subtracts only its part perpendicular to the prompt's direction (Perp-Neg), so a negative that "
        "overlaps the prompt cannot erase what the prompt asks for. The same --seed gives the same images. "
        "Writes OUT/NNNNN.png, OUT/grid.png (prompt under each image) and OUT/samples.json.",
        handler=_run_sample,
        log=log_in("out"),
    )
    parser.add_argument("--model", help="model folder (train-t2i's OUT/model); default: the shipped p=0 model")
    parser.add_argument("--prompts", help="text file, one prompt per line")
    parser.add_argument("--prompt", action="append", default=[], help="a prompt (repeatable)")
    parser.add_argument("--prompt-table", help="caption table (Parquet file or folder) to take prompts from")
    parser.add_argument("--column", default="re_caption", help="the --prompt-table column")
    parser.add_argument("--limit", type=int, default=16, help="at most this many prompts from a file or table")
    parser.add_argument("--negative", help="negative prompt for every image")
    parser.add_argument("--guidance", choices=GUIDANCE_MODES, help="default: cfg, or negative with --negative")
    parser.add_argument("--negative-scale", type=float, help=NEGATIVE_SCALE_HELP)
    parser.add_argument("--out", required=True, help="folder for the PNGs, grid and samples.json")
    parser.add_argument(
        "--size", type=int, help="canvas side in pixels (LEGO stacks: larger than training tiles more windows)"
    )
    add_generation_arguments(parser)


def _run_sample(args: argparse.Namespace) -> int:
    from recap.evaluation.sampling import draw_and_save, read_prompts

    set_threads(args.threads)
    prompts = read_prompts(args.prompt, args.prompts, args.prompt_table, args.column, args.limit)
    options = ("model", "negative", "guidance", "scale", "negative_scale", "steps", "scheduler", "seed", "batch_size")
    options += ("skip_bricks", "size")
    record = draw_and_save(prompts, args.out, **{name: getattr(args, name) for name in options})
    echo(f"{len(record['images'])} images in {args.out}; grid: {record['grid']}")
    return 0


def add_t2i_eval_arguments(parser: argparse.ArgumentParser, defaults) -> None:
    """The options eval-t2i and t2i-sweep share (named like T2IEvalConfig's fields)."""
    parser.add_argument("--eval", required=True, help="world eval split folder (with truth.parquet)")
    parser.add_argument("--prompt-table", help="caption table of the eval images to prompt with (joined on uid)")
    parser.add_argument("--prompt-column", default=defaults.prompt_column, help="caption = the ground truth")
    parser.add_argument("--limit", type=int, default=defaults.limit, help="eval images (prompts) to use")
    parser.add_argument(
        "--scales",
        type=float_list,
        default=defaults.scales,
        help="comma-separated CFG scales: each model uses the one with the best judged object accuracy on "
        "--validation prompts that follow the eval's (default: --scale for every model)",
    )
    parser.add_argument("--validation", type=int, default=defaults.validation, help="prompts to choose --scales on")
    parser.add_argument("--judge", help="judge folder (default: the shipped judge)")
    parser.add_argument("--clip", help="CLIP folder for scores and features (default: the shipped reference CLIP)")
    parser.add_argument("--no-negatives", dest="negatives", action="store_false", help="skip the negative checks")
    parser.add_argument("--negative-limit", type=int, default=defaults.negative_limit, help="prompts per check")
    parser.add_argument("--negative-colour", default=defaults.negative_colour)
    parser.add_argument("--negative-scale", type=float, help=NEGATIVE_SCALE_HELP)
    parser.add_argument(
        "--concepts",
        metavar="WORLD",
        help="the world the models trained on: add judged accuracy, FD and diversity per concept (colour and shape) "
        "and per head / middle / tail third of its web split's concept frequency (for long-tailed worlds)",
    )
    parser.add_argument(
        "--diversity-seeds", type=int, default=defaults.diversity_seeds, help="draws per concept, with --concepts"
    )


def add_eval_t2i_parser(subparsers) -> None:
    from recap.evaluation.t2i_eval import T2IEvalConfig

    defaults = T2IEvalConfig(models=["x"], eval="", out="")
    parser = add_command(
        subparsers,
        "eval-t2i",
        help="judge text-to-image models on a world eval split",
        description="For each eval image's prompt (its ground-truth caption, or --prompt-table's column, e.g. the "
        "image's recaption), each --model draws an image from the same seed. The judge, a classifier trained on "
        "real world images (its held-out accuracy must be >= 0.95 per attribute), reads each drawn image cell by "
        "cell: prompt-attribute accuracy is the share of prompted objects drawn in their cell with the right "
        "shape, colour and size. Also the CLIP score of image against prompt (reference CLIP, 100 x max(cos, 0)) "
        "and the Frechet distance to the real eval images in that CLIP's embedding space, and two negative-prompt "
        "checks under plain and Perp-Neg guidance. Writes OUT/eval.json, OUT/eval.md and OUT/grids/LABEL.png.",
        handler=_run_eval_t2i,
        log=log_in("out"),
    )
    parser.add_argument(
        "--model", dest="models", action="append", required=True, help="model folder or LABEL=FOLDER (repeatable)"
    )
    parser.add_argument("--out", required=True, help="folder for eval.json, eval.md and the grids")
    add_t2i_eval_arguments(parser, defaults)
    add_generation_arguments(parser)


def _run_eval_t2i(args: argparse.Namespace) -> int:
    from recap.evaluation.t2i_eval import T2IEvalConfig, T2IEvaluator

    config = config_from_args(T2IEvalConfig, args)
    report = T2IEvaluator(config, progress=not args.quiet).run()
    echo((Path(config.out) / "eval.md").read_text().split("\n## ")[0].strip())
    echo(f"\nwrote {Path(config.out) / 'eval.json'} and eval.md ({report['seconds']} s)")
    return 0
