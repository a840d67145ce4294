"""Ingest: `recap world` (the embedded synthetic web dataset) and `recap download` (img2dataset into shards)."""

from __future__ import annotations

import argparse

from recap.cli.options import add_command, build_config, log_in, weight_mix
from recap.console import TABLE_LOG_FILE, echo


def add_world_parser(subparsers) -> None:
    from recap.world.captions import ALT_TEXT_KINDS, DEFAULT_ALT_TEXT_MIX
    from recap.world.domains import DEFAULT_DOMAIN, DOMAINS
    from recap.world.vocabulary import DIFFICULTIES

    parser = add_command(
        subparsers,
        "world",
        help="generate the embedded synthetic web dataset",
        description="Generate a synthetic, DataComp-shaped web dataset with known ground truth: images of "
        "objects (shape, colour, size, position, brand marks), noisy web alt-text, DataComp metadata Parquet, "
        "ground-truth scenes and detailed captions, in splits web / sft / eval. Prints the alt-text's quality "
        "against the ground truth. The same --seed always gives the same files.",
        handler=_run_world,
        log=log_in("out"),
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
        type=weight_mix,
        help=f"weights of alt-text kinds {', '.join(ALT_TEXT_KINDS)}, e.g. 'descriptive=0.5,generic=0.5' "
        f"(default: {','.join(f'{k}={v}' for k, v in DEFAULT_ALT_TEXT_MIX.items())})",
    )
    parser.add_argument(
        "--long-tail",
        type=float,
        metavar="RATIO",
        help="draw each object's concept (colour and shape) of the web and sft splits from an exponential profile "
        "whose rarest concept is RATIO times as frequent as the commonest (0.01: 100x rarer; CIFAR-100-LT's); the "
        "eval split stays balanced. Default: every shape and colour equally likely",
    )
    parser.add_argument(
        "--domain",
        choices=list(DOMAINS),
        default=DEFAULT_DOMAIN,
        help="draw every split's images in another style; the scenes, captions and alt-text stay those of the "
        "default domain for the same --seed (a pure image shift, for measuring a model out of its domain): "
        + "; ".join(f"{name}: {domain.description}" for name, domain in DOMAINS.items()),
    )
    parser.add_argument(
        "--reasoning",
        type=int,
        default=0,
        metavar="N",
        help="also write N reasoning questions about the eval split's images to eval/reasoning.json, in "
        "InfiMM-Eval's format plus each answer and its numbered reasoning steps (deductive, abductive, analogical; "
        "moderate and high, in turn), for `recap eval-reasoning`. Default: none",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing world at --out")


def _run_world(args: argparse.Namespace) -> int:
    from recap.report import quality_table
    from recap.world.domains import DEFAULT_DOMAIN
    from recap.world.generate import WorldConfig, generate_world

    options = dict(seed=args.seed, size=args.size, sft_size=args.sft_size, eval_size=args.eval_size)
    options.update(difficulty=args.difficulty, image_size=args.image_size, png_fraction=args.png_fraction)
    options.update(long_tail=args.long_tail, domain=args.domain, reasoning=args.reasoning)
    if args.alt_text_mix:
        options["alt_text_mix"] = args.alt_text_mix
    config = build_config(WorldConfig, **options)
    manifest = generate_world(config, args.out, overwrite=args.overwrite, progress=not args.quiet)
    echo(f"world written to {args.out}" + (f" (domain {args.domain})" if args.domain != DEFAULT_DOMAIN else ""))
    for split, info in manifest["splits"].items():
        echo(f"  {split}: {info['size']} images ({info['image_formats']}), alt-text kinds {info['alt_kinds']}")
    if manifest["long_tail"]:
        counts = list(manifest["splits"]["web"]["concepts"].items())
        echo(
            f"  long tail {args.long_tail:g} over {len(manifest['long_tail']['ranking'])} concepts: web objects per "
            f"concept from {counts[0][1]} ({counts[0][0]}) down to {counts[-1][1]} ({counts[-1][0]})"
        )
    if manifest.get("reasoning"):
        reasoning = manifest["reasoning"]
        echo(
            f"  reasoning: {reasoning['questions']} questions in {args.out}/{reasoning['file']} ({reasoning['kinds']})"
        )
    echo("\nalt-text quality against the ground truth (web split):")
    echo(quality_table({"alt-text": manifest["splits"]["web"]["alt_text_quality"]}))
    return 0


def add_download_parser(subparsers) -> None:
    parser = add_command(
        subparsers,
        "download",
        help="download metadata into webdataset shards (img2dataset)",
        description="Run img2dataset on a DataComp-style metadata folder (Parquet with uid, url, text, sha256) "
        "and write webdataset shards (NNNNN.tar with .jpg/.txt/.json per sample, NNNNN.parquet, NNNNN_stats.json), "
        "keeping uid. With --world, the world's images are first served on 127.0.0.1 (dead links, timeouts and "
        "corrupt bodies included) and its --split metadata is downloaded. A rerun resumes finished shards. "
        "With --distributor ray the shards are downloaded as Ray tasks on a cluster (see also "
        "pipelines/download_datacomp.py, the same as a Ray job). Prints the success rate and failures by "
        f"reason, and writes download_summary.json. img2dataset's own messages go to OUT/{TABLE_LOG_FILE}.",
        handler=_run_download,
        log=log_in("out", TABLE_LOG_FILE),
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


def _run_download(args: argparse.Namespace) -> int:
    from recap.ingest.download import DownloadConfig, download, download_world, world_settings
    from recap.report import download_report

    defaults = {"metadata": args.metadata, "image_size": 512, "samples_per_shard": 10_000, "timeout": 10}
    if args.world:
        defaults = world_settings(args.world, args.split)
    config = build_config(
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
    progress = not args.quiet
    if args.world:
        summary = download_world(args.world, args.split, config, progress=progress)
    else:
        summary = download(config, progress=progress)
    echo(download_report(summary.to_dict()))
    echo(f"shards in {args.out}")
    return 0
