"""Training: `recap train-captioner`, `recap train-clip` and `recap train-t2i`. The option groups the sweeps share
with them (`add_clip_training_arguments`, `add_dit_arguments`) live here too."""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

from recap.cli.options import (
    add_command,
    add_threads_argument,
    add_training_arguments,
    config_from_args,
    log_in,
    weight_mix,
)
from recap.console import echo


def add_train_captioner_parser(subparsers) -> None:
    from recap.training.captioner_training import CaptionerTrainingConfig

    defaults = CaptionerTrainingConfig(train="", out="")
    parser = add_command(
        subparsers,
        "train-captioner",
        help="train a LLaVA captioner (projector, then LLM)",
        description="Train a LLaVA captioner. Without --init a tiny LLaVA is built (CLIP-ViT tower, Llama "
        "decoder, BPE tokenizer trained here) and trained in stages: vision (contrastive pretraining of the tower, "
        "a tiny CLIP standing in for OpenAI CLIP), text (language-model pretraining standing in for LLaMA-3), "
        "projector (LLaVA stage 1, short captions) and full (LLaVA stage 2, detailed captions; vision tower "
        "frozen unless --unfreeze-vision). --train/--eval take a world split folder, a Parquet file with image "
        "bytes or paths, or webdataset tars. Rerunning with the same --out resumes from the last checkpoint. "
        "The final HF folder is OUT/model.",
        handler=_run_train_captioner,
        log=log_in("out"),
    )
    parser.add_argument("--train", required=True, help="training pairs: world split folder, .parquet, or tars")
    parser.add_argument("--eval", help="a world split folder to measure caption quality during training")
    parser.add_argument("--out", required=True, help="run folder (checkpoint/, model/, training_summary.json)")
    parser.add_argument("--init", help="an HF LLaVA folder to continue training instead of building a tiny one")
    parser.add_argument("--spec", default=defaults.spec, help="tiny model size preset (tiny, micro)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    for stage in ("vision", "text", "projector", "full"):
        parser.add_argument(
            f"--{stage}-steps",
            type=int,
            default=defaults.stage_steps(stage),
            help=f"optimizer steps of the {stage} stage (0 skips it)",
        )
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--warmup-steps", type=int, default=defaults.warmup_steps)
    parser.add_argument("--unfreeze-vision", action="store_true", help="train the vision tower in the full stage")
    parser.add_argument(
        "--vision-learning-rate-scale",
        type=float,
        default=defaults.vision_learning_rate_scale,
        help="the tower's learning rate as a fraction of --learning-rate, with --unfreeze-vision",
    )
    parser.add_argument("--eval-every", type=int, default=defaults.eval_every)
    parser.add_argument("--eval-images", type=int, default=defaults.eval_images)
    parser.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every)
    parser.add_argument(
        "--prompt-mix",
        type=weight_mix,
        help="stage 2's prompt presets and weights, e.g. 'recap-datacomp-1b=0.55,alt-text-conditioned=0.15,"
        "short=0.05,reasoning=0.25'; a 'reasoning' share asks a world question about the training image (its "
        "scene's truth gives the numbered steps and the answer: LLaVA's instruction tuning, for `recap "
        "eval-reasoning`; --train must be a world split). Default: "
        + ",".join(f"{name}={weight:g}" for name, weight in defaults.prompt_mix.items()),
    )
    add_threads_argument(parser)


def _run_train_captioner(args: argparse.Namespace) -> int:
    from recap.training.captioner_training import CaptionerTrainer, CaptionerTrainingConfig

    if args.prompt_mix is None:  # the config's default mix
        del args.prompt_mix
    config = config_from_args(CaptionerTrainingConfig, args)
    metrics = CaptionerTrainer(config, progress=not args.quiet).run()
    echo(f"model saved to {Path(args.out) / 'model'}")
    if metrics:
        echo(", ".join(f"{key} {value}" for key, value in metrics.items()))
    return 0


def add_clip_training_arguments(parser: argparse.ArgumentParser, defaults) -> None:
    """The options train-clip and clip-sweep share (named like ClipTrainingConfig's fields)."""
    add_training_arguments(parser, defaults)
    parser.add_argument(
        "--model", default=defaults.model, help="open_clip model name (tiny configs included) or a CLIP folder"
    )
    parser.add_argument("--init", help="checkpoint to start from (e.g. a real ViT-B-16 state dict)")


def _add_mixed_caption_trainer(
    subparsers, name: str, *, help: str, description: str, config_class, trainer_class, add_arguments
) -> None:
    """train-clip and train-t2i: a trainer on the shared loop, over a mix of original captions and recaptions."""
    defaults = config_class(train="", out="")
    parser = add_command(
        subparsers,
        name,
        help=help,
        description=description,
        handler=partial(_run_mixed_caption_trainer, config_class, trainer_class),
        log=log_in("out"),
    )
    parser.add_argument("--p-original", type=float, default=defaults.p_original, help="share of original captions")
    add_arguments(parser, defaults)


