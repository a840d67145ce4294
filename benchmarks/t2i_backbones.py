"""The Recap-DiT beside LEGO stacks and beta diffusion at the same training wall-clock (issue 26).

    python benchmarks/t2i_backbones.py --train runs/sweep/shards --captions runs/sweep/captions \
        --eval runs/sweep/world/eval --out runs/backbones --seeds 0,1

1. Calibrate: each arm trains `--calibration-steps` steps alone on one thread; its images/s gives its seconds per
   step. The budget is the DiT's recipe (`--dit-steps`, 2,500) at the DiT's measured rate, and every other arm
   gets the steps that fill the same budget (a slower step buys fewer steps). Run on a quiet machine.
2. Train every arm x seed (`--parallel` at once, one thread each), p = 0, as `recap train-t2i`.
3. Evaluate with `recap eval-t2i` (judged object accuracy, CLIP score, FD, images/s; one call per run,
   `--parallel` at once, with the Gaussian arms at `--steps` DDIM steps and the beta arms at `--beta-steps` of
   their own grid), then the LEGO skip curve (`--skip-bricks` 1, 0.75, 0.5, 0.25, 0 on the first seed).

Writes OUT/calibration.json, OUT/<arm>-s<seed>/ (the runs), OUT/eval-<arm>-s<seed>/ and
OUT/skip-<arm>-s<seed>-<fraction>/ (eval-t2i's), and OUT/backbones.md (the tables). Rerunning skips what is
done (trained models, eval.json files).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

# label -> train-t2i options
ARMS: dict[str, list[str]] = {
    "dit": [],
    "lego-pg": ["--model", "lego-pg"],
    "lego-pr": ["--model", "lego-pr"],
    "beta-klub": ["--process", "beta", "--beta-loss", "klub"],
    "beta-elbo": ["--process", "beta", "--beta-loss", "elbo"],
}
SKIP_FRACTIONS = (1.0, 0.75, 0.5, 0.25, 0.0)


def recap(arguments: list[str]) -> None:
    """Run one recap command in its own process (one torch thread), failing loudly."""
    command = [str(Path(sys.executable).parent / "recap"), *arguments, "--quiet"]
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def calibrate(args, arms: list[str], out: Path) -> dict:
    """Seconds per training step of each arm, measured alone; the steps each gets for the DiT's budget."""
    path = out / "calibration.json"
    found = json.loads(path.read_text()) if path.is_file() else {}
    for arm in arms:
        if arm in found:
            continue
        run = out / "calibration" / arm
        recap([*train_command(args, arm, run, seed=0), "--steps", str(args.calibration_steps)])
        summary = json.loads((run / "training_summary.json").read_text())
        found[arm] = {"seconds_per_step": args.batch_size / summary["images_per_s"]}
        path.write_text(json.dumps(found, indent=2) + "\n")
    if "dit" not in found:
        raise SystemExit("the DiT arm sets the budget: include it in --arms")
    budget = args.dit_steps * found["dit"]["seconds_per_step"]
    for measured in found.values():
        measured["steps"] = int(budget / measured["seconds_per_step"])
        measured["budget_seconds"] = round(budget)
    path.write_text(json.dumps(found, indent=2) + "\n")
    return found


def train_command(args, arm: str, run: Path, *, seed: int) -> list[str]:
    captions = ["--captions", args.captions] if args.captions else []  # none for a world split
    return [
        "train-t2i",
        "--train",
        args.train,
        *captions,
        "--p-original",
        "0",
        "--threads",
        "1",
        "--batch-size",
        str(args.batch_size),
        "--seed",
        str(seed),
        "--warmup-steps",
        str(args.warmup_steps),
        "--out",
        str(run),
        *ARMS[arm],
    ]


def train_all(args, arms: list[str], seeds: list[int], calibration: dict, out: Path) -> dict:
    """Train every arm x seed not yet trained; returns {run name: wall seconds} of the runs trained now."""
    jobs = [(arm, seed) for arm in arms for seed in seeds if not (out / f"{arm}-s{seed}" / "model").is_dir()]

    def one(job):
        arm, seed = job
        started = time.perf_counter()
        recap(
            [*train_command(args, arm, out / f"{arm}-s{seed}", seed=seed), "--steps", str(calibration[arm]["steps"])]
        )
        return f"{arm}-s{seed}", round(time.perf_counter() - started)

    with ThreadPoolExecutor(args.parallel) as pool:
        return dict(pool.map(one, jobs))


