"""The demo's steps: the whole paper in miniature on the embedded world, each step a function of the run that
returns a JSON-able result (with the command that reproduces it) and a one-line summary of that result."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from recap.demo.config import DemoConfig
from recap.errors import RecapError
from recap.report import display_path
from recap.world.generate import truth_by_uid

EXAMPLES = 12  # web images shown with alt-text, recaption and truth in the report
EVAL_CAPTIONS = "eval_captions.parquet"  # the eval split recaptioned: the DiT's recaption prompts


@dataclass(frozen=True)
class Step:
    """One demo step: `run(config, results)` returns its result (`results` holds the earlier steps' results by
    name); `summary(result)` is the line printed after it (or when it is skipped as finished earlier)."""

    name: str
    title: str
    run: Callable[[DemoConfig, dict], dict]
    summary: Callable[[dict], str]


def reconcile_download(world: Path, split: str, shards: Path) -> dict[str, dict[str, int]]:
    """How each URL was served (world truth) against what img2dataset recorded for it, joined on uid."""
    served = truth_by_uid(world, split, "serve")
    table: dict[str, Counter] = {}
    for path in sorted(shards.glob("*.parquet")):
        rows = pq.read_table(path, columns=["uid", "status"])
        for uid, status in zip(rows["uid"].to_pylist(), rows["status"].to_pylist(), strict=True):
            table.setdefault(served.get(uid, "unknown"), Counter())[status] += 1
    return {serve: dict(counts) for serve, counts in sorted(table.items())}


def local_job_resources(config: DemoConfig) -> dict:
    """The demo jobs' share of this machine: one actor with every CPU but one, and one read and decode task at a
    time (on 2 cores a second one only competes with the actor's start-up, benchmarks/RESULTS.md; decoding needs a
    few % of a core). The demo starts (or joins) Ray itself, so the job's executor finds it running."""
    cpus = os.cpu_count() or 1
    return {
        "executor": "ray",
        "ray_address": config.ray_address or "local",
        "actors": 1,
        "cpus_per_actor": float(max(1, cpus - 1)) if cpus >= 2 else 0.5,
        "decode_cpus": 1.0 if cpus >= 2 else 0.5,
    }


def _fresh(folder: Path) -> Path:
    """An empty folder: a step's outputs of an earlier world are removed before it runs again."""
    if folder.exists():
        shutil.rmtree(folder)
    return folder


def make_world(config: DemoConfig, results: dict) -> dict:
    from recap.world.generate import WorldConfig, generate_world

    world = config.folder / "world"
    options = dict(size=config.size, seed=config.seed, sft_size=config.sft_size, eval_size=config.eval_size)
    manifest = generate_world(WorldConfig(**options), world, overwrite=True)
    web = manifest["splits"]["web"]
    return {
        "world": str(world),
        "image_size": manifest["config"]["image_size"],
        "splits": {split: info["size"] for split, info in manifest["splits"].items()},
        "alt_kinds": web["alt_kinds"],
        "alt_text_quality": web["alt_text_quality"],
        "command": f"recap world --out {world} --size {config.size} --sft-size {config.sft_size} "
        f"--eval-size {config.eval_size} --seed {config.seed} --overwrite",
    }


