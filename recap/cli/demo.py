"""`recap demo`: the whole paper in miniature on the embedded world, with an HTML report."""

from __future__ import annotations

import argparse

from recap.cli.options import add_command, build_config, log_in


def add_demo_parser(subparsers) -> None:
    from recap.demo.runner import LOG_FILE

    parser = add_command(
        subparsers,
        "demo",
        help="run the whole paper in miniature; write a report",
        description="Generate a world, download its web split with img2dataset from a local server, recaption it "
        "with the Ray Data job (pipelines/recap_datacomp.py) and the shipped tiny LLaVA, CLIP-score both captions "
        "(pipelines/score_datacomp.py), curate a release with DataComp's CLIP-score top-30%% filter and a data card, "
        "caption the held-out eval split, train Recap-CLIP at p = 1, 0.5 and 0 for a few hundred steps and evaluate "
        "retrieval, draw eval prompts with the shipped Recap-DiT pair (p = 0 and p = 1) and judge the images; then "
        "write OUT/report/index.html (+ report.md) with every number of the run. About 8 minutes on 2 CPU cores "
        "(budget: 15). Each finished step is stored in OUT/steps/: rerunning the same command after an interruption "
        f"skips the finished steps and says so. Libraries' log lines go to OUT/{LOG_FILE} unless --verbose.",
        handler=_run_demo,
        log=log_in("out", LOG_FILE),
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
    parser.add_argument(
        "--ray-address", help="run the Ray jobs on this running cluster (default: start a local Ray for the demo)"
    )


def _run_demo(args: argparse.Namespace) -> int:
    from recap.demo import DemoConfig, run_demo

    options = dict(out=args.out, size=args.size, seed=args.seed, quick=args.quick, train_all=args.train_all)
    options.update(retrain_captioner=args.retrain_captioner, ray_address=args.ray_address)
    run_demo(build_config(DemoConfig, **options))
    return 0
