"""The text-to-image commands: `recap train-t2i`, `recap sample`, `recap eval-t2i`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from recap.errors import RecapError

NEGATIVE_SCALE_HELP = "Perp-Neg's scale for the negative (default: --scale minus 1, the plain negative's weight on it)"


def add_t2i_parsers(subparsers) -> None:
    _add_train_t2i_parser(subparsers)
    _add_sample_parser(subparsers)
    _add_eval_t2i_parser(subparsers)
    _add_t2i_sweep_parser(subparsers)


def _add_train_t2i_parser(subparsers) -> None:
    from recap.training.t2i_training import T2ITrainingConfig

    defaults = T2ITrainingConfig(train="", out="")
    parser = subparsers.add_parser(
        "train-t2i",
        help="train a text-to-image DiT (Recap-DiT) on a mix of original captions and recaptions",
        description="Train diffusers' PixArt DiT, conditioned on the per-token output of a frozen open_clip text "
        "tower (the shipped reference CLIP by default), on webdataset shards joined with their caption table, or "
        "on a world split. The data path and caption mixing are train-clip's: each sample's text is the original "
        "caption with probability --p-original, else the recaption. DDPM loss on v (or noise) targets, caption "
        "dropout for classifier-free guidance, EMA weights, warm-up + cosine learning rate. Pixel space at "
        "--image-size (the world: 32 px); with --vae, the latents of a local diffusers AutoencoderKL folder (real "
        "data). "
        "Rerunning with the same --out resumes. The result, OUT/model, is what `recap sample` and `recap "
        "eval-t2i` load.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--p-original", type=float, default=defaults.p_original, help="share of original captions")
    _add_dit_arguments(parser, defaults)
    parser.set_defaults(handler=_run_train_t2i)


def _add_dit_arguments(parser: argparse.ArgumentParser, defaults) -> None:
    """The options train-t2i and t2i-sweep share (named like T2ITrainingConfig's fields)."""
    from recap.cli import add_training_arguments
    from recap.models.t2i import CHUNKINGS, DIT_PRESETS, PREDICTIONS, SHIPPED_TEXT_ENCODER

    add_training_arguments(parser, defaults)
    parser.add_argument("--model", default=defaults.model, choices=sorted(DIT_PRESETS), help="DiT size")
    parser.add_argument(
        "--text-encoder",
        default=SHIPPED_TEXT_ENCODER,
        help="CLIP folder or open_clip model name whose text tower conditions the DiT (frozen)",
    )
    parser.add_argument("--text-encoder-pretrained", help="weights for an open_clip name given as --text-encoder")
    parser.add_argument("--image-size", type=int, default=defaults.image_size)
    parser.add_argument("--vae", help="local diffusers AutoencoderKL folder: train in its latent space")
    parser.add_argument("--caption-dropout", type=float, default=defaults.caption_dropout)
    parser.add_argument("--ema-decay", type=float, default=defaults.ema_decay)
    parser.add_argument("--prediction", default=defaults.prediction, choices=PREDICTIONS, help="what the DiT outputs")
    parser.add_argument(
        "--text-chunking",
        default=defaults.text_chunking,
        choices=CHUNKINGS,
        help="sentences: each sentence through the text tower alone; packed: whole text, split only when too long",
    )


def _run_train_t2i(args: argparse.Namespace) -> int:
    from recap.cli import config_from_args
    from recap.training.t2i_training import T2ITrainer, T2ITrainingConfig

    config = config_from_args(T2ITrainingConfig, args)
    summary = T2ITrainer(config, progress=not args.quiet).run()
    print(f"model saved to {summary['model']}")
    print(f"steps {summary['steps']}, loss {summary['first_loss']} -> {summary['final_loss']}, ", end="")
    print(f"{summary['images_per_s']} images/s; captions chosen: {summary['caption_choices']}")
    return 0


def _add_generation_arguments(parser: argparse.ArgumentParser, *, sweep: bool = False) -> None:
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
    if not sweep:
        parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")


def _add_sample_parser(subparsers) -> None:
    from recap.models.t2i import GUIDANCE_MODES

    parser = subparsers.add_parser(
        "sample",
        help="draw images for prompts with a trained text-to-image model, as PNGs and a captioned grid",
        description="Draw one image per prompt (from --prompts, a text file with one prompt per line, or a "
        "caption table's column) with classifier-free guidance. --negative adds a negative prompt: "
        "--guidance negative puts it in the unconditional branch (as most samplers do), --guidance perp-neg "
        "subtracts only its part perpendicular to the prompt's direction (Perp-Neg), so a negative that "
        "overlaps the prompt cannot erase what the prompt asks for. The same --seed gives the same images. "
        "Writes OUT/NNNNN.png, OUT/grid.png (prompt under each image) and OUT/samples.json.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
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
    _add_generation_arguments(parser)
    parser.set_defaults(handler=_run_sample)


def read_prompts(args: argparse.Namespace) -> list[str]:
    """The prompts of `recap sample`: --prompt, then --prompts' lines, then --prompt-table's column."""
    from recap.io_utils import read_caption_table

    prompts = list(args.prompt)
    if args.prompts:
        path = Path(args.prompts)
        if not path.is_file():
            raise RecapError(f"--prompts {path}: no such file")
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        prompts += [line for line in lines if line][: args.limit]
    if args.prompt_table:
        column = read_caption_table(args.prompt_table, [args.column])[args.column].to_pylist()
        prompts += [text for text in column if text][: args.limit]
    if not prompts:
        raise RecapError("no prompts: give --prompt TEXT, --prompts FILE or --prompt-table TABLE")
    return prompts


def _run_sample(args: argparse.Namespace) -> int:
    from PIL import Image

    from recap.evaluation.image_grid import save_grid
    from recap.models.assets import shipped_t2i
    from recap.models.t2i import load_t2i

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    prompts = read_prompts(args)
    guidance = args.guidance or ("negative" if args.negative else "cfg")
    if guidance != "cfg" and not args.negative:
        raise RecapError(f"--guidance {guidance} needs --negative TEXT")
    model = load_t2i(args.model or shipped_t2i())
    images = model.generate(
        prompts,
        negative_prompts=args.negative,
        guidance=guidance,
        scale=args.scale,
        negative_scale=args.negative_scale,
        steps=args.steps,
        scheduler=args.scheduler,
        seed=args.seed,
        batch_size=args.batch_size,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(images):
        Image.fromarray(image).save(out / f"{index:05d}.png")
    caption = [f"{prompt} [-{args.negative}]" if args.negative else prompt for prompt in prompts]
    grid = save_grid(out / "grid.png", images, caption)
    record = {
        "model": str(args.model or "shipped"),
        "guidance": guidance,
        "negative": args.negative,
        **{name: getattr(args, name) for name in ("scale", "negative_scale", "steps", "scheduler", "seed")},
        "images": [
            {"file": f"{index:05d}.png", "prompt": prompt, "seed": args.seed + index}
            for index, prompt in enumerate(prompts)
        ],
    }
    (out / "samples.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"{len(images)} images in {out}; grid: {grid}")
    return 0


def _add_eval_t2i_parser(subparsers) -> None:
    from recap.evaluation.t2i_eval import T2IEvalConfig

    defaults = T2IEvalConfig(models=["x"], eval="", out="")
    parser = subparsers.add_parser(
        "eval-t2i",
        help="score text-to-image models on a world eval split with the judge, CLIP score and Frechet distance",
        description="For each eval image's prompt (its ground-truth caption, or --prompt-table's column, e.g. the "
        "image's recaption), each --model draws an image from the same seed. The judge, a classifier trained on "
        "real world images (its held-out accuracy must be >= 0.95 per attribute), reads each drawn image cell by "
        "cell: prompt-attribute accuracy is the share of prompted objects drawn in their cell with the right "
        "shape, colour and size. Also the CLIP score of image against prompt (reference CLIP, 100 x max(cos, 0)) "
        "and the Frechet distance to the real eval images in that CLIP's embedding space, and two negative-prompt "
        "checks under plain and Perp-Neg guidance. Writes OUT/eval.json, OUT/eval.md and OUT/grids/LABEL.png.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--model", dest="models", action="append", required=True, help="model folder or LABEL=FOLDER (repeatable)"
    )
    parser.add_argument("--out", required=True, help="folder for eval.json, eval.md and the grids")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_eval_arguments(parser, defaults)
    _add_generation_arguments(parser)
    parser.set_defaults(handler=_run_eval_t2i)


def _add_eval_arguments(parser: argparse.ArgumentParser, defaults) -> None:
    """The options eval-t2i and t2i-sweep share (named like T2IEvalConfig's fields)."""
    from recap.cli import float_list

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


def _run_eval_t2i(args: argparse.Namespace) -> int:
    from recap.cli import config_from_args
    from recap.evaluation.t2i_eval import T2IEvalConfig, T2IEvaluator

    config = config_from_args(T2IEvalConfig, args)
    report = T2IEvaluator(config, progress=not args.quiet).run()
    print((Path(config.out) / "eval.md").read_text().split("\n## ")[0].strip())
    print(f"\nwrote {Path(config.out) / 'eval.json'} and eval.md ({report['seconds']} s)")
    return 0


# t2i-sweep picks each model's guidance scale on validation prompts among these (the world's sweep chose 2 for
# p=0 and 4 for p=1; a scale chosen on the eval prompts themselves would flatter the model).
SWEEP_SCALES = (1.5, 2.0, 3.0, 4.0, 6.0)


def _add_t2i_sweep_parser(subparsers) -> None:
    from recap.evaluation.t2i_eval import T2IEvalConfig
    from recap.evaluation.t2i_sweep import DEFAULT_P_VALUES
    from recap.training.t2i_training import T2ITrainingConfig

    parser = subparsers.add_parser(
        "t2i-sweep",
        help="train the DiT at p=0 and p=1 (or any p) on the same data and seed, evaluate them, check the claims",
        description="Train one DiT per p in --p-values on the same shards, caption table, steps and seed (each a "
        "`recap train-t2i` run in OUT/p-P.PP, resumable; a p trained earlier with the same options is skipped), "
        "--parallel of them at once with the cores split between them; then `recap eval-t2i` on all of them into "
        "OUT/eval (same prompts, same seed), and the paper's Table 7 claims checked in OUT/sweep.md: p=0 beats "
        "p=1 on judged prompt-attribute accuracy (by >= 15 points on the world) and on CLIP score.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--p-values",
        default=",".join(str(p) for p in DEFAULT_P_VALUES),
        help="comma-separated shares of originals",
    )
    parser.add_argument("--parallel", type=int, default=2, help="p trained at once, each in its own process")
    _add_dit_arguments(parser, T2ITrainingConfig(train="", out=""))
    _add_eval_arguments(parser, T2IEvalConfig(models=["x"], eval="", out="", scales=SWEEP_SCALES))
    _add_generation_arguments(parser, sweep=True)
    parser.set_defaults(handler=_run_t2i_sweep)


def _run_t2i_sweep(args: argparse.Namespace) -> int:
    from recap.cli import _config, config_from_args, p_values_from_args
    from recap.evaluation.t2i_eval import T2IEvalConfig
    from recap.evaluation.t2i_sweep import T2ISweepConfig, run_t2i_sweep
    from recap.training.t2i_training import T2ITrainingConfig

    p_values = p_values_from_args(args)
    training = config_from_args(T2ITrainingConfig, argparse.Namespace(**vars(args), p_original=p_values[0]))
    generation = {name: getattr(args, f"eval_{name}") for name in ("steps", "seed", "batch_size")}
    evaluation = config_from_args(
        T2IEvalConfig, argparse.Namespace(**{**vars(args), **generation, "models": ["pending"], "threads": 0})
    )
    config = _config(
        T2ISweepConfig, training=training, evaluation=evaluation, p_values=p_values, parallel=args.parallel
    )
    sweep = run_t2i_sweep(config, progress=not args.quiet)
    print((Path(args.out) / "sweep.md").read_text())
    print(f"wrote {Path(args.out) / 'sweep.json'} ({sweep['seconds_this_run'] / 60:.1f} min this run)")
    return 0
