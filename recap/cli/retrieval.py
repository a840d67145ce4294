"""`recap eval-retrieval`: a CLIP's retrieval and zero-shot classification, and zero-shot before / after tuning."""

from __future__ import annotations

import argparse
from pathlib import Path

from recap.cli.options import add_command, log_in
from recap.console import echo
from recap.errors import RecapError


def add_eval_retrieval_parser(subparsers) -> None:
    parser = add_command(
        subparsers,
        "eval-retrieval",
        help="zero-shot retrieval and classification of a CLIP",
        description="Evaluate a CLIP model (an open_clip folder such as `recap train-clip`'s OUT/model, or any "
        "open_clip model name with a local --pretrained checkpoint) on the world's eval split (retrieval over each "
        "image's ground-truth captions, zero-shot brand, shape and colour) or on COCO / Flickr30k in Karpathy JSON "
        "with a local image folder, or on webdataset shards joined with a caption table. Image->text and "
        "text->image Recall@1/5/10 with several captions per image, and DataComp's mean_recall@1; ties count against "
        "the query. A folder tuned by `recap tune-clip --tune prompt` carries learned prompts: each zero-shot task "
        "of a tuned class set is then also scored with them and with the template they started from, in a before "
        "/ after table; --baseline adds another CLIP's columns (the untuned one, after --tune model). Prints "
        "Markdown; --out writes JSON + Markdown.",
        handler=_run_eval_retrieval,
        log=log_in("out"),
    )
    parser.add_argument("--model", required=True, help="CLIP folder, or an open_clip model name")
    parser.add_argument("--pretrained", help="local checkpoint for a model name (e.g. a ViT-B-16 state dict)")
    parser.add_argument(
        "--baseline", help="CLIP folder to compare with on the same data (e.g. the one tune-clip started from)"
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--world", help="a world split folder (e.g. runs/demo/world/eval)")
    source.add_argument("--karpathy", help="Karpathy-format JSON (dataset_coco.json, dataset_flickr30k.json)")
    source.add_argument("--shards", help="webdataset shards (tar, folder, glob), with --captions")
    parser.add_argument("--captions", help="caption table joined to --shards on uid")
    parser.add_argument("--column", default="re_caption", help="text column of --captions")
    parser.add_argument("--limit", type=int, help="evaluate at most this many --shards samples")
    parser.add_argument("--images", help="image root for --karpathy (COCO: the folder holding val2014/)")
    parser.add_argument("--split", default="test", help="Karpathy split to evaluate")
    parser.add_argument(
        "--concepts",
        metavar="WORLD",
        help="with --world: the world the CLIP trained on; adds zero-shot shape and colour per head / middle / tail "
        "third of its web split's concept (colour and shape) frequency, over the images of a single concept",
    )
    parser.add_argument("--out", help="folder for retrieval.json and retrieval.md")


def _load(reference: str, pretrained: str | None = None):
    from recap.models.clip import load_clip

    try:
        model, _, tokenizer = load_clip(reference, pretrained=pretrained)
    except (OSError, RuntimeError, ValueError, KeyError) as error:
        raise RecapError(f"cannot load CLIP model {reference}: {error}") from None
    side = model.visual.image_size
    return model, tokenizer, side[0] if isinstance(side, tuple) else side


def _data(args: argparse.Namespace, side: int):
    from recap.evaluation.concept_eval import concept_thirds
    from recap.evaluation.retrieval import karpathy_set, shards_set, world_sets

    if args.concepts and not args.world:
        raise RecapError("--concepts needs --world, the eval split whose images are classified")
    if args.world:
        return world_sets(args.world, side, concept_thirds(args.concepts) if args.concepts else None)
    if args.shards:
        if not args.captions:
            raise RecapError("--shards needs --captions, the caption table joined to them on uid")
        return shards_set(args.shards, args.captions, side, args.column, args.limit), []
    if not args.images:
        raise RecapError("--karpathy needs --images, the folder its file paths are relative to")
    return karpathy_set(args.karpathy, args.images, side, split=args.split), []


def _run_eval_retrieval(args: argparse.Namespace) -> int:
    from recap.evaluation.retrieval import evaluate, markdown_report
    from recap.evaluation.zero_shot_comparison import comparison_markdown, learned_prompt_zero_shot
    from recap.io_utils import write_json_atomic
    from recap.models.prompt_learner import load_learned_prompts, read_prompt_file
    from recap.report import display_path

    model, tokenizer, side = _load(args.model, args.pretrained)
    retrieval, tasks = _data(args, side)
    results = evaluate(model, tokenizer, retrieval, tasks, progress=not args.quiet)
    results["model"] = args.model
    try:
        learners = load_learned_prompts(args.model, model, tokenizer) if not args.pretrained else {}
    except (ValueError, TypeError) as error:
        raise RecapError(f"cannot use the learned prompts of {args.model}: {error}") from None
    if learners:
        payload = read_prompt_file(args.model)
        results["learned_prompts"] = {
            "class_sets": {name: learner.classes for name, learner in learners.items()},
            "templates": {name: list(learner.templates) for name, learner in learners.items()},
            "record": payload["record"],
            "tasks": learned_prompt_zero_shot(model, tokenizer, learners, tasks),
        }
    if args.baseline:
        baseline, baseline_tokenizer, baseline_side = _load(args.baseline)
        if baseline_side != side:
            retrieval, tasks = _data(args, baseline_side)
        results["baseline"] = evaluate(baseline, baseline_tokenizer, retrieval, tasks, progress=not args.quiet)
        results["baseline"]["model"] = args.baseline
    report = markdown_report(results, display_path(args.model))
    baseline_label = display_path(args.baseline) if args.baseline else None
    comparison = comparison_markdown(results, "tuned" if args.baseline else "this CLIP", baseline_label)
    report += "\n" + comparison if comparison else ""
    echo(report)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / "retrieval.json", results)
        (out / "retrieval.md").write_text(report)
        echo(f"written to {out / 'retrieval.json'} and {out / 'retrieval.md'}")
    return 0
