"""Distillation: `recap distill-t2i`, the Recap-DiT made a one-step generator (SiD, SiD-LSG, SiDA)."""

from __future__ import annotations

import argparse

from recap.cli.options import add_command, add_scale_out_arguments, add_threads_argument, config_from_args, log_in
from recap.console import echo


def add_distill_t2i_parser(subparsers) -> None:
    from recap.training.distillation_config import METHODS, DistillationConfig

    defaults = DistillationConfig(teacher="", prompts="", out="")
    parser = add_command(
        subparsers,
        "distill-t2i",
        help="distil a DiT into a one-step generator (SiD)",
        description="Distil a text-to-image model (`recap train-t2i`'s, the shipped Recap-DiT by default) into a "
        "one-step generator with Score identity Distillation: a fake-score network and the generator, both copies "
        "of the frozen teacher, trained in turn on fresh prompts and noise; the generator is the teacher's "
        "denoiser applied once to pure noise at the step whose noise level is --start-sigma. SiD-LSG's guidance: "
        "--guidance-scale K sets the four kappas (--kappa1: the fake network in its own loss; --kappa2/--kappa3: "
        "the fake network in the generator loss; --kappa4: the teacher there). sid is data-free: it reads prompts "
        "(a caption table's recaptions, or a text file), never images. --method sida adds SiDA's adversarial term "
        "on real images (--train: the recaptioned shards), with its warm-up; --init starts from an earlier "
        "one-step generator (SiD, then SiDA: SiD²A). Rerunning with the same --out resumes. OUT/model is a model "
        "folder `recap sample` and `recap eval-t2i` draw from with one network call and no guidance.",
        handler=_run_distill_t2i,
        log=log_in("out"),
    )
    parser.add_argument("--teacher", help="model folder to distil (default: the shipped Recap-DiT, p=0)")
    parser.add_argument("--prompts", required=True, help="caption table (Parquet file or folder) or a text file")
    parser.add_argument("--prompt-column", default=defaults.prompt_column, help="the caption table's prompt column")
    parser.add_argument("--out", required=True, help="run folder (checkpoint/, model/, snapshots/, summary)")
    parser.add_argument("--method", choices=METHODS, default=defaults.method)
    parser.add_argument("--train", help="sida: real images (webdataset shards joined with --prompts on uid)")
    parser.add_argument("--init", help="a one-step model folder to start the generator from")
    parser.add_argument("--guidance-scale", type=float, default=defaults.guidance_scale, help="LSG's K")
    for number in range(1, 5):
        parser.add_argument(f"--kappa{number}", type=float, help="default: --guidance-scale")
    parser.add_argument("--alpha", type=float, default=defaults.alpha, help="SiD's alpha")
    parser.add_argument("--start-sigma", type=float, default=defaults.start_sigma, help="the generator's noise level")
    parser.add_argument("--iterations", type=int, default=defaults.iterations, help="fake + generator steps")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="images per step (per worker)")
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate, help="Adam, betas (0, 0.999)")
    parser.add_argument("--fake-learning-rate", type=float, help="the fake network's (default: --learning-rate)")
    parser.add_argument(
        "--prompt-dropout", type=float, default=defaults.prompt_dropout, help="fake step, with guidance"
    )
    parser.add_argument("--ema-halflife-images", type=float, default=defaults.ema_halflife_images)
    parser.add_argument(
        "--ema-rampup", type=float, default=defaults.ema_rampup, help="half-life at most this x the images seen"
    )
    parser.add_argument("--generator-warmup-images", type=int, help="sida: default 0.5%% of the run's images")
    parser.add_argument("--gan-warmup-images", type=int, help="sida: default 1%% of the run's images")
    parser.add_argument("--snapshot-every", type=int, default=0, help="save the EMA generator every N iterations")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every)
    add_threads_argument(parser)
    add_scale_out_arguments(parser)


def _run_distill_t2i(args: argparse.Namespace) -> int:
    from recap.models.assets import shipped_t2i
    from recap.training.distillation import DistillationTrainer
    from recap.training.distillation_config import DistillationConfig

    config = config_from_args(DistillationConfig, args, teacher=args.teacher or str(shipped_t2i()))
    summary = DistillationTrainer(config, progress=not args.quiet).run()
    last = summary["workers"][0]
    echo(f"one-step generator saved to {summary['model']}")
    echo(
        f"start step {summary['start_timestep']} (sigma {summary['start_sigma']:.3f}), kappas {summary['kappas']}, "
        f"{last['iterations']} iterations ({last['images_seen']} images), {last['seconds_per_iteration']} s each"
    )
    return 0
