"""Scoring-job efficiency on this machine: `recap score` on a local Ray against the bare open_clip encode loop.

    python benchmarks/score_throughput.py [--images 10000] [--batch-size 256]

efficiency = end-to-end images/s of the Ray job / images/s of the bare loop on the same images, model (the
shipped reference CLIP), batch size and thread count (one: the job's CLIP actor has one of the two CPUs, the
read and decode tasks the other, so its torch runs one thread). The bare loop has
every image decoded and cropped in memory already and only tokenizes and encodes (one image, two captions per
row: what the job's actor does); it runs before and after each job, and a job is compared with the mean of
the two. The caption tables are the world's ground truth written in the recaption job's layout (captioning
10,000 images first would only add time). Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from statistics import median

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


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


def main() -> None:
    import numpy as np
    import pyarrow.dataset as ds
    import ray
    import torch

    from recap.jobs.score import ScoreJobConfig, clip_input_size, run_score_job
    from recap.models.assets import shipped_clip
    from recap.models.clip import load_clip
    from recap.stages.decode import decode_image
    from recap.stages.webdataset_reader import list_shards, read_shard
    from recap.world.generate import WorldConfig, generate_world
    from recap.world.shards import write_webdataset

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2, help="jobs, each between two bare runs")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="recap-score-bench-"))
    generate_world(WorldConfig(seed=9, size=args.images, sft_size=1, eval_size=1), work / "world", progress=False)
    write_webdataset(work / "world", "web", work / "shards", samples_per_shard=1000)
    rows = ground_truth_caption_tables(work / "world", work / "shards", work / "captions")
    clip = str(shipped_clip())
    side = clip_input_size(clip)

    torch.set_num_threads(1)  # as in the job's actor
    model, _, tokenizer = load_clip(clip)
    table = ds.dataset(str(work / "captions"), format="parquet").to_table(columns=["key", "org_caption", "re_caption"])
    texts = {key: (org, re) for key, org, re in zip(*(table[c].to_pylist() for c in table.column_names), strict=True)}
    pixels, alt_texts, recaptions = [], [], []
    for shard in list_shards(str(work / "shards")):
        for batch in read_shard(shard):
            for key, data in zip(batch["key"], batch["image"], strict=True):
                pixels.append(decode_image(data, side, 10**9, pad_to_square=False))
                alt_texts.append(texts[key][0])
                recaptions.append(texts[key][1])
    pixels = np.stack(pixels)
    bare_loop(model, tokenizer, pixels[: args.batch_size], alt_texts, recaptions, args.batch_size)  # warm-up
    cpus = os.cpu_count() or 1
    print(f"machine: {cpus} CPUs; CLIP {clip}; {rows} images, batch {args.batch_size}, 1 actor thread")

    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    rates = [bare_loop(model, tokenizer, pixels, alt_texts, recaptions, args.batch_size)]
    efficiencies = []
    for repeat in range(args.repeats):
        config = ScoreJobConfig(
            input=[str(work / "shards")],
            captions=str(work / "captions"),
            output=str(work / f"scored-{repeat}"),
            batch_size=args.batch_size,
            cpus_per_actor=1.0,
            decode_cpus=1.0,
        )
        summary = run_score_job(config, progress=False)
        rates.append(bare_loop(model, tokenizer, pixels, alt_texts, recaptions, args.batch_size))
        reference = (rates[-2] + rates[-1]) / 2
        efficiencies.append(summary["images_per_s"] / reference)
        busy = summary["stage_seconds"].get("clip-score", 0.0)
        print(
            f"job #{repeat + 1}: {summary['rows']} images in {summary['seconds']:.1f} s = "
            f"{summary['images_per_s']:.1f} images/s; bare loop {rates[-2]:.1f} before, {rates[-1]:.1f} after -> "
            f"efficiency {efficiencies[-1]:.2f}; scorer busy {busy:.1f} s\n"
            f"    fixed cost (job time the scorer was not scoring: start-up, model load, drain) "
            f"{summary['seconds'] - busy:.1f} s; while busy the scorer ran at {summary['rows'] / busy:.1f} images/s "
            f"= {summary['rows'] / busy / reference:.2f} of the bare loop\n"
            f"    stage seconds: {summary['stage_seconds']}",
            flush=True,
        )
    ray.shutdown()
    print(f"efficiency: {', '.join(f'{value:.2f}' for value in efficiencies)} (median {median(efficiencies):.2f})")


if __name__ == "__main__":
    main()