def evaluate(args, arm: str, seed: int, out: Path, *, skip: float | None = None) -> dict:
    """eval-t2i of one trained run (with `skip`, at that skip fraction); returns eval.json's entry for it."""
    label = f"{arm}-s{seed}"
    target = out / (f"eval-{label}" if skip is None else f"skip-{label}-{skip:g}")
    if not (target / "eval.json").is_file():
        steps = args.beta_steps if arm.startswith("beta") else args.steps
        command = ["eval-t2i", "--eval", args.eval, "--limit", str(args.limit), "--no-negatives", "--threads", "1"]
        command += ["--scale", str(args.scale), "--steps", str(steps), "--out", str(target)]
        command += ["--model", f"{label}={out / label / 'model'}"]
        if skip is not None:
            command += ["--skip-bricks", str(skip)]
        recap(command)
    return json.loads((target / "eval.json").read_text())["models"][label]


def evaluate_all(args, jobs: list[tuple[str, int, float | None]], out: Path) -> dict:
    """Every (arm, seed, skip) eval, `--parallel` at once (one thread each, so the images/s of every arm are
    measured under the same load: compare them with each other, not with a quiet machine's)."""
    with ThreadPoolExecutor(args.parallel) as pool:
        results = pool.map(lambda job: evaluate(args, job[0], job[1], out, skip=job[2]), jobs)
        return dict(zip(jobs, results, strict=True))


def row(result: dict) -> dict:
    return {
        "accuracy": 100 * result["prompt_attribute"]["object_accuracy"],
        "clip_score": result["clip_score"],
        "fd": result["frechet_distance"],
        "images_per_s": result["images_per_s"],
    }


def tables(calibration: dict, results: dict, skips: dict, trained: dict) -> str:
    lines = [
        "| arm | seed | steps (same wall-clock) | s/step | judged accuracy | CLIP score | FD | images/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (arm, seed, _), result in results.items():
        values, measured = row(result), calibration[arm]
        lines.append(
            f"| {arm} | {seed} | {measured['steps']:,} | {measured['seconds_per_step']:.3f} | "
            f"{values['accuracy']:.1f} | {values['clip_score']:.1f} | {values['fd']:.2f} | "
            f"{values['images_per_s']:.1f} |"
        )
    if skips:
        lines += ["", "| stack | skip after | judged accuracy | FD | images/s |", "|---|---|---|---|---|"]
        for (arm, _, fraction), result in skips.items():
            values = row(result)
            speed = values["images_per_s"]
            lines.append(f"| {arm} | {fraction:g} | {values['accuracy']:.1f} | {values['fd']:.2f} | {speed:.1f} |")
    if trained:
        lines += ["", "Training wall seconds this run: " + ", ".join(f"{k} {v}" for k, v in sorted(trained.items()))]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", required=True, help="webdataset shards of the sweep world")
    parser.add_argument("--captions", help="their caption table (not for a world split as --train)")
    parser.add_argument("--eval", required=True, help="world eval split")
    parser.add_argument("--out", required=True)
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, of {', '.join(ARMS)}")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--dit-steps", type=int, default=2500, help="the DiT's recipe, which sets the budget")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--calibration-steps", type=int, default=80)
    parser.add_argument("--warmup-steps", type=int, default=50, help="train-t2i's (the recipe's 50)")
    parser.add_argument("--parallel", type=int, default=2, help="trainings at once (one thread each)")
    parser.add_argument("--limit", type=int, default=1000, help="eval prompts")
    parser.add_argument("--scale", type=float, default=2.0, help="guidance scale for every arm")
    parser.add_argument("--steps", type=int, default=20, help="DDIM steps of the Gaussian arms")
    parser.add_argument("--beta-steps", type=int, default=200, help="steps of the beta arms (the authors' 200)")
    parser.add_argument("--no-skip-curve", dest="skip_curve", action="store_false")
    args = parser.parse_args(argv)

    arms = [arm for arm in args.arms.split(",") if arm]
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        parser.error(f"unknown arms {unknown}; choose from {', '.join(ARMS)}")
    seeds = [int(seed) for seed in args.seeds.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    calibration = calibrate(args, arms, out)
    trained = train_all(args, arms, seeds, calibration, out)
    results = evaluate_all(args, [(arm, seed, None) for arm in arms for seed in seeds], out)
    stacks = [arm for arm in arms if arm.startswith("lego")] if args.skip_curve else []
    # skipping after 100% of the steps never skips: the plain eval of the first seed is that point
    skips = evaluate_all(args, [(arm, seeds[0], f) for arm in stacks for f in SKIP_FRACTIONS if f < 1], out)
    skips.update({(arm, seeds[0], 1.0): results[arm, seeds[0], None] for arm in stacks})
    skips = dict(sorted(skips.items(), key=lambda item: (item[0][0], -item[0][2])))
    text = tables(calibration, results, skips, trained)
    (out / "backbones.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
