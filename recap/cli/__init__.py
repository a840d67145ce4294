"""The `recap` command: one entry point, one subcommand per stage of the pipeline."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from recap import __version__
from recap.errors import RecapError

DESCRIPTION = """\
recap recaptions web-scale image-text datasets (DataComp-style) with a LLaVA captioner and curates them
for training, reproducing Recap-DataComp-1B. Every stage also runs offline on an embedded synthetic world
whose ground truth is known, so caption quality is measured rather than assumed.

Typical flow on the embedded world:
  recap world --out runs/world --size 2000        # synthetic DataComp-like metadata + images + truth
  recap download --world runs/world --out runs/shards   # img2dataset over a local web server
  recap demo --out runs/demo                      # all of the above with a summary
"""


def _parse_mix(text: str) -> dict[str, float]:
    """'descriptive=0.3,generic=0.1' -> {'descriptive': 0.3, 'generic': 0.1}"""
    mix = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        try:
            mix[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise argparse.ArgumentTypeError(f"expected KIND=WEIGHT pairs separated by commas, got {item!r}")
    return mix


def _add_world_parser(subparsers) -> None:
    from recap.world.captions import ALT_TEXT_KINDS, DEFAULT_ALT_TEXT_MIX
    from recap.world.vocabulary import DIFFICULTIES

    parser = subparsers.add_parser(
        "world",
        help="generate the embedded synthetic web dataset",
        description="Generate a synthetic, DataComp-shaped web dataset with known ground truth: images of "
        "objects (shape, colour, size, position, brand marks), noisy web alt-text, DataComp metadata Parquet, "
        "ground-truth scenes and detailed captions, in splits web / sft / eval. Prints the alt-text's quality "
        "against the ground truth. The same --seed always gives the same files.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", required=True, help="folder to create (must be new or empty, or use --overwrite)")
    parser.add_argument("--size", type=int, default=1000, help="images in the web split (the data to recaption)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the world is a pure function of it")
    parser.add_argument("--sft-size", type=int, help="images in the sft split (default: --size)")
    parser.add_argument("--eval-size", type=int, help="images in the eval split (default: --size/4, at least 50)")
    parser.add_argument(
        "--difficulty", choices=sorted(DIFFICULTIES), default="normal", help="how hard images are to read"
    )
    parser.add_argument("--image-size", type=int, default=64, help="base image side in pixels (web copies vary 1-2x)")
    parser.add_argument("--png-fraction", type=float, default=0.1, help="share of images stored as PNG, not JPEG")
    parser.add_argument(
        "--alt-text-mix",
        type=_parse_mix,
        help=f"weights of alt-text kinds {', '.join(ALT_TEXT_KINDS)}, e.g. 'descriptive=0.5,generic=0.5' "
        f"(default: {','.join(f'{k}={v}' for k, v in DEFAULT_ALT_TEXT_MIX.items())})",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing world at --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=_run_world)


def _run_world(args: argparse.Namespace) -> int:
    from recap.report import quality_table
    from recap.world.generate import WorldConfig, generate_world

    options = dict(seed=args.seed, size=args.size, sft_size=args.sft_size, eval_size=args.eval_size)
    options.update(difficulty=args.difficulty, image_size=args.image_size, png_fraction=args.png_fraction)
    if args.alt_text_mix:
        options["alt_text_mix"] = args.alt_text_mix
    config = _config(WorldConfig, **options)
    manifest = generate_world(config, args.out, overwrite=args.overwrite, progress=not args.quiet)
    print(f"world written to {args.out}")
    for split, info in manifest["splits"].items():
        print(f"  {split}: {info['size']} images ({info['image_formats']}), alt-text kinds {info['alt_kinds']}")
    print("\nalt-text quality against the ground truth (web split):")
    print(quality_table({"alt-text": manifest["splits"]["web"]["alt_text_quality"]}))
    return 0


def _add_download_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "download",
        help="download a metadata folder into webdataset shards with img2dataset",
        description="Run img2dataset on a DataComp-style metadata folder (Parquet with uid, url, text, sha256) "
        "and write webdataset shards (NNNNN.tar with .jpg/.txt/.json per sample, NNNNN.parquet, NNNNN_stats.json), "
        "keeping uid. With --world, the world's images are first served on 127.0.0.1 (dead links, timeouts and "
        "corrupt bodies included) and its --split metadata is downloaded. A rerun resumes finished shards. "
        "With --distributor ray the shards are downloaded as Ray tasks on a cluster (see also "
        "pipelines/download_datacomp.py, the same as a Ray job). Prints the success rate and failures by "
        "reason, and writes download_summary.json.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--metadata", help="folder of DataComp metadata .parquet files (real data: no server)")
    source.add_argument("--world", help="a folder made by `recap world`: serve it locally and download it")
    parser.add_argument("--split", default="web", choices=("web", "sft", "eval"), help="world split, with --world")
    parser.add_argument("--out", required=True, help="output folder for the shards")
    parser.add_argument("--image-size", type=int, help="resize target in pixels (default: 512, or the world's)")
    parser.add_argument("--resize-mode", default="keep_ratio_largest", help="img2dataset resize mode")
    parser.add_argument("--samples-per-shard", type=int, help="samples per tar (default: 10000, or 1000 for a world)")
    parser.add_argument("--processes", type=int, default=2, help="img2dataset processes")
    parser.add_argument("--threads", type=int, default=32, help="download threads per process")
    parser.add_argument(
        "--timeout", type=int, help="seconds before a download is given up (default: 10, 3 for a world)"
    )
    parser.add_argument("--retries", type=int, default=0, help="retries per URL")
    parser.add_argument("--url-col", default="url", help="metadata column with the image URL")
    parser.add_argument("--caption-col", default="text", help="metadata column with the alt-text")
    parser.add_argument("--keep-columns", default="uid", help="comma-separated metadata columns kept in each sample")
    parser.add_argument("--no-verify-hash", action="store_true", help="do not check downloads against sha256")
    parser.add_argument(
        "--distributor",
        choices=("multiprocessing", "ray"),
        default="multiprocessing",
        help="img2dataset's distributor: --processes on this machine, or one Ray task (1 CPU) per shard on a "
        "Ray cluster (the output must then be reachable from every node: an object store or a shared folder)",
    )
    parser.add_argument(
        "--ray-address",
        help="with --distributor ray: the cluster to join (default: RAY_ADDRESS, the cluster `ray start` began on "
        "this machine, or a local Ray; 'local' always starts a fresh one)",
    )
    parser.set_defaults(handler=_run_download)


def _run_download(args: argparse.Namespace) -> int:
    from recap.ingest.download import DownloadConfig, download, download_world, world_settings
    from recap.report import download_report

    defaults = {"metadata": args.metadata, "image_size": 512, "samples_per_shard": 10_000, "timeout": 10}
    if args.world:
        defaults = world_settings(args.world, args.split)
    config = _config(
        DownloadConfig,
        metadata=defaults["metadata"],
        out=args.out,
        image_size=args.image_size or defaults["image_size"],
        resize_mode=args.resize_mode,
        samples_per_shard=args.samples_per_shard or defaults["samples_per_shard"],
        processes=args.processes,
        threads=args.threads,
        timeout=args.timeout or defaults["timeout"],
        retries=args.retries,
        url_column=args.url_col,
        caption_column=args.caption_col,
        keep_columns=tuple(c.strip() for c in args.keep_columns.split(",") if c.strip()),
        verify_hash=not args.no_verify_hash,
        distributor=args.distributor,
        ray_address=args.ray_address,
    )
    summary = download_world(args.world, args.split, config) if args.world else download(config)
    print(download_report(summary.to_dict()))
    print(f"shards in {args.out}")
    return 0


def _add_train_captioner_parser(subparsers) -> None:
    from recap.training.captioner_training import CaptionerTrainingConfig

    defaults = CaptionerTrainingConfig(train="", out="")
    parser = subparsers.add_parser(
        "train-captioner",
        help="train the captioner (LLaVA recipe: projector, then projector + language model)",
        description="Train a LLaVA captioner. Without --init a tiny LLaVA is built (CLIP-ViT tower, Llama "
        "decoder, BPE tokenizer trained here) and trained in stages: vision (contrastive pretraining of the tower, "
        "a tiny CLIP standing in for OpenAI CLIP), text (language-model pretraining standing in for LLaMA-3), "
        "projector (LLaVA stage 1, short captions) and full (LLaVA stage 2, detailed captions; vision tower "
        "frozen unless --unfreeze-vision). --train/--eval take a world split folder, a Parquet file with image "
        "bytes or paths, or webdataset tars. Rerunning with the same --out resumes from the last checkpoint. "
        "The final HF folder is OUT/model.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
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
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=_run_train_captioner)


def _run_train_captioner(args: argparse.Namespace) -> int:
    from recap.training.captioner_training import CaptionerTrainer, CaptionerTrainingConfig

    config = config_from_args(CaptionerTrainingConfig, args)
    metrics = CaptionerTrainer(config, progress=not args.quiet).run()
    print(f"model saved to {Path(args.out) / 'model'}")
    if metrics:
        print(", ".join(f"{key} {value}" for key, value in metrics.items()))
    return 0


def add_training_arguments(parser: argparse.ArgumentParser, defaults) -> None:
    """The options every trainer on the shared loop takes (named like MixedCaptionConfig's fields)."""
    parser.add_argument("--train", required=True, help="webdataset shards (tar, folder, glob) or a world split folder")
    parser.add_argument("--captions", help="caption table joined to the shards on uid (not for a world split)")
    parser.add_argument("--out", required=True, help="run folder (checkpoint/, model/, training_summary.json)")
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--warmup-steps", type=int, default=defaults.warmup_steps)
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every)
    parser.add_argument("--max-grad-norm", type=float, default=defaults.max_grad_norm, help="clip the gradient norm")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="1: train in this process; N: N Ray Train workers with DDP, each reading its own shards and taking "
        "--batch-size samples per step (OUT must be on storage every worker sees)",
    )
    parser.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs per Ray Train worker")
    parser.add_argument("--gpus", action="store_true", help="one GPU per Ray Train worker (NCCL) instead of gloo")
    parser.add_argument("--ray-address", help="Ray cluster for --workers > 1 (default: RAY_ADDRESS or a local Ray)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_clip_training_arguments(parser: argparse.ArgumentParser, defaults) -> None:
    """The options train-clip and clip-sweep share (named like ClipTrainingConfig's fields)."""
    add_training_arguments(parser, defaults)
    parser.add_argument(
        "--model", default=defaults.model, help="open_clip model name (tiny configs included) or a CLIP folder"
    )
    parser.add_argument("--init", help="checkpoint to start from (e.g. a real ViT-B-16 state dict)")


def _add_train_clip_parser(subparsers) -> None:
    from recap.training.clip_training import ClipTrainingConfig

    defaults = ClipTrainingConfig(train="", out="")
    parser = subparsers.add_parser(
        "train-clip",
        help="train CLIP with open_clip on a mix of original captions and recaptions",
        description="Train an open_clip CLIP on webdataset shards joined with their caption table (--captions: the "
        "recaption job's output or a release table) or on a world split (alt-text as the original caption, the "
        "ground truth as the recaption). Each sample's text is the original caption with probability "
        "--p-original, else the recaption, drawn anew each epoch; a missing caption falls back to the other and "
        "is counted. Images go through the recaption job's reader and decode stage. Rerunning with the same --out "
        "resumes from the last checkpoint. The result is an open_clip folder, OUT/model "
        "(open_clip.create_model_and_transforms('local-dir:OUT/model') loads it).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--p-original", type=float, default=defaults.p_original, help="share of original captions")
    _add_clip_training_arguments(parser, defaults)
    parser.set_defaults(handler=_run_train_clip)


def _run_train_clip(args: argparse.Namespace) -> int:
    from recap.training.clip_training import ClipTrainer, ClipTrainingConfig

    config = config_from_args(ClipTrainingConfig, args)
    summary = ClipTrainer(config, progress=not args.quiet).run()
    print(f"model saved to {summary['model']}")
    print(f"steps {summary['steps']}, loss {summary['first_loss']} -> {summary['final_loss']}, ", end="")
    print(f"{summary['images_per_s']} images/s; captions chosen: {summary['caption_choices']}")
    return 0


def _add_clip_sweep_parser(subparsers) -> None:
    from recap.evaluation.clip_sweep import DEFAULT_MODEL, DEFAULT_P_VALUES
    from recap.training.clip_training import ClipTrainingConfig

    defaults = ClipTrainingConfig(train="", out="", model=DEFAULT_MODEL)
    parser = subparsers.add_parser(
        "clip-sweep",
        help="train CLIP at several shares of original captions p and print the paper's Table 3 for them",
        description="Train one CLIP per p in --p-values on the same shards, caption table, steps and seed (each a "
        "`recap train-clip` run in OUT/p-P.PP, resumable), evaluate each on a world eval split (retrieval over the "
        "ground-truth captions; zero-shot brand, shape and colour) and write the table in the shape of the "
        "paper's Table 3 to OUT/sweep.md and OUT/sweep.json, with whether the paper's claims hold (p=0 beats p=1 "
        "on retrieval, p=1 beats p=0 on brand names, a middle p keeps both). A p already evaluated with the same "
        "training options is skipped.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--p-values",
        default=",".join(str(p) for p in DEFAULT_P_VALUES),
        help="comma-separated shares of original captions to train",
    )
    parser.add_argument("--eval", required=True, help="world split folder to evaluate on (e.g. WORLD/eval)")
    parser.add_argument(
        "--parallel",
        type=int,
        default=1,
        help="p runs at once, each in its own process with cores / N torch threads (on 2 cores, 2 one-thread "
        "runs finish the sweep sooner than one two-thread run after another)",
    )
    _add_clip_training_arguments(parser, defaults)
    parser.set_defaults(handler=_run_clip_sweep)


def _run_clip_sweep(args: argparse.Namespace) -> int:
    from recap.evaluation.clip_sweep import ClipSweepConfig, markdown_table, run_sweep
    from recap.training.clip_training import ClipTrainingConfig

    p_values = p_values_from_args(args)
    training = config_from_args(ClipTrainingConfig, argparse.Namespace(**vars(args), p_original=p_values[0]))
    sweep = run_sweep(
        _config(ClipSweepConfig, training=training, eval=args.eval, p_values=p_values, parallel=args.parallel),
        progress=not args.quiet,
    )
    print(markdown_table(sweep))
    print(f"written to {Path(args.out) / 'sweep.md'} and {Path(args.out) / 'sweep.json'}")
    return 0


def _add_eval_retrieval_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval-retrieval",
        help="zero-shot retrieval (R@1/5/10 both ways, mean_recall@1) and classification of a CLIP model",
        description="Evaluate a CLIP model (an open_clip folder such as `recap train-clip`'s OUT/model, or any "
        "open_clip model name with a local --pretrained checkpoint) on the world's eval split (retrieval over each "
        "image's ground-truth captions, zero-shot brand, shape and colour) or on COCO / Flickr30k in Karpathy JSON "
        "with a local image folder, or on webdataset shards joined with a caption table. Image->text and "
        "text->image Recall@1/5/10 with several captions per image, and DataComp's mean_recall@1; ties count against "
        "the query. Prints Markdown; --out writes JSON + Markdown.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="CLIP folder, or an open_clip model name")
    parser.add_argument("--pretrained", help="local checkpoint for a model name (e.g. a ViT-B-16 state dict)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--world", help="a world split folder (e.g. runs/demo/world/eval)")
    source.add_argument("--karpathy", help="Karpathy-format JSON (dataset_coco.json, dataset_flickr30k.json)")
    source.add_argument("--shards", help="webdataset shards (tar, folder, glob), with --captions")
    parser.add_argument("--captions", help="caption table joined to --shards on uid")
    parser.add_argument("--column", default="re_caption", help="text column of --captions")
    parser.add_argument("--limit", type=int, help="evaluate at most this many --shards samples")
    parser.add_argument("--images", help="image root for --karpathy (COCO: the folder holding val2014/)")
    parser.add_argument("--split", default="test", help="Karpathy split to evaluate")
    parser.add_argument("--out", help="folder for retrieval.json and retrieval.md")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_run_eval_retrieval)


