"""The `recap` command: one entry point, one subcommand per stage of the pipeline.

Each command's parser sits next to its runner in the module of its stage (ingest, jobs, training, evaluation,
sweeps, demo); option groups that several commands take live in `options` or beside the command that owns them.
Every command runs inside `recap.console.command_console`: the libraries' output goes to a log (in the command's
output folder when it has a local one), the terminal shows our lines, our progress bars and the summary.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
import traceback
from pathlib import Path

from recap import __version__
from recap.console import Console, add_console_arguments, command_console, echo, tail
from recap.errors import RecapError

DESCRIPTION = """\
recap recaptions web-scale image-text datasets (DataComp-style) with a LLaVA
captioner and curates them for training, reproducing Recap-DataComp-1B. Every
stage also runs offline on an embedded synthetic world whose ground truth is
known, so caption quality is measured rather than assumed.

The pipeline on the embedded world (README.md says more):
  recap world --out runs/world --size 2000
  recap download --world runs/world --out runs/shards
  recap caption --input runs/shards --output runs/captions
  recap score --input runs/shards --captions runs/captions --output runs/scored
  recap curate --scored runs/scored --out runs/release --preset recap-clip-top30
  recap demo --out runs/demo      # all of it and more, with an HTML report

Each command prints its own lines, progress bars and a summary; what the
libraries print (Ray, img2dataset, transformers) goes to a log in its output
folder, named at the end (--verbose shows it instead).
"""


def _parser_makers():
    """Every command's parser maker, in the pipeline's order (the order `recap --help` lists them in)."""
    from recap.cli import (
        adaptation,
        demo,
        distillation,
        evaluation,
        ingest,
        jobs,
        reasoning,
        retrieval,
        sweeps,
        training,
    )

    return (
        ingest.add_world_parser,
        ingest.add_download_parser,
        training.add_train_captioner_parser,
        jobs.add_caption_parser,
        jobs.add_score_parser,
        jobs.add_curate_parser,
        training.add_train_clip_parser,
        adaptation.add_tune_clip_parser,
        training.add_train_t2i_parser,
        distillation.add_distill_t2i_parser,
        evaluation.add_sample_parser,
        evaluation.add_eval_captions_parser,
        retrieval.add_eval_retrieval_parser,
        evaluation.add_eval_t2i_parser,
        reasoning.add_eval_reasoning_parser,
        sweeps.add_clip_sweep_parser,
        sweeps.add_t2i_sweep_parser,
        demo.add_demo_parser,
    )


def version_text() -> str:
    """`recap 0.1.0`, with the git commit of the code when it runs from a checkout."""
    from recap.jobs.runner import code_version

    commit = code_version().get("git_commit")
    return f"recap {__version__}" + (f" (git {commit[:12]})" if commit else "")


class _VersionAction(argparse.Action):
    """--version, computed only when asked for (it runs git)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, help="print the version (and git commit) and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_text())
        parser.exit()


class _OneLinePerCommand(argparse.RawDescriptionHelpFormatter):
    """Room for the longest command name (train-captioner) before its help, so each command takes one line.
    argparse measures subcommands two columns less indented than it draws them, and so wraps the longest."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30)

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        if isinstance(action, argparse._SubParsersAction):
            self._action_max_length = max(self._action_max_length, max(map(len, action.choices)) + 6)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recap", description=DESCRIPTION, formatter_class=_OneLinePerCommand)
    parser.add_argument("--version", action=_VersionAction)
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command")
    for make in _parser_makers():
        make(subparsers)
    for command in subparsers.choices.values():
        add_console_arguments(command)
    return parser


def _log_path(args: argparse.Namespace) -> Path:
    """Where the command's libraries' output goes: its own choice, else a fresh file in the temporary folder."""
    place = args.log(args)
    if place is not None:
        return place
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(tempfile.gettempdir()) / "recap-logs" / f"{args.command}-{stamp}-{os.getpid()}.log"


def _explain_failure(command: str, message: str, console: Console | None) -> None:
    """Our one-line error; then, when the libraries logged anything, the log's path and its last lines."""
    print(f"recap {command}: error: {message}", file=sys.stderr)
    lines = tail(console) if console is not None and console.log is not None else []
    if lines:
        print(f"  the log {console.log} ends with:", file=sys.stderr)
        for line in lines:
            print(f"  | {line[:300]}", file=sys.stderr)
    sys.stderr.flush()


def _run(args: argparse.Namespace, words: list[str]) -> int:
    failure, console = None, None
    try:
        log = None if args.verbose else _log_path(args)
        title = "recap " + shlex.join(words)
        with command_console(log, verbose=args.verbose, quiet=args.quiet, title=title) as console:
            try:
                code = args.handler(args)
            except RecapError:
                raise
            except Exception as error:
                if args.verbose:
                    raise
                traceback.print_exc()  # into the log: the tail below shows its end
                failure = f"{type(error).__name__}: {error} (an unexpected error: please report it)"
                code = 1
            else:
                logged = console.logged_lines()
                if logged and console.log is not None:
                    count = f"{len(logged)} line{'s' if len(logged) != 1 else ''}"
                    echo(f"the libraries' messages ({count}) are in {console.log}")
    except RecapError as error:
        _explain_failure(args.command, str(error), console)
        return 2
    except KeyboardInterrupt:
        print("recap: interrupted", file=sys.stderr)
        return 130
    if failure:
        _explain_failure(args.command, failure, console)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    words = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(words)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    return _run(args, words)


if __name__ == "__main__":
    sys.exit(main())
