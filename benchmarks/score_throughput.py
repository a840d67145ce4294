"""Scoring-job efficiency on this machine: `recap score` on a local Ray against the bare open_clip encode loop.

    python benchmarks/score_throughput.py [--images 10000] [--small-images 2000] [--batch-size 256]
        [--clip ViT-S-32-alt] [--end-to-end-only]

Same images, model (the shipped reference CLIP, or with `--clip` an open_clip architecture at its real size,
randomly initialised: the same compute as its trained weights, which cannot be downloaded here), batch size and
thread count throughout (one: the job's CLIP actor has one of the two CPUs, the read and decode tasks the other,
so its torch runs one thread). The caption tables are the world's ground truth written in the recaption job's
layout (captioning 10,000 images first would only add time). Three ratios, each against runs timed just before
and after it:

1. end to end: the job's images/s (its summary: from the job's start to its last table) / the bare loop's.
   The bare loop has every image decoded and cropped in memory already and only tokenizes and encodes (one
   image, two captions per row: what the job's actor does); its process imported torch and open_clip and
   loaded the model before the clock starts. The job pays for that inside its time (a new actor process).
2. per image: the job on `--images` and on its first `--small-images`: the extra images / the extra seconds,
   against the bare loop. The start-up both runs pay cancels, so this is the job's rate once it runs; the
   start-up is then the large run's seconds less its images at that rate.
3. command against script: `recap score` as a command (a new driver on the same Ray) against the same work
   written as a plain script (`--loop-program`: import, load the model, read and decode the tars, score in
   batches, one thread), each timed from its process's start to its end.

Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import numpy as np
import pyarrow.dataset as ds

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
SHARD_SIZE = 1000


def ground_truth_caption_tables(world: Path, shards: Path, out: Path) -> int:
    """One caption table per tar, as the recaption job writes it, with the world's detailed caption as the
    recaption; returns the rows written."""
    import json

    import pyarrow.parquet as pq

    from recap.schema import table_from_rows, word_count
    from recap.stages.webdataset_reader import list_shards, read_shard
    from recap.world.generate import truth_by_uid

    truth = truth_by_uid(world, "web", "caption")
    out.mkdir(parents=True)
    total = 0
    for shard in list_shards(str(shards)):
        rows = []
        for batch in read_shard(shard):
            for key, text, meta in zip(batch["key"], batch["txt"], batch["json"], strict=True):
                uid = json.loads(meta)["uid"]
                alt_text, recaption = text.decode(), truth[uid]
                rows.append(
                    {
                        "key": key,
                        "uid": uid,
                        "org_caption": alt_text,
                        "re_caption": recaption,
                        "org_length": word_count(alt_text),
                        "re_length": word_count(recaption),
                        "source_shard": shard.uri,
                        "status": "ok",
                        "run_id": "ground-truth",
                    }
                )
        pq.write_table(table_from_rows(rows, source=shard.name), out / f"{shard.name}.parquet")
        total += len(rows)
    return total


def bare_loop(model, tokenizer, pixels, alt_texts, recaptions, batch_size: int) -> float:
    """images/s of encoding every image once and both of its captions, batch by batch."""
    from recap.models.clip import clip_scores

    started = time.perf_counter()
    for start in range(0, len(pixels), batch_size):
        stop = start + batch_size
        clip_scores(model, tokenizer, pixels[start:stop], recaptions[start:stop], alt_texts[start:stop])
    return len(pixels) / (time.perf_counter() - started)


def caption_texts(path: Path) -> dict[str, tuple[str, str]]:
    """key -> (alt-text, recaption) from a caption table or a folder of them."""
    table = ds.dataset(str(path), format="parquet").to_table(columns=["key", "org_caption", "re_caption"])
    columns = [table[column].to_pylist() for column in table.column_names]
    return {key: (org, re) for key, org, re in zip(*columns, strict=True)}


def decoded_batches(shard, texts: dict[str, tuple[str, str]], side: int, batch_size: int):
    """(pixels, alt-texts, recaptions) per batch of a tar: its images decoded and cropped to the CLIP's side, as
    the job's decode stage does, with their captions from `texts` (`caption_texts`)."""
    from recap.stages.decode import decode_image
    from recap.stages.webdataset_reader import read_shard

    for batch in read_shard(shard, rows_per_batch=batch_size):
        pixels = np.stack([decode_image(data, side, 10**9, pad_to_square=False) for data in batch["image"]])
        yield pixels, [texts[key][0] for key in batch["key"]], [texts[key][1] for key in batch["key"]]