def _run_eval_retrieval(args: argparse.Namespace) -> int:
    from recap.evaluation.retrieval import evaluate, karpathy_set, markdown_report, shards_set, world_sets
    from recap.io_utils import write_json_atomic
    from recap.models.clip import load_clip

    try:
        model, _, tokenizer = load_clip(args.model, pretrained=args.pretrained)
    except (OSError, RuntimeError, ValueError, KeyError) as error:
        raise RecapError(f"cannot load CLIP model {args.model}: {error}") from None
    side = model.visual.image_size
    side = side[0] if isinstance(side, tuple) else side
    if args.world:
        retrieval, tasks = world_sets(args.world, side)
    elif args.shards:
        if not args.captions:
            raise RecapError("--shards needs --captions, the caption table joined to them on uid")
        retrieval, tasks = shards_set(args.shards, args.captions, side, args.column, args.limit), []
    else:
        if not args.images:
            raise RecapError("--karpathy needs --images, the folder its file paths are relative to")
        retrieval, tasks = karpathy_set(args.karpathy, args.images, side, split=args.split), []
    results = evaluate(model, tokenizer, retrieval, tasks, progress=not args.quiet)
    results["model"] = args.model
    report = markdown_report(results, args.model)
    print(report)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / "retrieval.json", results)
        (out / "retrieval.md").write_text(report)
        print(f"written to {out / 'retrieval.json'} and {out / 'retrieval.md'}")
    return 0


