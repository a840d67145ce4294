"""The shard jobs and curation: `recap caption`, `recap score` (Ray Data jobs) and `recap curate`."""

from __future__ import annotations

import argparse
import json
from functools import partial
from types import ModuleType

from recap.cli.options import add_command, local_log, log_in
from recap.console import TABLE_LOG_FILE, echo
from recap.errors import RecapError


def _job_log(args: argparse.Namespace):
    """A job's log sits beside its tables: the --output folder, or the `output` of its --config file."""
    output = args.output
    if not output and args.config:
        from recap.jobs.config import load_config_file

        try:
            output = load_config_file(args.config).get("output")
        except (OSError, ValueError, AttributeError):
            output = None  # the job itself reports the unreadable file
    return local_log(output, TABLE_LOG_FILE)


def _add_job_command(subparsers, name: str, *, help: str, description: str, job: ModuleType, run) -> None:
    """A shard job's command: the options of the `job` module (its `add_job_arguments`), and a runner that
    builds the job's config (its `config_from_args`), calls `run` and prints the summary."""
    parser = add_command(
        subparsers,
        name,
        help=help,
        description=f"{description} --resume skips finished shards. Ray's messages go to OUTPUT/{TABLE_LOG_FILE}.",
        handler=partial(_run_job, job.config_from_args, run),
        log=_job_log,
        defaults=False,
    )
    job.add_job_arguments(parser)


def _run_job(config_from_args, run, args: argparse.Namespace) -> int:
    echo(json.dumps(run(config_from_args(args), progress=not args.quiet), indent=2))
    return 0


def add_caption_parser(subparsers) -> None:
    from recap.jobs import caption

    _add_job_command(
        subparsers,
        "caption",
        help="recaption shards with a LLaVA (Ray Data job)",
        description="Read webdataset shards, decode and resize images on CPU workers, caption them with a LLaVA "
        "actor pool, and write one Parquet caption table per shard (schemas/caption_table.v1.json), a completion "
        "marker per shard, a run manifest and _run_summary.json. Every input sample appears exactly once, as a "
        "caption or as an error row.",
        job=caption,
        run=caption.run_caption_job,
    )


def add_score_parser(subparsers) -> None:
    from recap.jobs import score

    _add_job_command(
        subparsers,
        "score",
        help="CLIP-score both captions of every image (Ray Data job)",
        description="Read webdataset shards with their caption tables (--captions: the recaption job's output), "
        "encode each image once with a CLIP (the shipped reference CLIP unless --clip says otherwise) and write one "
        "scored table per shard (schemas/scored_table.v1.json): the caption table with re_clip_score and "
        "org_clip_score = 100 x max(cosine, 0), the scorer's columns, a completion marker per shard, a run "
        "manifest and _run_summary.json (with how many captions were longer than the CLIP's text context). "
        "Every row of every caption table appears exactly once.",
        job=score,
        run=score.run_score_job,
    )


def add_curate_parser(subparsers) -> None:
    from recap.curation.curate import PRESETS, REASONS

    parser = add_command(
        subparsers,
        "curate",
        help="filter scored tables into a release and a data card",
        description="Apply DataComp-style filters to the scored tables (`recap score`'s output) and write OUT/release/"
        "part-NNNNN.parquet (Recap-DataComp-1B's columns first, then ours), OUT/exclusions.parquet (every dropped "
        "row with its reason), and a data card (data_card.md, data_card.json, histograms as PNG). Each row is "
        f"dropped for the first reason that applies, in this order: {', '.join(REASONS)}; kept + dropped = input. "
        f"Presets: {'; '.join(f'{name} = {settings}' for name, settings in PRESETS.items())}.",
        handler=_run_curate,
        log=log_in("out"),
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
    parser.add_argument(
        "--world",
        help="a world folder: add caption quality against its ground truth to the card, and count its vocabulary "
        "(shapes, colours, brands, 'red heart' concepts) as the metadata entries when --metadata is not given",
    )
    parser.add_argument(
        "--metadata",
        help="metadata entries to count in the kept captions, as MetaCLIP matches them: a JSON list of strings (e.g. "
        "MetaCLIP's metadata.json) or a text file with one entry per line; the data card shows their distribution",
    )
    parser.add_argument(
        "--balance",
        type=float,
        metavar="T",
        help="MetaCLIP balancing, after every other filter: an entry matched n > T times keeps each of its rows with "
        "probability T/n; a row stays if any of its entries keeps it (MetaCLIP used T = 20,000 for 400M pairs)",
    )
    parser.add_argument(
        "--balance-column",
        choices=("re_caption", "org_caption"),
        help="the caption the entries are matched in (default re_caption, the one a Recap release trains on; "
        "MetaCLIP matched the alt-text)",
    )
    parser.add_argument("--balance-seed", type=int, help="seed of the balancing draws (default 0)")


def _run_curate(args: argparse.Namespace) -> int:
    from recap.curation.curate import CurateConfig, curate

    options = {name: getattr(args, name) for name in (
        "scored", "out", "score_column", "min_score", "top_fraction", "min_alt_text_words", "min_recaption_words",
        "min_side", "max_aspect", "dedup", "placeholder_urls", "dedup_captions", "rows_per_file", "world",
        "metadata", "balance", "balance_column", "balance_seed",
    )}  # fmt: skip
    try:
        config = CurateConfig.with_preset(args.preset, **options)
    except ValueError as error:
        raise RecapError(str(error)) from None
    card = curate(config, progress=not args.quiet)
    echo(f"{'input':>20} {card['rows_in']:>10}")
    for step in card["funnel"]:
        if step["dropped"]:
            echo(f"{step['reason']:>20} {-step['dropped']:>10} -> {step['remaining']}")
    echo(f"{'kept':>20} {card['rows_kept']:>10}")
    if card["concepts"]:
        concepts = card["concepts"]
        for name, counts in (("before balancing", concepts["pool"]), ("after balancing", concepts["balanced"])):
            if counts:
                echo(
                    f"concepts {name}: {counts['matches']} matches of {counts['entries_matched']} entries, head share "
                    f"{counts['head_share']}, commonest / rarest {counts['max_over_min']}"
                )
    files = len(card["release"]["files"])
    echo(f"release: {config.out}/release ({files} file(s)); data card: {config.out}/data_card.md")
    return 0
