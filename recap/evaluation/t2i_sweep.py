"""The paper's Table 7 on the world: Recap-DiT trained at p=0 (recaptions only) and p=1 (alt-text only) on the
same shards, steps and seed, then evaluated on the same prompts and seed, with the claims checked.

    recap t2i-sweep --train runs/sweep/shards --captions runs/sweep/captions --eval runs/sweep/world/eval \
        --out runs/sweep/dit

Each p trains in OUT/p-0.00/ (a `recap train-t2i` run folder: rerunning resumes it; a p trained earlier with
the same config is skipped), `--parallel` of them at once. Then `recap eval-t2i` runs on all of them into
OUT/eval/, and OUT/sweep.md / sweep.json hold the table, the claims and the times.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from recap.evaluation.clip_sweep import p_label
from recap.evaluation.p_runs import check_p_values, identity, run_each_p
from recap.evaluation.t2i_eval import T2IEvalConfig, T2IEvaluator, markdown_report
from recap.io_utils import write_json_atomic
from recap.models.t2i import record_guidance_scale
from recap.training.t2i_training import T2ITrainer, T2ITrainingConfig

DEFAULT_P_VALUES = (0.0, 1.0)
RESULT_FILE = "training_result.json"
# The bar for the world: p=0 beats p=1 on judged prompt-attribute accuracy by this many points.
OBJECT_ACCURACY_GAIN = 15.0


@dataclass(kw_only=True)
class T2ISweepConfig:
    """`training` is the recipe every p shares (its `out` and `p_original` are set per p); `evaluation` the
    eval every model gets (its `models` and `out` are set here)."""

    training: T2ITrainingConfig
    evaluation: T2IEvalConfig
    p_values: tuple[float, ...] = DEFAULT_P_VALUES
    parallel: int = 2

    def __post_init__(self) -> None:
        check_p_values(self.p_values, self.parallel)
        truth = Path(self.evaluation.eval) / "truth.parquet"
        if not truth.exists():
            raise ValueError(f"--eval {self.evaluation.eval} is not a world split folder (no truth.parquet)")
        import pyarrow.parquet as pq

        wanted = self.evaluation.limit + (self.evaluation.validation if self.evaluation.scales else 0)
        images = pq.ParquetFile(truth).metadata.num_rows
        if images < wanted:  # said before hours of training, not after
            raise ValueError(
                f"--eval {self.evaluation.eval} has {images} images, fewer than --limit + --validation = {wanted}"
            )

    @property
    def out(self) -> Path:
        return Path(self.training.out)


def train_one(run: T2ITrainingConfig, *, progress: bool = False) -> dict:
    """Train one p (resuming its run folder) and store what the sweep needs beside it."""
    started = time.perf_counter()
    summary = T2ITrainer(run, progress=progress).run()
    result = {
        "p_original": run.p_original,
        "training_config": asdict(run),
        "train_seconds": round(time.perf_counter() - started, 1),
        "steps_this_run": summary["steps_this_run"],
        "final_loss": summary["final_loss"],
        "caption_choices": summary["caption_choices"],
        "model": summary["model"],
    }
    write_json_atomic(Path(run.out) / RESULT_FILE, result)
    return result


def label(p: float) -> str:
    return f"p{p_label(p)}"


def claims(report: dict, p_values: tuple[float, ...]) -> dict:
    """The paper's claim on this eval (p=0 over p=1: judged accuracy by >= 15 points, and CLIP score) and the two
    negative-prompt checks per model."""
    models = report["models"]
    result: dict = {}
    if 0.0 in p_values and 1.0 in p_values:
        recap, alt = models[label(0.0)], models[label(1.0)]
        gain = 100 * (recap["prompt_attribute"]["object_accuracy"] - alt["prompt_attribute"]["object_accuracy"])
        result.update(
            object_accuracy_gain_p0_over_p1=round(gain, 1),
            object_accuracy_holds=gain >= OBJECT_ACCURACY_GAIN,
            clip_score_gain_p0_over_p1=round(recap["clip_score"] - alt["clip_score"], 2),
            clip_score_holds=recap["clip_score"] > alt["clip_score"],
            frechet_distance={name: round(models[name]["frechet_distance"], 3) for name in models},
        )
    else:
        result["note"] = "the claims compare p=0.0 with p=1.0; include both to check them"
    for name, model in models.items():
        check = model.get("negatives")
        if check:
            colour, removed = check["colour_rate"], check.get("own_object_removed_when_drawn")
            result[f"{name}_negative_colour_lowered"] = {
                mode: colour[mode] < colour["none"] for mode in ("negative", "perp-neg")
            }
            if removed and removed["negative"] is not None:  # paired on the seed: images that had the object
                result[f"{name}_perp_neg_keeps_own_object"] = removed["perp-neg"] < removed["negative"]
    return result


def run_t2i_sweep(config: T2ISweepConfig, *, progress: bool = True) -> dict:
    """Train every p (skipping finished ones), evaluate them together, write OUT/sweep.json and OUT/sweep.md."""

    started = time.perf_counter()
    config.out.mkdir(parents=True, exist_ok=True)
    training, trained = run_each_p(
        train_one,
        config.training,
        config.out,
        config.p_values,
        image_size=config.training.image_size,
        result_file=RESULT_FILE,
        parallel=config.parallel,
        progress=progress,
        desc="t2i-sweep",
    )
    train_seconds = time.perf_counter() - started
    models = [f"{label(p)}={trained[p]['model']}" for p in config.p_values]
    evaluation = replace(config.evaluation, models=models, out=str(config.out / "eval"))
    report = T2IEvaluator(evaluation, progress=progress).run()
    for p in config.p_values:  # each model then draws with the scale chosen for it, without --scale
        result = report["models"][label(p)]
        by_scale = result["validation_object_accuracy_by_scale"]
        if by_scale:
            tried = ", ".join(f"{scale} -> {100 * accuracy:.1f}" for scale, accuracy in by_scale.items())
            chosen_on = f"judged object accuracy on {evaluation.eval} prompts after the eval's: {tried}"
            record_guidance_scale(trained[p]["model"], result["scale"], chosen_on)
    sweep = {
        "training": {
            key: value for key, value in identity(asdict(training)).items() if key not in ("out", "p_original")
        },
        "train_seconds": {label(p): trained[p]["train_seconds"] for p in config.p_values},
        "train_wall_seconds_this_run": round(train_seconds, 1),
        "eval_seconds": report["seconds"],
        "seconds_this_run": round(time.perf_counter() - started, 1),
        "parallel": config.parallel,
        "claims": claims(report, config.p_values),
        "eval": report,
    }
    write_json_atomic(config.out / "sweep.json", sweep)
    (config.out / "sweep.md").write_text(markdown_sweep(sweep))
    return sweep


def markdown_sweep(sweep: dict) -> str:
    training, result = sweep["training"], sweep["claims"]
    lines = [
        "# Recap-DiT p sweep",
        "",
        f"`{training['model']}` at {training['image_size']} px, {training['steps']} steps of batch "
        f"{training['batch_size']}, seed {training['seed']}, on `{training['train']}` with captions "
        f"`{training['captions']}`. p is the share of original captions (1.0: alt-text only, 0.0: recaptions only). "
        f"Training {sweep['train_wall_seconds_this_run'] / 60:.1f} min this run ({sweep['parallel']} at once), "
        f"evaluation {sweep['eval_seconds'] / 60:.1f} min.",
        "",
    ]
    lines += markdown_report(sweep["eval"]).splitlines()[2:]  # the eval's tables, without its title
    verdict = {True: "holds", False: "does not hold"}
    if "note" in result:
        lines += ["", result["note"]]
    else:
        lines += [
            "",
            f"- Prompt following: p=0.0 beats p=1.0 on judged object accuracy by "
            f"{result['object_accuracy_gain_p0_over_p1']:.1f} points (claim: >= {OBJECT_ACCURACY_GAIN:.0f}): "
            f"{verdict[result['object_accuracy_holds']]}.",
            f"- CLIP score: p=0.0 minus p=1.0 = {result['clip_score_gain_p0_over_p1']:+.2f} (claim: > 0): "
            f"{verdict[result['clip_score_holds']]}.",
        ]
    for name in sweep["eval"]["models"]:
        if f"{name}_negative_colour_lowered" in result:
            lowered = result[f"{name}_negative_colour_lowered"]
            modes = [mode for mode in ("negative", "perp-neg") if lowered[mode]]
            lines.append(f"- {name}, negative colour lowered under: {', '.join(modes) or 'neither mode'}.")
        if f"{name}_perp_neg_keeps_own_object" in result:
            lines.append(
                f"- {name}, the prompt's own object as the negative: Perp-Neg removes it less often than the plain "
                f"negative (paired on the seed): {verdict[result[f'{name}_perp_neg_keeps_own_object']]}."
            )
    return "\n".join(lines) + "\n"
