"""`recap eval-reasoning`: a captioner answers InfiMM-Eval-format questions with reasoning steps."""

from __future__ import annotations

import argparse
from pathlib import Path

from recap.cli.options import add_command, add_threads_argument, config_from_args, log_in, set_threads
from recap.console import echo


def add_eval_reasoning_parser(subparsers) -> None:
    parser = add_command(
        subparsers,
        "eval-reasoning",
        help="open-ended reasoning questions (InfiMM-Eval's format)",
        description="Ask a captioner (any LLaVA folder; transformers or vLLM backend) each question of a file in "
        "InfiMM-Eval's format (core-mm-wo-answer.json, or a world's eval/reasoning.json from `recap world "
        "--reasoning N`) with a prompt that asks for numbered reasoning steps and a final 'Answer:' line. A "
        "multi-image question is shown to the single-image model as one grid image (the output says so). Writes "
        "OUT/submission.json ({key: response}, the form InfiMM-Eval's authors score) and OUT/responses.jsonl; where "
        "the file carries answers and steps (the world's), scores them by InfiMM-Eval's rule with a deterministic "
        "matcher (full marks for a right final answer, else credit for the reference steps stated; High counts "
        "twice), beside a random-answer and an always-same-answer baseline, as OUT/reasoning.json and .md. That is "
        "a 'world reasoning score, InfiMM-Eval rules', not an InfiMM-Eval score.",
        handler=_run_eval_reasoning,
        log=log_in("out"),
    )
    parser.add_argument("--model", help="captioner folder (default: the shipped tiny captioner)")
    parser.add_argument("--questions", required=True, help="question file in InfiMM-Eval's format")
    parser.add_argument(
        "--images", help="folder the questions' 'Image path' entries are relative to (default: the file's folder)"
    )
    parser.add_argument("--out", required=True, help="folder for the submission, responses and scores")
    parser.add_argument("--backend", choices=("transformers", "vllm"), default="transformers")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=256, help="room for the steps and the answer")
    parser.add_argument("--limit", type=int, help="answer only the first N questions")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"))
    add_threads_argument(parser)


def _run_eval_reasoning(args: argparse.Namespace) -> int:
    from recap.evaluation.reasoning_eval import ReasoningEvalConfig, evaluate_reasoning
    from recap.models.assets import shipped_captioner

    set_threads(args.threads)
    config = config_from_args(ReasoningEvalConfig, args, model=args.model or str(shipped_captioner()))
    report = evaluate_reasoning(config, progress=not args.quiet)
    echo((Path(args.out) / "reasoning.md").read_text())
    if report["truncated"]:
        echo(f"{report['truncated']} responses hit --max-new-tokens ({args.max_new_tokens}) before they ended")
    return 0