def download(config: DemoConfig, results: dict) -> dict:
    from recap.ingest.download import DownloadConfig, download_world

    world, shards = Path(results["world"]["world"]), _fresh(config.folder / "shards")
    per_shard = max(100, config.size // 8)
    options = dict(image_size=results["world"]["image_size"], samples_per_shard=per_shard, timeout=3)
    metadata = str(world / "web" / "metadata")
    summary = download_world(world, "web", DownloadConfig(metadata=metadata, out=str(shards), **options))
    return {
        "shards": str(shards),
        "summary": summary.to_dict(),
        "served_vs_recorded": reconcile_download(world, "web", shards),
        "command": f"recap download --world {world} --out {shards} --samples-per-shard {per_shard} --timeout 3",
    }


def captioner_path(config: DemoConfig) -> Path:
    """The shipped tiny captioner, or one retrained with the shipped recipe (about 30 minutes on 2 cores)."""
    from recap.models.assets import shipped_captioner

    if not config.retrain_captioner:
        return shipped_captioner()
    from recap.training.captioner_training import CaptionerTrainer
    from recap.training.recipes import CAPTIONER_WORLD, tiny_captioner_recipe
    from recap.world.generate import generate_world

    world, out = config.folder / "captioner-world", config.folder / "captioner"
    if not (out / "model" / "config.json").exists():
        generate_world(CAPTIONER_WORLD, world, overwrite=True)
        CaptionerTrainer(tiny_captioner_recipe(str(world / "sft"), str(world / "eval"), str(out))).run()
    return out / "model"


def recaption(config: DemoConfig, results: dict) -> dict:
    """The recaption job (Ray Data) over the downloaded shards, scored against the truth; every downloaded sample
    must be a row of the caption tables."""
    from recap.caption_quality import score_table
    from recap.jobs.caption import CaptionJobConfig, run_caption_job

    world, shards = results["world"]["world"], results["download"]["shards"]
    captions = _fresh(config.folder / "captions")
    model = captioner_path(config)
    job = CaptionJobConfig(
        input=[shards],
        output=str(captions),
        captioner={"model": str(model), "batch_size": 32},
        **local_job_resources(config),
    )
    summary = run_caption_job(job)
    downloaded = results["download"]["summary"]["successes"]
    if summary["rows"] != downloaded:
        raise RecapError(
            f"the caption tables in {captions} hold {summary['rows']} rows but img2dataset downloaded {downloaded} "
            f"samples into {shards}: a sample was lost or duplicated (see the job's _run_summary.json)"
        )
    quality = score_table(captions, world, column="re_caption", baseline="org_caption")
    return {
        "captions": str(captions),
        "captioner": display_path(model),  # as the report names it
        "captioner_path": str(model),
        "job": summary,
        "downloaded": downloaded,
        "quality": quality["summaries"],
        "examples": _examples(captions, Path(world)),
        "command": f"recap caption --input {shards} --output {captions} --captioner {display_path(model)} "
        "--batch-size 32 "
        "--actors 1 --ray-address local",
    }


def _examples(captions: Path, world: Path) -> list[dict]:
    """The first captioned rows of the first table, with the ground truth and the image file the world served."""
    truth = truth_by_uid(world, "web", "caption")
    table = pq.read_table(sorted(captions.glob("*.parquet"))[0], columns=["uid", "org_caption", "re_caption"])
    rows = [row for row in table.to_pylist() if row["re_caption"] is not None][:EXAMPLES]
    images = {path.stem: str(path) for path in (world / "web" / "images").iterdir()}
    return [{**row, "truth": truth.get(row["uid"]), "image": images.get(row["uid"])} for row in rows]


def score(config: DemoConfig, results: dict) -> dict:
    from recap.jobs.score import ScoreJobConfig, run_score_job

    shards, captions = results["download"]["shards"], results["recaption"]["captions"]
    scored = _fresh(config.folder / "scored")
    job = ScoreJobConfig(input=[shards], captions=captions, output=str(scored), **local_job_resources(config))
    return {
        "scored": str(scored),
        "job": run_score_job(job),
        "command": f"recap score --input {shards} --captions {captions} --output {scored} --actors 1 "
        "--ray-address local",
    }


def curate_release(config: DemoConfig, results: dict) -> dict:
    from recap.curation.curate import CurateConfig, curate

    scored, world = results["score"]["scored"], results["world"]["world"]
    release = _fresh(config.folder / "release")
    card = curate(CurateConfig.with_preset("datacomp-clip-top30", scored=scored, out=str(release), world=world))
    keys = ("rows_in", "rows_kept", "funnel", "clip_score", "world_quality", "figures")
    return {
        "release": str(release),
        "card": {key: card.get(key) for key in keys},
        "data_card": str(release / "data_card.md"),
        "command": f"recap curate --scored {scored} --out {release} --preset datacomp-clip-top30 --world {world}",
    }


def caption_eval_split(config: DemoConfig, results: dict) -> dict:
    """The captioner's own check on held-out images; the recaptions are kept as the DiT's recaption prompts."""
    from recap.caption_quality import caption_world_split
    from recap.models.captioner import CaptionerConfig, load_captioner

    world, model = results["world"]["world"], results["recaption"]["captioner_path"]
    captioner = load_captioner(CaptionerConfig(model=model, batch_size=32, device="cpu"))
    rows, quality = caption_world_split(captioner, world, "eval")
    table = config.folder / EVAL_CAPTIONS
    columns = {
        "uid": [row["uid"] for row in rows],
        "org_caption": [row["alt_text"] for row in rows],
        "re_caption": [row["result"].text for row in rows],
        "truth": [row["truth"] for row in rows],
    }
    pq.write_table(pa.table(columns), table)
    return {
        "table": str(table),
        "images": len(rows),
        "quality": quality,
        # the captions were made in this process (the eval split is not downloaded into shards); the command
        # recomputes the quality table from them
        "command": f"recap eval-captions --table {table} --world {world}",
    }


def clip_sweep(config: DemoConfig, results: dict) -> dict:
    """Recap-CLIP at several p on the demo's own recaptions, evaluated on the eval split (short training)."""
    from recap.evaluation.clip_sweep import DEFAULT_MODEL, ClipSweepConfig, run_sweep
    from recap.training.clip_training import ClipTrainingConfig

    shards, captions = results["download"]["shards"], results["recaption"]["captions"]
    eval_split, out = str(Path(results["world"]["world"]) / "eval"), config.folder / "clip"
    training = ClipTrainingConfig(
        train=shards,
        captions=captions,
        out=str(out),
        model=DEFAULT_MODEL,
        steps=config.clip_steps,
        warmup_steps=config.clip_steps // 10,
        batch_size=config.clip_batch_size,
        seed=0,
    )
    parallel = 2 if (os.cpu_count() or 1) >= 2 else 1
    p_values = config.clip_p_values
    sweep = run_sweep(ClipSweepConfig(training=training, eval=eval_split, p_values=p_values, parallel=parallel))
    return {
        "out": str(out),
        "sweep": sweep,
        "command": f"recap clip-sweep --train {shards} --captions {captions} --eval {eval_split} --out {out} "
        f"--p-values {','.join(str(p) for p in p_values)} --steps {config.clip_steps} "
        f"--batch-size {config.clip_batch_size} --parallel {parallel}",
    }


def dit_models(config: DemoConfig, results: dict) -> dict[str, str]:
    """Label -> DiT folder per p: the shipped pair and the one-step generator distilled from the p = 0 one, or
    (with --train-all) a pair trained on the demo's data (the shipped one-step generator has another teacher)."""
    from recap.models.assets import shipped_t2i

    if not config.train_all:  # the shipped pair, and the one-step generator distilled from the p = 0 one
        from recap.models.assets import shipped_one_step

        return {**{f"p{p}": str(shipped_t2i(p)) for p in (0.0, 1.0)}, "p0.0-1step": str(shipped_one_step())}
    from recap.evaluation.t2i_sweep import T2ISweepConfig, run_t2i_sweep
    from recap.training.t2i_training import T2ITrainingConfig

    out = config.folder / "dit-training"
    training = T2ITrainingConfig(
        train=results["download"]["shards"], captions=results["recaption"]["captions"], out=str(out)
    )
    eval_split = str(Path(results["world"]["world"]) / "eval")
    run_t2i_sweep(T2ISweepConfig(training=training, eval=eval_split, p_values=(0.0, 1.0), parallel=2))
    return {f"p{p}": str(out / f"p-{p:.2f}" / "model") for p in (0.0, 1.0)}


def draw_with_dit(config: DemoConfig, results: dict) -> dict:
    """Recap-DiT at p=0 and p=1 draw the same eval prompts, from the ground truth and from the eval split's
    recaptions (unless every recaption is the truth word for word: the images would be the same); the shipped
    judge reads the images."""
    from recap.evaluation.t2i_eval import T2IEvalConfig, T2IEvaluator

    models = dit_models(config, results)
    eval_split = str(Path(results["world"]["world"]) / "eval")
    labelled = [f"{label}={folder}" for label, folder in models.items()]
    table = results["eval_captions"]["table"]
    prompts = pq.read_table(table, columns=["re_caption", "truth"]).to_pylist()[: config.dit_prompts]
    same = sum(row["re_caption"] == row["truth"] for row in prompts)
    sources = {"truth": None} if same == len(prompts) else {"truth": None, "recaption": table}
    reports = {}
    for source, prompt_table in sources.items():
        out = config.folder / "dit" / source
        options = dict(prompt_table=prompt_table, prompt_column="re_caption") if prompt_table else {}
        evaluation = T2IEvalConfig(
            models=labelled,
            eval=eval_split,
            out=str(out),
            limit=config.dit_prompts,
            negatives=False,
            grid_images=config.dit_grid_images,
            **options,
        )
        reports[source] = T2IEvaluator(evaluation, progress=True).run()
    out = config.folder / "dit"
    shown = [f"{label}={display_path(folder)}" for label, folder in models.items()]
    command = f"recap eval-t2i {' '.join(f'--model {item}' for item in shown)} --eval {eval_split} "
    command += f"--limit {config.dit_prompts} --no-negatives"
    recaption_options = f"--prompt-table {results['eval_captions']['table']} --prompt-column re_caption"
    return {
        "models": models,
        "trained": config.train_all,
        "reports": reports,
        "recaptions_equal_to_truth": same,
        "prompts": len(prompts),
        "commands": {
            source: f"{command} {recaption_options + ' ' if prompt_table else ''}--out {out / source}"
            for source, prompt_table in sources.items()
        },
    }
