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
from recap.world.generate import WorldConfig, generate_world, load_truth, truth_by_uid

EXAMPLES = 3


def reconcile_download(world: Path, split: str, shards: Path) -> dict[str, dict[str, int]]:
    """How each URL was served (world truth) against what img2dataset recorded for it, joined on uid."""
    served = truth_by_uid(world, split, "serve")
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


def local_job_resources() -> dict:
    """The demo jobs' share of this machine on a new local Ray: one actor with every CPU but one, and one read and
    decode task at a time (on 2 cores a second one only competes with the actor's start-up, benchmarks/RESULTS.md;
    decoding needs a few % of a core)."""
    import os

    cpus = os.cpu_count() or 1
    return {
        "executor": "ray",
        "ray_address": "local",
        "actors": 1,
        "cpus_per_actor": float(max(1, cpus - 1)) if cpus >= 2 else 0.5,
        "decode_cpus": 1.0 if cpus >= 2 else 0.5,
    }


def recaption_web_split(out: Path, shards: Path, world: Path, model: Path) -> tuple[dict, dict, list[dict]]:
    """Run the recaption job (Ray Data, local Ray) over the downloaded shards; score it against the truth.

    Returns the job summary, the quality of the new captions and of the alt-texts on the same rows, and a few
    example rows.
    """
    from recap.caption_quality import score_table
    from recap.jobs.caption import CaptionJobConfig, run_caption_job

    captions = out / "captions"
    if captions.exists():
        shutil.rmtree(captions)  # the demo's world is regenerated each time
    config = CaptionJobConfig(
        input=[str(shards)],
        output=str(captions),
        captioner={"model": str(model), "batch_size": 32},
        **local_job_resources(),
    )
    summary = run_caption_job(config)
    quality = score_table(captions, world, column="re_caption", baseline="org_caption")
    truth = truth_by_uid(world, "web", "caption")
    table = pq.read_table(sorted(captions.glob("*.parquet"))[0], columns=["uid", "org_caption", "re_caption"])
    examples = [{**row, "truth": truth.get(row["uid"])} for row in table.to_pylist() if row["re_caption"] is not None][
        :EXAMPLES
    ]
    return summary, quality, examples


def score_and_curate(out: Path, shards: Path, world: Path) -> tuple[dict, dict]:
    """Score both captions with the shipped reference CLIP (the scoring job on Ray), then curate the scored tables
    with DataComp's CLIP-score top-30% preset; returns the job summary and the data card."""
    from recap.curation.curate import CurateConfig, curate
    from recap.jobs.score import ScoreJobConfig, run_score_job

    scored = out / "scored"
    if scored.exists():
        shutil.rmtree(scored)  # scored tables of an earlier world
    config = ScoreJobConfig(
        input=[str(shards)], captions=str(out / "captions"), output=str(scored), **local_job_resources()
    )
    summary = run_score_job(config)
    card = curate(
        CurateConfig.with_preset("datacomp-clip-top30", scored=str(scored), out=str(out / "release"), world=str(world))
    )
    return summary, card


def draw_with_shipped_dit(out: Path, eval_split: Path, count: int = 16) -> dict:
    """The shipped p=0 Recap-DiT draws the first `count` ground-truth captions of the eval split (seed 0); the
    shipped judge reads the images. Returns the judged scores and the grid's path."""
    from recap.evaluation.image_grid import save_grid
    from recap.evaluation.t2i_eval import prompt_attribute_scores
    from recap.models.assets import shipped_t2i
    from recap.models.judge import judge_images, load_judge, shipped_judge
    from recap.models.t2i import load_t2i
    from recap.world.scene import Scene

    truth = load_truth(eval_split.parent, eval_split.name).slice(0, count).to_pylist()
    prompts = [row["caption"] for row in truth]
    images = load_t2i(shipped_t2i()).generate(prompts, seed=0)
    judge = load_judge(shipped_judge())
    scenes = [Scene.from_json(row["scene"]) for row in truth]
    scores = prompt_attribute_scores(scenes, judge_images(judge, images), list(judge.vocabulary.positions))
    return {"prompt_attribute": scores, "grid": str(save_grid(out / "grid.png", images, prompts, columns=8))}