def _run_mixed_caption_trainer(config_class, trainer_class, args: argparse.Namespace) -> int:
    summary = trainer_class(config_from_args(config_class, args), progress=not args.quiet).run()
    echo(f"model saved to {summary['model']}")
    echo(
        f"steps {summary['steps']}, loss {summary['first_loss']} -> {summary['final_loss']}, "
        f"{summary['images_per_s']} images/s; captions chosen: {summary['caption_choices']}"
    )
    return 0


def add_train_clip_parser(subparsers) -> None:
    from recap.training.clip_training import ClipTrainer, ClipTrainingConfig

    _add_mixed_caption_trainer(
        subparsers,
        "train-clip",
        help="train CLIP on a mix of alt-texts and recaptions",
        description="Train an open_clip CLIP on webdataset shards joined with their caption table (--captions: the "
        "recaption job's output or a release table) or on a world split (alt-text as the original caption, the "
        "ground truth as the recaption). Each sample's text is the original caption with probability "
        "--p-original, else the recaption, drawn anew each epoch; a missing caption falls back to the other and "
        "is counted. Images go through the recaption job's reader and decode stage. Rerunning with the same --out "
        "resumes from the last checkpoint. The result is an open_clip folder, OUT/model "
        "(open_clip.create_model_and_transforms('local-dir:OUT/model') loads it).",
        config_class=ClipTrainingConfig,
        trainer_class=ClipTrainer,
        add_arguments=add_clip_training_arguments,
    )


def add_dit_arguments(parser: argparse.ArgumentParser, defaults) -> None:
    """The options train-t2i and t2i-sweep share (named like T2ITrainingConfig's fields)."""
    from recap.models.denoiser_presets import denoiser_presets
    from recap.models.t2i import PREDICTIONS
    from recap.models.text_conditioner import CHUNKINGS, SHIPPED_TEXT_ENCODER
    from recap.training.t2i_training import BETA_LOSSES, PROCESSES

    add_training_arguments(parser, defaults)
    parser.add_argument(
        "--model",
        default=defaults.model,
        choices=denoiser_presets(),
        help="the denoiser: a PixArt DiT size, or a LEGO brick stack (lego-pg: progressive growth, 8/16/32-px "
        "windows; lego-pr: progressive refinement, 32/16/8), trained with deep supervision so that `sample "
        "--skip-bricks` can skip its top brick, and able to draw a larger canvas (`sample --size`)",
    )
    parser.add_argument(
        "--process",
        default=defaults.process,
        choices=PROCESSES,
        help="the diffusion process: ddpm (Gaussian) or beta (beta diffusion: multiplicative, on pixels in "
        "[0.60, 0.99], beta-distributed marginals; its loss is --beta-loss)",
    )
    parser.add_argument(
        "--beta-loss",
        default=defaults.beta_loss,
        choices=BETA_LOSSES,
        help="with --process beta: klub (the KL upper bounds, the authors' loss) or elbo (the KLs with the "
        "arguments swapped, the negative ELBO the paper compares against)",
    )
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
        "--cbdm-tau",
        type=float,
        default=defaults.cbdm_tau,
        metavar="TAU",
        help="CBDM's class-balancing regulariser for long-tailed data: (t/T) TAU [|e(x_t,c) - sg e(x_t,c')|^2 + "
        "1/4 |sg e(x_t,c) - e(x_t,c')|^2], c' another caption of the batch; 0 turns it off, the authors use 1.0 "
        "(costs a second denoiser pass per step)",
    )
    parser.add_argument(
        "--text-chunking",
        default=defaults.text_chunking,
        choices=CHUNKINGS,
        help="sentences: each sentence through the text tower alone; packed: whole text, split only when too long",
    )


def add_train_t2i_parser(subparsers) -> None:
    from recap.training.t2i_training import T2ITrainer, T2ITrainingConfig

    _add_mixed_caption_trainer(
        subparsers,
        "train-t2i",
        help="train a text-to-image DiT (Recap-DiT)",
        description="Train diffusers' PixArt DiT, conditioned on the per-token output of a frozen open_clip text "
        "tower (the shipped reference CLIP by default), on webdataset shards joined with their caption table, or "
        "on a world split. The data path and caption mixing are train-clip's: each sample's text is the original "
        "caption with probability --p-original, else the recaption. DDPM loss on v (or noise) targets, caption "
        "dropout for classifier-free guidance, EMA weights, warm-up + cosine learning rate. Pixel space at "
        "--image-size (the world: 32 px); with --vae, the latents of a local diffusers AutoencoderKL folder (real "
        "data). Rerunning with the same --out resumes. The result, OUT/model, is what `recap sample` and `recap "
        "eval-t2i` load.",
        config_class=T2ITrainingConfig,
        trainer_class=T2ITrainer,
        add_arguments=add_dit_arguments,
    )
