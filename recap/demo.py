"""`make demo`: the main job on the embedded world, end to end, with a summary a person can read."""

from __future__ import annotations

import shutil
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from recap.ingest.download import DownloadConfig, download_world
from recap.io_utils import ensure_writable_folder, write_json_atomic
from recap.report import download_report, quality_table
from recap.world.generate import WorldConfig, generate_world, load_truth

EXAMPLES = 3


def reconcile_download(world: Path, split: str, shards: Path) -> dict[str, dict[str, int]]:
    """How each URL was served (world truth) against what img2dataset recorded for it, joined on uid."""
    served = dict(zip(*(load_truth(world, split)[c].to_pylist() for c in ("uid", "serve")), strict=True))
    table: dict[str, Counter] = {}
    for path in sorted(shards.glob("*.parquet")):
        rows = pq.read_table(path, columns=["uid", "status"])
        for uid, status in zip(rows["uid"].to_pylist(), rows["status"].to_pylist(), strict=True):
            table.setdefault(served.get(uid, "unknown"), Counter())[status] += 1
    return {serve: dict(counts) for serve, counts in sorted(table.items())}


def _captioner_path(out: Path, retrain: bool, timings: dict) -> Path:
    """The shipped tiny captioner, or one retrained with the shipped recipe."""
    from recap.models.assets import shipped_captioner

    if not retrain:
        return shipped_captioner()
    from recap.training.captioner_training import CaptionerTrainer
    from recap.training.recipes import CAPTIONER_WORLD, tiny_captioner_recipe

    world = out / "captioner-world"
    print(
        f"      retraining the captioner with the shipped recipe (about 30 minutes on 2 cores) in {out / 'captioner'}"
    )
    t0 = time.perf_counter()
    generate_world(CAPTIONER_WORLD, world, overwrite=True)
    CaptionerTrainer(tiny_captioner_recipe(str(world / "sft"), str(world / "eval"), str(out / "captioner"))).run()
    timings["captioner_training_s"] = round(time.perf_counter() - t0, 1)
    return out / "captioner" / "model"


def run_demo(out: str | Path = "runs/demo", size: int = 2000, seed: int = 0, retrain_captioner: bool = False) -> dict:
    """Generate a world, download its web split, caption its eval split; print and return a summary."""
    from recap.caption_quality import caption_world_split
    from recap.models.captioner import CaptionerConfig, load_captioner

    started = time.perf_counter()
    out = ensure_writable_folder(out, "demo folder")
    world, shards = out / "world", out / "shards"
    timings = {}

    print(f"[1/3] generating the embedded world ({size} web images, seed {seed}) in {world}")
    t0 = time.perf_counter()
    manifest = generate_world(WorldConfig(size=size, seed=seed), world, overwrite=True)
    timings["world_s"] = round(time.perf_counter() - t0, 1)

    print(f"[2/3] downloading the web split with img2dataset from a local server into {shards}")
    t0 = time.perf_counter()
    if shards.exists():
        shutil.rmtree(shards)  # a fresh world may differ from the one these shards came from
    config = DownloadConfig(
        metadata=str(world / "web" / "metadata"),
        out=str(shards),
        image_size=manifest["config"]["image_size"],
        samples_per_shard=max(100, size // 4),
        timeout=3,
    )
    summary = download_world(world, "web", config).to_dict()
    timings["download_s"] = round(time.perf_counter() - t0, 1)
    reconciliation = reconcile_download(world, "web", shards)

    print("[3/3] captioning the held-out eval split with the tiny LLaVA captioner")
    model = _captioner_path(out, retrain_captioner, timings)
    t0 = time.perf_counter()
    captioner = load_captioner(CaptionerConfig(model=str(model), batch_size=32, device="cpu"))
    rows, caption_quality = caption_world_split(captioner, world, "eval")
    timings["captioning_s"] = round(time.perf_counter() - t0, 1)
    timings["captioning_images_per_s"] = round(len(rows) / max(timings["captioning_s"], 1e-9), 1)
    timings["total_s"] = round(time.perf_counter() - started, 1)

    web = manifest["splits"]["web"]
    result = {
        "world": str(world),
        "shards": str(shards),
        "captioner": str(model),
        "splits": {split: info["size"] for split, info in manifest["splits"].items()},
        "download": summary,
        "served_vs_recorded": reconciliation,
        "alt_text_quality": web["alt_text_quality"],
        "captioner_quality_eval": caption_quality,
        "timings": timings,
    }
    write_json_atomic(out / "demo_summary.json", result)

    print("\n=== recap demo summary ===")
    print("world splits: " + ", ".join(f"{split} {n}" for split, n in result["splits"].items()))
    print(f"alt-text kinds (web): {web['alt_kinds']}")
    print("\ndownload (img2dataset, web split):")
    print(download_report(summary))
    print("served as -> recorded by img2dataset: " + "; ".join(f"{k}: {v}" for k, v in reconciliation.items()))
    print(f"\ncaption quality against the ground truth, eval split ({len(rows)} images), captioner {model}:")
    print(quality_table({"alt-text": caption_quality["alt-text"], "recaption": caption_quality["recaption"]}))
    print("\nexamples:")
    for row in rows[:EXAMPLES]:
        print(f"  alt-text : {row['alt_text']}\n  recaption: {row['result'].text}\n  truth    : {row['truth']}\n")
    print(f"outputs: world {world}, shards {shards}, summary {out / 'demo_summary.json'}")
    print(f"time: {timings}")
    return result