def run_demo(out: str | Path = "runs/demo", size: int = 2000, seed: int = 0, retrain_captioner: bool = False) -> dict:
    """World, download, recaption the web split through the Ray job, score and curate it, caption the held-out
    eval split; print and return a summary."""
    from recap.caption_quality import caption_world_split
    from recap.models.captioner import CaptionerConfig, load_captioner

    started = time.perf_counter()
    out = ensure_writable_folder(out, "demo folder")
    world, shards = out / "world", out / "shards"
    timings = {}

    print(f"[1/7] generating the embedded world ({size} web images, seed {seed}) in {world}")
    t0 = time.perf_counter()
    manifest = generate_world(WorldConfig(size=size, seed=seed), world, overwrite=True)
    timings["world_s"] = round(time.perf_counter() - t0, 1)

    print(f"[2/7] downloading the web split with img2dataset from a local server into {shards}")
    t0 = time.perf_counter()
    if shards.exists():
        shutil.rmtree(shards)  # a fresh world may differ from the one these shards came from
    config = DownloadConfig(
        metadata=str(world / "web" / "metadata"),
        out=str(shards),
        image_size=manifest["config"]["image_size"],
        samples_per_shard=max(100, size // 8),
        timeout=3,
    )
    summary = download_world(world, "web", config).to_dict()
    timings["download_s"] = round(time.perf_counter() - t0, 1)
    reconciliation = reconcile_download(world, "web", shards)

    model = _captioner_path(out, retrain_captioner, timings)
    print(f"[3/7] recaptioning the downloaded web shards with the Ray Data job into {out / 'captions'}")
    t0 = time.perf_counter()
    job, web_quality, examples = recaption_web_split(out, shards, world, model)
    timings["recaption_job_s"] = round(time.perf_counter() - t0, 1)

    print(f"[4/7] scoring both captions with the reference CLIP (Ray Data job) into {out / 'scored'}")
    print(f"[5/7] curating the scored tables (DataComp's CLIP-score top 30%) into {out / 'release'}")
    t0 = time.perf_counter()
    scoring, card = score_and_curate(out, shards, world)
    timings["score_and_curate_s"] = round(time.perf_counter() - t0, 1)

    print("[6/7] captioning the held-out eval split (the captioner's own quality check)")
    t0 = time.perf_counter()
    captioner = load_captioner(CaptionerConfig(model=str(model), batch_size=32, device="cpu"))
    rows, caption_quality = caption_world_split(captioner, world, "eval")
    timings["eval_captioning_s"] = round(time.perf_counter() - t0, 1)

    print(f"[7/7] drawing eval-split captions with the shipped Recap-DiT (p=0) into {out / 'dit'}")
    t0 = time.perf_counter()
    drawing = draw_with_shipped_dit(out / "dit", world / "eval")
    timings["dit_samples_s"] = round(time.perf_counter() - t0, 1)
    timings["total_s"] = round(time.perf_counter() - started, 1)

    web = manifest["splits"]["web"]
    result = {
        "world": str(world),
        "shards": str(shards),
        "captions": str(out / "captions"),
        "captioner": str(model),
        "splits": {split: info["size"] for split, info in manifest["splits"].items()},
        "download": summary,
        "served_vs_recorded": reconciliation,
        "alt_text_quality": web["alt_text_quality"],
        "recaption_job": job,
        "scoring_job": scoring,
        "release": {key: card[key] for key in ("rows_in", "rows_kept", "funnel", "clip_score", "world_quality")},
        "web_recaption_quality": web_quality,
        "captioner_quality_eval": caption_quality,
        "dit_samples": drawing,
        "timings": timings,
    }
    write_json_atomic(out / "demo_summary.json", result)

    print("\n=== recap demo summary ===")
    print("world splits: " + ", ".join(f"{split} {n}" for split, n in result["splits"].items()))
    print(f"alt-text kinds (web): {web['alt_kinds']}")
    print("\ndownload (img2dataset, web split):")
    print(download_report(summary))
    print("served as -> recorded by img2dataset: " + "; ".join(f"{k}: {v}" for k, v in reconciliation.items()))
    print(
        f"\nrecaption job (Ray Data, {job['shards_written']} shards): {job['rows']} rows, {job['rows_ok']} captioned, "
        f"{job['rows_failed']} failed {job['rows_by_status']}; {job['images_per_s']} images/s, "
        f"{job['output_tokens_per_s']} output tokens/s"
    )
    summaries = web_quality["summaries"]
    print(f"caption quality against the ground truth, web split ({job['rows_ok']} captioned images):")
    print(quality_table({"alt-text": summaries["org_caption"], "recaption": summaries["re_caption"]}))
    print("\nexamples (web split):")
    for row in examples:
        print(f"  alt-text : {row['org_caption']}\n  recaption: {row['re_caption']}\n  truth    : {row['truth']}\n")
    print(
        f"scoring job (Ray Data, reference CLIP): {scoring['rows']} rows, {scoring['rows_ok']} scored, "
        f"{scoring['re_caption_truncated_total']} recaptions longer than the CLIP's text context; "
        f"{scoring['images_per_s']} images/s"
    )
    scores = card["clip_score"]
    print(
        f"mean CLIP score (100 x cosine): alt-text {scores['org_clip_score']['scored']['mean']}, recaption "
        f"{scores['re_clip_score']['scored']['mean']}; AUC of the alt-text score at telling wrong alt-text from "
        f"descriptive: {card['world_quality']['auc_wrong_vs_descriptive']}"
    )
    print(f"curation funnel (DataComp CLIP-score top 30%): {card['rows_in']} in")
    for step in card["funnel"]:
        if step["dropped"]:
            print(f"  - {step['dropped']} {step['reason']} -> {step['remaining']}")
    print(f"  = {card['rows_kept']} kept; data card: {out / 'release' / 'data_card.md'}\n")
    print(f"held-out eval split ({len(rows)} images), captioner {model}:")
    print(quality_table({"alt-text": caption_quality["alt-text"], "recaption": caption_quality["recaption"]}))
    judged = drawing["prompt_attribute"]
    print(
        f"\nRecap-DiT (shipped, p=0) on {judged['images']} eval captions: {100 * judged['object_accuracy']:.1f}% of "
        f"the {judged['objects']} prompted objects drawn in their cell with the right shape, colour and size "
        f"(judge); grid with prompts: {drawing['grid']}"
    )
    print(
        f"\noutputs: world {world}, shards {shards}, captions {out / 'captions'}, scored {out / 'scored'}, "
        f"release {out / 'release'}, summary {out / 'demo_summary.json'}"
    )
    budget = 15 * 60
    verdict = "within" if timings["total_s"] <= budget else "OVER"
    print(f"time: {timings} ({verdict} the 15-minute budget)")
    return result