def loop_program(work: Path, batch_size: int, clip: str, pretrained: str | None) -> None:
    """The scoring written as a plain one-thread script: what `recap score` is measured against in ratio 3."""
    import torch

    from recap.jobs.score import clip_input_size
    from recap.models.clip import clip_scores, load_clip
    from recap.stages.webdataset_reader import list_shards

    torch.set_num_threads(1)
    side = clip_input_size(clip)
    model, _, tokenizer = load_clip(clip, pretrained=pretrained)
    for shard in list_shards(str(work / "shards")):
        texts = caption_texts(work / "captions" / f"{shard.name}.parquet")
        for pixels, alt_texts, recaptions in decoded_batches(shard, texts, side, batch_size):
            clip_scores(model, tokenizer, pixels, recaptions, alt_texts)


def random_checkpoint(name: str, out: Path) -> str:
    """A randomly initialised open_clip `name` (seeded) saved as a local checkpoint; its path."""
    import open_clip
    import torch

    torch.manual_seed(0)
    model = open_clip.create_model(name, pretrained=None)
    path = out / f"{name}-random.pt"
    torch.save(model.state_dict(), path)
    return str(path)


def clip_options(clip: str, pretrained: str | None) -> list[str]:
    """The command-line options that name this CLIP."""
    return ["--clip", clip] + (["--pretrained", pretrained] if pretrained else [])