def _add_eval_captions_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval-captions",
        help="score a caption column of a table against the world's ground truth",
        description="Join a table (Parquet file or folder, with a uid column) to the embedded world's ground "
        "truth by uid and print precision (1 - hallucination rate), recall (coverage), per-attribute accuracy "
        "and mean length of --column beside the table's original alt-text (--baseline).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--table", required=True, help="Parquet file or folder of them, with uid")
    parser.add_argument("--world", required=True, help="the world folder the table's samples come from")
    parser.add_argument("--column", default="re_caption", help="caption column to score")
    parser.add_argument("--baseline", default="org_caption", help="column to show beside it (skipped if absent)")
    parser.set_defaults(handler=_run_eval_captions)


def _run_eval_captions(args: argparse.Namespace) -> int:
    from recap.caption_quality import score_table
    from recap.report import quality_table
    from recap.world.generate import load_manifest

    load_manifest(args.world)
    result = score_table(args.table, args.world, column=args.column, baseline=args.baseline)
    print(quality_table(result["summaries"]))
    print(
        f"rows {result['rows']}, null captions skipped {result['skipped_null']}, uids not in the world "
        f"{result['unknown_uid']}"
    )
    return 0


def _add_caption_parser(subparsers) -> None:
    from recap.jobs.caption import add_job_arguments

    parser = subparsers.add_parser(
        "caption",
        help="recaption webdataset shards (the Ray Data job of pipelines/recap_datacomp.py)",
        description="Read webdataset shards, decode and resize images on CPU workers, caption them with a LLaVA "
        "actor pool, and write one Parquet caption table per shard (schemas/caption_table.v1.json), a completion "
        "marker per shard, a run manifest and _run_summary.json. Every input sample appears exactly once, as a "
        "caption or as an error row. --resume skips finished shards.",
    )
    add_job_arguments(parser)
    parser.set_defaults(handler=_run_caption)


