"""Adaptation: `recap tune-clip`, a CLIP's zero-shot classifier tuned to a new image domain without labels."""

from __future__ import annotations

import argparse

from recap.cli.options import add_command, add_threads_argument, config_from_args, log_in
from recap.console import echo


def _class_specs(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def add_tune_clip_parser(subparsers) -> None:
    from recap.training.pouf_tuning import METHODS, TUNE_MODES, PoufConfig

    defaults = PoufConfig(model="", target="", out="", classes=["shape"])
    parser = add_command(
        subparsers,
        "tune-clip",
        help="adapt a CLIP's zero-shot classes to new images (POUF)",
        description="Tune a CLIP folder's zero-shot classifier on unlabeled target images with POUF: the two-way "
        "transport between the images' features and the class prompts' (cost 1 - cosine, softmaxes over the "
        "classes and over the batch) plus 0.3 x (mean entropy - entropy of the mean prediction). No label, caption "
        "or truth of the target is read: of a world split only its images/ folder. --tune prompt learns a CoOp "
        "context per class set and template (initialised from the words before the class; by default for "
        "eval-retrieval's five templates, ensembled, so the tuning starts from the zero-shot classifier "
        "eval-retrieval reports) and the logit scale, the CLIP frozen; OUT/model is the unchanged CLIP with "
        "OUT/model/pouf_prompt.pt, whose learned prompts `recap eval-retrieval` reports beside the templates (same "
        "split, one table). --tune model tunes every "
        "weight; OUT/model is the tuned CLIP (compare with `eval-retrieval --baseline`). Optimiser: the authors' "
        "SGD (momentum 0.9, Nesterov, weight decay 1e-3) with the learning rate x (1 + 2e-4 t)^-0.75 per step. "
        "The authors' code multiplies its group rates (0.1 for the prompt, 5e-5 for the model) by 0.01 a second "
        "time inside its scheduler; the defaults here are the rates it trains with: 1e-3 for the context, 5e-7 for "
        "the logit scale and the whole model. Rerunning with the same --out resumes.",
        handler=_run_tune_clip,
        log=log_in("out"),
    )
    parser.add_argument("--method", choices=METHODS, default="pouf", help="the adaptation method")
    parser.add_argument("--model", required=True, help="CLIP folder to tune (e.g. train-clip's OUT/model)")
    parser.add_argument(
        "--target",
        required=True,
        help="unlabeled target images: a world split folder, webdataset shards (tar, folder, glob) or a folder "
        "of image files",
    )
    parser.add_argument(
        "--classes",
        type=_class_specs,
        action="extend",
        required=True,
        help="class sets, comma-separated or repeated: brand, shape, colour (the world's lists, as eval-retrieval "
        "uses them) or a text file with one class name per line; several are tuned together (one context each, "
        "the loss averaged)",
    )
    parser.add_argument("--world", help="the world whose class lists --classes names, when --target is not a split")
    parser.add_argument("--tune", choices=TUNE_MODES, default=defaults.tune, help="what is tuned")
    parser.add_argument("--out", required=True, help="run folder (model/, checkpoint/, training_summary.json)")
    parser.add_argument(
        "--template",
        dest="templates",
        action="append",
        default=argparse.SUPPRESS,
        help="a prompt template with {} for the class (repeatable; ensembled); its words before the class start a "
        "learned context. Default: eval-retrieval's, " + " | ".join(defaults.templates) + " (the authors': "
        "'a photo of a {}.' alone)",
    )
    parser.add_argument("--steps", type=int, default=defaults.steps, help="optimiser steps (batches)")
    parser.add_argument(
        "--batch-size", type=int, default=defaults.batch_size, help="images per step (fewer if the target is small)"
    )
    parser.add_argument(
        "--learning-rate", type=float, default=defaults.learning_rate, help="the context's (effective) rate"
    )
    parser.add_argument(
        "--model-learning-rate",
        type=float,
        default=defaults.model_learning_rate,
        help="the logit scale's rate, and every weight's with --tune model (effective)",
    )
    parser.add_argument("--limit", type=int, help="use at most this many target images")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="the order of the batches")
    parser.add_argument(
        "--checkpoint-every", type=int, default=defaults.checkpoint_every, help="steps between checkpoints"
    )
    add_threads_argument(parser)


def _run_tune_clip(args: argparse.Namespace) -> int:
    from recap.training.pouf_tuning import PoufConfig, PoufTuner

    config = config_from_args(PoufConfig, args)
    summary = PoufTuner(config, progress=not args.quiet).run()
    scale = summary["logit_scale"]
    echo(f"model saved to {summary['model']} ({args.tune} tuned on {summary['images']} unlabeled images)")
    echo(
        f"steps {summary['steps']}, loss {summary['first_loss']} -> {summary['final_loss']} (transport "
        f"{summary['final_transport']}, IM {summary['final_information_maximisation']}), logit scale "
        f"{scale['before']:.3f} -> {scale['after']:.3f}; class sets: {', '.join(summary['class_sets'])}"
    )
    baseline = f" --baseline {args.model}" if args.tune == "model" else ""
    echo(f"compare: recap eval-retrieval --model {summary['model']}{baseline} --world EVAL_SPLIT")
    return 0