def timed_command(command: list[str]) -> float:
    """Seconds from starting `command` to its end; its output is dropped unless it fails."""
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(
            f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    return seconds


def main() -> None:
    import ray
    import torch

    from recap.jobs.score import ScoreJobConfig, clip_input_size, run_score_job
    from recap.models.assets import shipped_clip
    from recap.models.clip import load_clip
    from recap.stages.webdataset_reader import list_shards
    from recap.world.generate import WorldConfig, generate_world
    from recap.world.shards import write_webdataset

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--small-images", type=int, default=2_000, help="the smaller job of ratio 2 (whole shards)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2, help="rounds of the three measurements")
    parser.add_argument(
        "--clip",
        metavar="NAME",
        help="an open_clip architecture (e.g. ViT-S-32-alt), randomly initialised, instead of the shipped CLIP",
    )
    parser.add_argument("--end-to-end-only", action="store_true", help="measure ratio 1 only (for a slow --clip)")
    parser.add_argument("--loop-program", type=Path, metavar="WORK", help=argparse.SUPPRESS)  # ratio 3's script
    parser.add_argument("--pretrained", help=argparse.SUPPRESS)  # ratio 3's script: the --clip checkpoint
    args = parser.parse_args()
    if args.loop_program:
        loop_program(args.loop_program, args.batch_size, args.clip, args.pretrained)
        return

    work = Path(tempfile.mkdtemp(prefix="recap-score-bench-"))
    generate_world(WorldConfig(seed=9, size=args.images, sft_size=1, eval_size=1), work / "world", progress=False)
    write_webdataset(work / "world", "web", work / "shards", samples_per_shard=SHARD_SIZE)
    rows = ground_truth_caption_tables(work / "world", work / "shards", work / "captions")
    shards = list_shards(str(work / "shards"))
    small = [shard.uri for shard in shards[: max(1, args.small_images // SHARD_SIZE)]]
    clip, pretrained = args.clip or str(shipped_clip()), None
    if args.clip:
        pretrained = random_checkpoint(args.clip, work)
    side = clip_input_size(clip)

    torch.set_num_threads(1)  # as in the job's actor
    model, _, tokenizer = load_clip(clip, pretrained=pretrained)
    texts = caption_texts(work / "captions")
    batches = [batch for shard in shards for batch in decoded_batches(shard, texts, side, args.batch_size)]
    pixels = np.concatenate([pixels for pixels, _, _ in batches])
    alt_texts = [text for _, texts_, _ in batches for text in texts_]
    recaptions = [text for _, _, texts_ in batches for text in texts_]
    bare_loop(model, tokenizer, pixels[: args.batch_size], alt_texts, recaptions, args.batch_size)  # warm-up
    cpus = os.cpu_count() or 1
    print(
        f"machine: {cpus} CPUs; CLIP {clip}{' (random weights)' if pretrained else ''}; {rows} images in "
        f"{len(shards)} shards (small job: {len(small)} shards), "
        f"batch {args.batch_size}, 1 actor thread",
        flush=True,
    )

    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    address = ray.get_runtime_context().gcs_address
    bare = [bare_loop(model, tokenizer, pixels, alt_texts, recaptions, args.batch_size)]

    def next_bare() -> float:
        """Time the bare loop again; the mean of it and the run before (the measurement between them)."""
        bare.append(bare_loop(model, tokenizer, pixels, alt_texts, recaptions, args.batch_size))
        return (bare[-2] + bare[-1]) / 2

    def job(inputs: list[str], name: str) -> dict:
        config = ScoreJobConfig(
            input=inputs,
            captions=str(work / "captions"),
            output=str(work / name),
            clip=clip,
            pretrained=pretrained,
            batch_size=args.batch_size,
            cpus_per_actor=1.0,
            decode_cpus=1.0,
        )
        return run_score_job(config, progress=False)

    results: dict[str, list[float]] = {"end to end": [], "per image": [], "command / script": []}
    for repeat in range(1, args.repeats + 1):
        large = job([str(work / "shards")], f"scored-{repeat}")
        reference = next_bare()
        busy = large["stage_seconds"].get("clip-score", 0.0)
        results["end to end"].append(large["images_per_s"] / reference)
        print(
            f"round {repeat}\n  1. end to end: {large['rows']} images in {large['seconds']:.1f} s = "
            f"{large['images_per_s']:.1f} images/s; bare loop {bare[-2]:.1f} before, {bare[-1]:.1f} after -> "
            f"efficiency {results['end to end'][-1]:.2f}\n"
            f"     scorer busy {busy:.1f} s ({large['rows'] / busy / reference:.2f} of the bare rate while busy), "
            f"not scoring {large['seconds'] - busy:.1f} s; stage seconds {large['stage_seconds']}",
            flush=True,
        )
        if args.end_to_end_only:
            continue
        little = job(small, f"scored-small-{repeat}")
        reference = (reference + next_bare()) / 2
        rate = (large["rows"] - little["rows"]) / (large["seconds"] - little["seconds"])
        results["per image"].append(rate / reference)
        print(
            f"  2. per image: {little['rows']} images in {little['seconds']:.1f} s; the other "
            f"{large['rows'] - little['rows']} took {large['seconds'] - little['seconds']:.1f} s more = {rate:.1f} "
            f"images/s -> efficiency {results['per image'][-1]:.2f}; "
            f"start-up {large['seconds'] - large['rows'] / rate:.1f} s",
            flush=True,
        )
        command = timed_command(
            [
                str(Path(sys.executable).with_name("recap")),
                "score",
                "--input",
                str(work / "shards"),
                "--captions",
                str(work / "captions"),
                "--output",
                str(work / f"scored-command-{repeat}"),
                "--batch-size",
                str(args.batch_size),
                "--ray-address",
                address,
                "--quiet",
                *clip_options(clip, pretrained),
            ]
        )
        script = timed_command(
            [
                sys.executable,
                __file__,
                "--loop-program",
                str(work),
                "--batch-size",
                str(args.batch_size),
                *clip_options(clip, pretrained),
            ]
        )
        results["command / script"].append(script / command)
        print(
            f"  3. command against script: `recap score` {command:.1f} s, the script {script:.1f} s -> "
            f"efficiency {results['command / script'][-1]:.2f}",
            flush=True,
        )
    ray.shutdown()
    for name, values in results.items():
        if values:
            print(f"{name}: {', '.join(f'{value:.2f}' for value in values)} (median {median(values):.2f})")


if __name__ == "__main__":
    main()
