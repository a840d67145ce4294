"""Download a DataComp pool's metadata into webdataset shards with img2dataset, as a Ray job: one task per shard.

    # on a cluster started with `ray start --head` (see README for RAY_AUTH_MODE):
    ray job submit --working-dir . -- python pipelines/download_datacomp.py \
        --metadata s3://bucket/datacomp/metadata --out s3://bucket/datacomp/shards
    # a config file for the settings, options for the rest; or plainly, on a local Ray:
    python pipelines/download_datacomp.py --config download.json --metadata /data/metadata --out /data/shards

The defaults are DataComp's (512 px, keep_ratio_largest, uid kept, downloads checked against sha256, 10,000
samples per shard) with img2dataset's ray distributor. A config file (JSON, or YAML with PyYAML) sets any
DownloadConfig field; command-line options override it. The output may be a local folder (shared by every
node) or any fsspec URI img2dataset writes to. A rerun resumes: finished shards are kept. --world downloads a
world made by `recap world` from a server on 127.0.0.1 instead (the tests' path: every node on this machine).
Prints the summary as JSON; download_summary.json beside the shards holds it too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

HELP = {
    "metadata": "folder of DataComp metadata .parquet files (local or an fsspec URI)",
    "out": "output folder for the shards (local, shared by the nodes, or an fsspec URI such as s3://...)",
    "image_size": "resize target in pixels",
    "resize_mode": "img2dataset resize mode",
    "samples_per_shard": "samples per tar (one Ray task each)",
    "processes": "img2dataset processes (multiprocessing distributor only)",
    "threads": "download threads per shard task",
    "timeout": "seconds before a download is given up",
    "retries": "retries per URL",
    "url_column": "metadata column with the image URL",
    "caption_column": "metadata column with the alt-text",
    "keep_columns": "comma-separated metadata columns kept in each sample",
    "verify_hash": "check downloads against the metadata's sha256 column when it has one",
    "distributor": "img2dataset distributor",
    "ray_address": "Ray cluster to join (default: the one `ray job submit` runs on, RAY_ADDRESS, or a local Ray)",
}


def base_config() -> dict:
    """The recipe's defaults over DownloadConfig's (which are DataComp's settings): img2dataset's ray distributor."""
    return {"distributor": "ray"}


def build_parser() -> argparse.ArgumentParser:
    from recap.console import add_console_arguments
    from recap.ingest.download import DISTRIBUTORS, DownloadConfig

    parser = argparse.ArgumentParser(
        prog="download_datacomp.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", help="JSON or YAML file of DownloadConfig fields")
    parser.add_argument("--world", help="a folder made by `recap world`: serve it on 127.0.0.1 and download it")
    parser.add_argument("--split", default="web", choices=("web", "sft", "eval"), help="world split, with --world")
    defaults = {**vars(DownloadConfig(metadata="", out="")), **base_config()}
    for name, text in HELP.items():
        flag = {"url_column": "--url-col", "caption_column": "--caption-col"}.get(name, f"--{name.replace('_', '-')}")
        default = defaults[name]
        if default not in (None, ""):
            text += f" (default: {','.join(default) if isinstance(default, tuple) else default})"
        if name == "verify_hash":
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif name == "distributor":
            parser.add_argument(flag, dest=name, choices=DISTRIBUTORS, help=text)
        else:
            kind = type(default) if isinstance(default, int) and not isinstance(default, bool) else str
            parser.add_argument(flag, dest=name, type=kind, metavar=name.upper(), help=text)
    add_console_arguments(parser)
    return parser


def build_config(argv: list[str] | None = None):
    """(DownloadConfig, parsed arguments) from base < --world's settings < config file < command line."""
    from recap.errors import RecapError
    from recap.ingest.download import DownloadConfig, world_settings
    from recap.jobs.config import config_from_args

    args = build_parser().parse_args(argv)
    base = base_config()
    if args.world:
        if args.metadata:
            raise RecapError("--world and --metadata are two sources; give one")
        base.update(world_settings(args.world, args.split))
    try:
        return config_from_args(DownloadConfig, args, base), args
    except RecapError as error:
        if "missing" in str(error) and "required" in str(error):
            raise RecapError("give --metadata (or --world) and --out, or set them in the --config file") from None
        raise


def main(argv: list[str] | None = None) -> int:
    from recap.errors import RecapError
    from recap.ingest.download import download, download_world

    try:
        config, args = build_config(argv)
        if args.world:
            summary = download_world(args.world, args.split, config, progress=not args.quiet)
        else:
            summary = download(config, progress=not args.quiet)
    except RecapError as error:
        print(f"download_datacomp: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(summary.to_dict(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
