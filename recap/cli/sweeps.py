"""The paper's tables: `recap clip-sweep` (Table 3, Recap-CLIP at several p) and `recap t2i-sweep` (Table 7,
Recap-DiT at p = 0 and 1). Each trains one run per p, evaluates them alike and checks the paper's claims."""

from __future__ import annotations

import argparse
from pathlib import Path

from recap.cli.evaluation import add_generation_arguments, add_t2i_eval_arguments
from recap.cli.options import (
    add_command,
    add_p_values_argument,
    build_config,
    config_from_args,
    log_in,
    p_values_from_args,
)
from recap.cli.training import add_clip_training_arguments, add_dit_arguments
from recap.console import echo

# t2i-sweep picks each model's guidance scale on validation prompts among these (the world's sweep chose 2 for
# p=0 and 4 for p=1; a scale chosen on the eval prompts themselves would flatter the model).
SWEEP_SCALES = (1.5, 2.0, 3.0, 4.0, 6.0)


def add_clip_sweep_parser(subparsers) -> None:
    from recap.evaluation.clip_sweep import DEFAULT_MODEL, DEFAULT_P_VALUES
    from recap.training.clip_training import ClipTrainingConfig

    parser = add_command(
        subparsers,
        "clip-sweep",
        help="Recap-CLIP at several p: the paper's Table 3",
        description="Train one CLIP per p in --p-values on the same shards, caption table, steps and seed (each a "
        "`recap train-clip` run in OUT/p-P.PP, resumable), evaluate each on a world eval split (retrieval over the "
        "ground-truth captions; zero-shot brand, shape and colour) and write the table in the shape of the "
        "paper's Table 3 to OUT/sweep.md and OUT/sweep.json, with whether the paper's claims hold (p=0 beats p=1 "
        "on retrieval, p=1 beats p=0 on brand names, a middle p keeps both). A p already evaluated with the same "
        "training options is skipped.",
        handler=_run_clip_sweep,
        log=log_in("out"),
    )
    add_p_values_argument(parser, DEFAULT_P_VALUES)
    parser.add_argument("--eval", required=True, help="world split folder to evaluate on (e.g. WORLD/eval)")
    parser.add_argument(
        "--parallel",
        type=int,
        default=1,
        help="p runs at once, each in its own process with cores / N torch threads (on 2 cores, 2 one-thread "
        "runs finish the sweep sooner than one two-thread run after another)",
    )
    add_clip_training_arguments(parser, ClipTrainingConfig(train="", out="", model=DEFAULT_MODEL))


def _run_clip_sweep(args: argparse.Namespace) -> int:
    from recap.evaluation.clip_sweep import ClipSweepConfig, markdown_table, run_sweep
    from recap.training.clip_training import ClipTrainingConfig

    p_values = p_values_from_args(args)
    training = config_from_args(ClipTrainingConfig, args, p_original=p_values[0])
    sweep = run_sweep(
        build_config(ClipSweepConfig, training=training, eval=args.eval, p_values=p_values, parallel=args.parallel),
        progress=not args.quiet,
    )
    echo(markdown_table(sweep))
    echo(f"written to {Path(args.out) / 'sweep.md'} and {Path(args.out) / 'sweep.json'}")
    return 0


def add_t2i_sweep_parser(subparsers) -> None:
    from recap.evaluation.t2i_eval import T2IEvalConfig
    from recap.evaluation.t2i_sweep import DEFAULT_P_VALUES
    from recap.training.t2i_training import T2ITrainingConfig

    parser = add_command(
        subparsers,
        "t2i-sweep",
        help="Recap-DiT at p=0 and p=1: the paper's Table 7",
        description="Train one DiT per p in --p-values on the same shards, caption table, steps and seed (each a "
        "`recap train-t2i` run in OUT/p-P.PP, resumable; a p trained earlier with the same options is skipped), "
        "--parallel of them at once with the cores split between them; then `recap eval-t2i` on all of them into "
        "OUT/eval (same prompts, same seed), and the paper's Table 7 claims checked in OUT/sweep.md: p=0 beats "
        "p=1 on judged prompt-attribute accuracy (by >= 15 points on the world) and on CLIP score.",
        handler=_run_t2i_sweep,
        log=log_in("out"),
    )
    add_p_values_argument(parser, DEFAULT_P_VALUES)
    parser.add_argument("--parallel", type=int, default=2, help="p trained at once, each in its own process")
    add_dit_arguments(parser, T2ITrainingConfig(train="", out=""))
    add_t2i_eval_arguments(parser, T2IEvalConfig(models=["x"], eval="", out="", scales=SWEEP_SCALES))
    add_generation_arguments(parser, sweep=True)


def _run_t2i_sweep(args: argparse.Namespace) -> int:
    from recap.evaluation.t2i_eval import T2IEvalConfig
    from recap.evaluation.t2i_sweep import T2ISweepConfig, run_t2i_sweep
    from recap.training.t2i_training import T2ITrainingConfig

    p_values = p_values_from_args(args)
    training = config_from_args(T2ITrainingConfig, args, p_original=p_values[0])
    generation = {name: getattr(args, f"eval_{name}") for name in ("steps", "seed", "batch_size")}
    evaluation = config_from_args(T2IEvalConfig, args, **generation, models=["pending"], threads=0)
    config = build_config(
        T2ISweepConfig, training=training, evaluation=evaluation, p_values=p_values, parallel=args.parallel
    )
    sweep = run_t2i_sweep(config, progress=not args.quiet)
    echo((Path(args.out) / "sweep.md").read_text())
    echo(f"wrote {Path(args.out) / 'sweep.json'} ({sweep['seconds_this_run'] / 60:.1f} min this run)")
    return 0
