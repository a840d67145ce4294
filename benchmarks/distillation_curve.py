"""The learning curve of a `recap distill-t2i` run: every snapshot of its EMA generator (OUT/snapshots/images-N,
from --snapshot-every) and its final model, evaluated by `recap eval-t2i` beside the teacher on the same prompts
and seed, as judged object accuracy, CLIP score and FD against images seen.

    python benchmarks/distillation_curve.py --run runs/distill/sid-k2 --eval runs/sweep/world/eval --limit 1000

Writes RUN/curve/eval.json + eval.md (eval-t2i's), RUN/curve/curve.md (the table) and RUN/curve/curve.png.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


def curve_rows(report: dict) -> list[dict]:
    """(images seen, accuracy, CLIP score, FD, images/s) per evaluated snapshot, in order of images seen."""
    rows = []
    for label, result in report["models"].items():
        if label == "teacher":
            continue
        rows.append(
            {
                "images": int(label.removeprefix("images-")) if label.startswith("images-") else None,
                "label": label,
                "object_accuracy": 100 * result["prompt_attribute"]["object_accuracy"],
                "clip_score": result["clip_score"],
                "frechet_distance": result["frechet_distance"],
                "images_per_s": result["images_per_s"],
            }
        )
    return sorted(rows, key=lambda row: (row["images"] is None, row["images"] or 0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a recap distill-t2i run folder (with snapshots/)")
    parser.add_argument("--eval", required=True, help="world eval split")
    parser.add_argument("--limit", type=int, default=1000, help="eval prompts")
    parser.add_argument("--teacher", help="the teacher folder (default: the run's)")
    args = parser.parse_args(argv)

    from recap.cli import main as recap
    from recap.report import display_path

    run = Path(args.run)
    config = json.loads((run / "distillation_summary.json").read_text())["config"]
    models = [f"teacher={args.teacher or config['teacher']}"]
    models += [f"{path.name}={path}" for path in sorted((run / "snapshots").glob("images-*"))]
    models.append(f"final={run / 'model'}")
    out = run / "curve"
    command = ["eval-t2i", "--eval", args.eval, "--limit", str(args.limit), "--no-negatives", "--out", str(out)]
    for model in models:
        command += ["--model", model]
    if recap([*command, "--quiet"]) != 0:
        return 1
    report = json.loads((out / "eval.json").read_text())
    teacher = report["models"]["teacher"]
    rows = curve_rows(report)
    lines = [
        f"Teacher ({display_path(config['teacher'])}, guidance {teacher['scale']:g}, 20 steps): judged object "
        f"accuracy {100 * teacher['prompt_attribute']['object_accuracy']:.1f}%, "
        f"CLIP score {teacher['clip_score']:.1f}, "
        f"FD {teacher['frechet_distance']:.2f}, {teacher['images_per_s']:.1f} images/s ({report['prompts']} prompts).",
        "",
        "| images seen | object accuracy | CLIP score | FD | images/s |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        seen = f"{row['images']:,}" if row["images"] is not None else "final (EMA)"
        lines.append(
            f"| {seen} | {row['object_accuracy']:.1f} | {row['clip_score']:.1f} | {row['frechet_distance']:.2f} "
            f"| {row['images_per_s']:.0f} |"
        )
    (out / "curve.md").write_text("\n".join(lines) + "\n")
    _plot(rows, teacher, out / "curve.png")
    print("\n".join(lines))
    return 0


def _plot(rows: list[dict], teacher: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [row for row in rows if row["images"] is not None]
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.2), dpi=100)
    for axis, key, name, teacher_value in (
        (axes[0], "frechet_distance", "FD (lower is better)", teacher["frechet_distance"]),
        (
            axes[1],
            "object_accuracy",
            "judged object accuracy (%)",
            100 * teacher["prompt_attribute"]["object_accuracy"],
        ),
    ):
        axis.plot([row["images"] for row in points], [row[key] for row in points], marker="o", label="one step (EMA)")
        axis.axhline(teacher_value, color="gray", linestyle="--", label="teacher, 20 steps")
        axis.set_xlabel("images seen")
        axis.set_title(name)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


if __name__ == "__main__":
    sys.exit(main())
