"""LEGO stacks at a 2x canvas: does each 32 px tile of a 64 px image look as well formed as a 32 px image? (issue 26)

    python benchmarks/lego_canvas.py --model pg=runs/backbones/lego-pg-s0/model \
        --model pr=runs/backbones/lego-pr-s0/model --eval runs/sweep/world/eval --out runs/canvas

Per model, the eval split's first `--limit` prompts are drawn at the training size and at `--size` (same seeds,
same guidance), and the judge reads every 32 px tile (recap.evaluation.canvas_tiles: well formed = at least one
object, every object read with shape and colour at p >= 0.9). The real eval images give the ceiling. Writes
OUT/canvas.json, OUT/canvas.md (the table) and OUT/grid-<label>.png (the first prompts at 1x over 2x).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, help="LABEL=FOLDER of a LEGO stack (repeat)")
    parser.add_argument("--eval", required=True, help="world eval split (prompts, scenes, real images)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--limit", type=int, default=300, help="prompts")
    parser.add_argument("--size", type=int, default=64, help="the larger canvas side")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--scale", type=float, default=2.0)
    parser.add_argument("--grid", type=int, default=8, help="prompts in each grid")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from recap.evaluation.canvas_tiles import tile_form
    from recap.evaluation.image_grid import save_grid
    from recap.evaluation.t2i_eval import T2IEvalConfig, T2IEvaluator
    from recap.models.t2i import load_t2i

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models = dict(model.split("=", 1) for model in args.model)
    config = T2IEvalConfig(models=list(models.values()), eval=args.eval, out=str(out), limit=args.limit)
    world = T2IEvaluator(config, progress=False)
    prompts, scenes = world.prompts, world.scenes
    results = {"real": {"1x": tile_form(world.judge, world.real_images, scenes)}, "config": vars(args)}
    for label, folder in models.items():
        model = load_t2i(folder)
        base = model.codec.image_size
        results[label] = {}
        for name, size in (("1x", base), (f"{args.size // base}x", args.size)):
            started = time.perf_counter()
            images = model.generate(prompts, scale=args.scale, steps=args.steps, size=size, batch_size=32)
            seconds = time.perf_counter() - started
            results[label][name] = {**tile_form(world.judge, images, scenes), "images_per_s": len(images) / seconds}
            if name == "1x":
                small = images[: args.grid]
            else:
                upscaled = np.repeat(np.repeat(small, size // base, axis=1), size // base, axis=2)
                both = np.concatenate([upscaled, images[: args.grid]])
                texts = [f"1x: {p}" for p in prompts[: args.grid]] + [f"{name}: {p}" for p in prompts[: args.grid]]
                save_grid(out / f"grid-{label}.png", both, texts, columns=args.grid, cell=160)
        print(label, json.dumps(results[label]), flush=True)
    (out / "canvas.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "| images | canvas | well formed | empty | objects / tile | read clearly | on prompt | images/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, by_canvas in results.items():
        if label == "config":
            continue
        for name, form in by_canvas.items():
            speed = f"{form['images_per_s']:.1f}" if "images_per_s" in form else "-"
            lines.append(
                f"| {label} | {name} ({form['tiles_per_image']} tile/image) | {100 * form['well_formed']:.1f} | "
                f"{100 * form['empty']:.1f} | {form['objects_per_tile']:.2f} | {100 * form['clear']:.1f} | "
                f"{100 * form['on_prompt']:.1f} | {speed} |"
            )
    text = "\n".join(lines) + "\n"
    (out / "canvas.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