def _run_caption(args: argparse.Namespace) -> int:
    import json

    from recap.jobs.caption import config_from_args, run_caption_job

    summary = run_caption_job(config_from_args(args), progress=not args.quiet)
    print(json.dumps(summary, indent=2))
    return 0


def _add_score_parser(subparsers) -> None:
    from recap.jobs.score import add_score_arguments

    parser = subparsers.add_parser(
        "score",
        help="CLIP-score both captions of recaptioned shards (the Ray Data job of pipelines/score_datacomp.py)",
        description="Read webdataset shards with their caption tables (--captions: the recaption job's output), "
        "encode each image once with a CLIP (the shipped reference CLIP unless --clip says otherwise) and write one "
        "scored table per shard (schemas/scored_table.v1.json): the caption table with re_clip_score and "
        "org_clip_score = 100 x max(cosine, 0), the scorer's columns, a completion marker per shard, a run "
        "manifest and _run_summary.json (with how many captions were longer than the CLIP's text context). "
        "Every row of every caption table appears exactly once. --resume skips finished shards.",
    )
    add_score_arguments(parser)
    parser.set_defaults(handler=_run_score)


def _run_score(args: argparse.Namespace) -> int:
    import json

    from recap.jobs.score import config_from_args, run_score_job

    summary = run_score_job(config_from_args(args), progress=not args.quiet)
    print(json.dumps(summary, indent=2))
    return 0


