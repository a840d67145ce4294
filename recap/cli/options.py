"""What the commands share: option groups that repeat (the trainers' options), argument types, building a config
from parsed options with user-facing errors, and where each command's log goes."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

from recap.console import LOG_FILE
from recap.errors import RecapError

# A command's log location, from its parsed options: a local file, or None for a log in the temporary folder.
LogPlace = Callable[[argparse.Namespace], "Path | None"]


def log_in(option: str, name: str = LOG_FILE) -> LogPlace:
    """The log is `name` in the folder given by `option` (when it is local; an object store URI has no log)."""

    def place(args: argparse.Namespace) -> Path | None:
        return local_log(getattr(args, option, None), name)

    return place


def local_log(folder: str | None, name: str = LOG_FILE) -> Path | None:
    """`folder/name` for a local folder; None for no folder or a URI (s3://...)."""
    if not folder or ("://" in folder and not folder.startswith("file://")):
        return None
    return Path(folder.removeprefix("file://")) / name


def add_command(subparsers, name: str, *, help: str, description: str, log: LogPlace, handler, defaults: bool = True):
    """A command's parser: `help` is its line in `recap --help`, `description` its own --help (with each option's
    default unless `defaults` is false); `handler(args)` runs it and `log(args)` says where its log goes."""
    formatter = argparse.ArgumentDefaultsHelpFormatter if defaults else argparse.HelpFormatter
    parser = subparsers.add_parser(name, help=help, description=description, formatter_class=formatter)
    parser.set_defaults(handler=handler, log=log)
    return parser


def build_config(cls, **options):
    """Build a config dataclass, turning its validation errors into user-facing ones."""
    try:
        return cls(**options)
    except ValueError as error:
        raise RecapError(str(error)) from None


def config_from_args(cls, args: argparse.Namespace, **overrides):
    """A config dataclass from the parsed options named like its fields (the others keep their defaults)."""
    values = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
    return build_config(cls, **{**values, **overrides})


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


def add_p_values_argument(parser: argparse.ArgumentParser, default: tuple[float, ...]) -> None:
    parser.add_argument(
        "--p-values", default=",".join(str(p) for p in default), help="comma-separated shares of original captions"
    )


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
    add_threads_argument(parser)
    add_scale_out_arguments(parser)


def add_scale_out_arguments(parser: argparse.ArgumentParser) -> None:
    """A trainer's Ray Train options (named like the trainers' config fields)."""
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="1: train in this process; N: N Ray Train workers with DDP, each reading its own share of the data and "
        "taking --batch-size samples per step (OUT must be on storage every worker sees)",
    )
    parser.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs per Ray Train worker")
    parser.add_argument("--gpus", action="store_true", help="one GPU per Ray Train worker (NCCL) instead of gloo")
    parser.add_argument("--ray-address", help="Ray cluster for --workers > 1 (default: RAY_ADDRESS or a local Ray)")


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")


def set_threads(threads: int) -> None:
    """--threads for commands that run torch in this process."""
    if threads:
        import torch

        torch.set_num_threads(threads)


def weight_mix(text: str) -> dict[str, float]:
    """'descriptive=0.3,generic=0.1' -> {'descriptive': 0.3, 'generic': 0.1} (an argparse type)."""
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