def _add_curate_parser(subparsers) -> None:
    from recap.curation.curate import PRESETS, REASONS

    parser = subparsers.add_parser(
        "curate",
        help="filter scored tables into a release with an exclusion table and a data card",
        description="Apply DataComp-style filters to the scored tables (`recap score`'s output) and write OUT/release/"
        "part-NNNNN.parquet (Recap-DataComp-1B's columns first, then ours), OUT/exclusions.parquet (every dropped "
        "row with its reason), and a data card (data_card.md, data_card.json, histograms as PNG). Each row is "
        f"dropped for the first reason that applies, in this order: {', '.join(REASONS)}; kept + dropped = input. "
        f"Presets: {'; '.join(f'{name} = {settings}' for name, settings in PRESETS.items())}.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--scored", required=True, help="folder of scored tables (recap score --output)")
    parser.add_argument("--out", required=True, help="folder for the release, exclusions and data card (replaced)")
    parser.add_argument("--preset", choices=sorted(PRESETS), help="a named filter set; other options override it")
    parser.add_argument("--score-column", choices=("org_clip_score", "re_clip_score"), help="score the filters use")
    parser.add_argument("--min-score", type=float, help="drop rows whose CLIP score is below this")
    parser.add_argument("--top-fraction", type=float, help="keep this share of all scored rows, by CLIP score")
    parser.add_argument("--min-alt-text-words", type=int, help="drop alt-texts with fewer words")
    parser.add_argument("--min-recaption-words", type=int, help="drop recaptions with fewer words")
    parser.add_argument("--min-side", type=int, help="drop images whose original short side is smaller (px)")
    parser.add_argument("--max-aspect", type=float, help="drop images whose long side / short side is larger")
    parser.add_argument(
        "--dedup",
        action=argparse.BooleanOptionalAction,
        help="drop exact duplicate images by sha256 (one copy kept) and placeholders (default: on)",
    )
    parser.add_argument("--placeholder-urls", type=int, help="a sha256 shared by this many URLs is a placeholder")
    parser.add_argument("--dedup-captions", action="store_true", default=None, help="drop repeated alt-texts")
    parser.add_argument("--rows-per-file", type=int, help="rows per release file (default 100000)")
    parser.add_argument("--world", help="a world folder: add caption quality against its ground truth to the card")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_run_curate)


def _run_curate(args: argparse.Namespace) -> int:
    from recap.curation.curate import CurateConfig, curate

    options = {name: getattr(args, name) for name in (
        "scored", "out", "score_column", "min_score", "top_fraction", "min_alt_text_words", "min_recaption_words",
        "min_side", "max_aspect", "dedup", "placeholder_urls", "dedup_captions", "rows_per_file", "world",
    )}  # fmt: skip
    try:
        config = CurateConfig.with_preset(args.preset, **options)
    except ValueError as error:
        raise RecapError(str(error)) from None
    card = curate(config, progress=not args.quiet)
    print(f"{'input':>20} {card['rows_in']:>10}")
    for step in card["funnel"]:
        if step["dropped"]:
            print(f"{step['reason']:>20} {-step['dropped']:>10} -> {step['remaining']}")
    print(f"{'kept':>20} {card['rows_kept']:>10}")
    files = len(card["release"]["files"])
    print(f"release: {config.out}/release ({files} file(s)); data card: {config.out}/data_card.md")
    return 0


def _add_demo_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the whole paper in miniature on the embedded world and write an HTML report",
        description="Generate a world, download its web split with img2dataset from a local server, recaption it "
        "with the Ray Data job (pipelines/recap_datacomp.py) and the shipped tiny LLaVA, CLIP-score both captions "
        "(pipelines/score_datacomp.py), curate a release with DataComp's CLIP-score top-30%% filter and a data card, "
        "caption the held-out eval split, train Recap-CLIP at p = 1, 0.5 and 0 for a few hundred steps and evaluate "
        "retrieval, draw eval prompts with the shipped Recap-DiT pair (p = 0 and p = 1) and judge the images; then "
        "write OUT/report/index.html (+ report.md) with every number of the run. About 8 minutes on 2 CPU cores "
        "(budget: 15). Each finished step is stored in OUT/steps/: rerunning the same command after an interruption "
        "skips the finished steps and says so. Libraries' log lines go to OUT/demo.log unless --verbose.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", default="runs/demo", help="folder for every output of the demo")
    parser.add_argument("--size", type=int, default=2000, help="images in the web split")
    parser.add_argument("--seed", type=int, default=0, help="world seed")
    parser.add_argument(
        "--quick", action="store_true", help="a test-sized run: 200 images and a few training steps (about 2 min)"
    )
    parser.add_argument(
        "--train-all",
        action="store_true",
        help="train everything instead of using shipped checkpoints: the captioner (about 30 min), the Recap-DiT "
        "pair (about 25 min) and Recap-CLIP for 1,000 steps per p; well over the 15-minute budget",
    )
    parser.add_argument(
        "--retrain-captioner",
        action="store_true",
        help="retrain the tiny captioner with the shipped recipe (about 30 minutes) instead of using the shipped one",
    )
    parser.add_argument("--verbose", action="store_true", help="show the libraries' log lines (Ray, transformers)")
    parser.add_argument(
        "--ray-address", help="run the Ray jobs on this running cluster (default: start a local Ray for the demo)"
    )
    parser.set_defaults(handler=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from recap.demo import DemoConfig, run_demo

    options = dict(out=args.out, size=args.size, seed=args.seed, quick=args.quick, train_all=args.train_all)
    options.update(retrain_captioner=args.retrain_captioner, verbose=args.verbose, ray_address=args.ray_address)
    run_demo(_config(DemoConfig, **options))
    return 0


def float_list(text: str) -> tuple[float, ...]:
    """An argparse type: comma-separated numbers ("1.0,0.5,0.0") as a tuple."""
    try:
        return tuple(float(value) for value in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers like 1.0,0.5,0.0, got {text!r}") from None


def p_values_from_args(args: argparse.Namespace) -> tuple[float, ...]:
    """--p-values of the sweeps, or a RecapError that shows the expected form."""
    try:
        return float_list(args.p_values)
    except argparse.ArgumentTypeError:
        raise RecapError(f"--p-values must be numbers like 1.0,0.5,0.0, got {args.p_values!r}") from None


def config_from_args(cls, args: argparse.Namespace):
    """A config dataclass from the parsed options named like its fields (the others keep their defaults)."""
    from dataclasses import fields

    return _config(cls, **{f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)})


def _config(cls, **options):
    """Build a config dataclass, turning its validation errors into user-facing ones."""
    try:
        return cls(**options)
    except ValueError as error:
        raise RecapError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recap", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"recap {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command")
    _add_world_parser(subparsers)
    _add_download_parser(subparsers)
    _add_caption_parser(subparsers)
    _add_score_parser(subparsers)
    _add_curate_parser(subparsers)
    _add_train_captioner_parser(subparsers)
    _add_train_clip_parser(subparsers)
    _add_eval_captions_parser(subparsers)
    _add_eval_retrieval_parser(subparsers)
    _add_clip_sweep_parser(subparsers)
    from recap.cli.t2i import add_t2i_parsers  # the text-to-image commands live in their own file

    add_t2i_parsers(subparsers)
    _add_demo_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        return args.handler(args)
    except RecapError as error:
        print(f"recap {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("recap: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
