"""`recap sample`'s work: prompts from text, a file or a caption table; images drawn with a text-to-image model
and saved as PNGs, a captioned grid and samples.json."""

from __future__ import annotations

import json
from pathlib import Path

from recap.errors import RecapError


def read_prompts(prompts: list[str], prompt_file: str | None, table: str | None, column: str, limit: int) -> list[str]:
    """`prompts`, then the non-empty lines of `prompt_file`, then `table`'s `column` (each source at most `limit`).
    RecapError when there are none, or a file is missing."""
    from recap.io_utils import read_caption_table

    prompts = list(prompts)
    if prompt_file:
        path = Path(prompt_file)
        if not path.is_file():
            raise RecapError(f"--prompts {path}: no such file")
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        prompts += [line for line in lines if line][:limit]
    if table:
        texts = read_caption_table(table, [column])[column].to_pylist()
        prompts += [text for text in texts if text][:limit]
    if not prompts:
        raise RecapError("no prompts: give --prompt TEXT, --prompts FILE or --prompt-table TABLE")
    return prompts


def draw_and_save(
    prompts: list[str],
    out: str | Path,
    *,
    model: str | None = None,
    negative: str | None = None,
    guidance: str | None = None,
    **generation,
) -> dict:
    """Draw one image per prompt with `model` (default: the shipped p=0 Recap-DiT) and `generation`, the options of
    `T2IModel.generate` (scale, steps, scheduler, seed, ...); write OUT/NNNNN.png, OUT/grid.png and
    OUT/samples.json, and return that record (with the grid's path)."""
    from PIL import Image

    from recap.evaluation.image_grid import save_grid
    from recap.models.assets import shipped_t2i
    from recap.models.t2i import load_t2i

    guidance = guidance or ("negative" if negative else "cfg")
    if guidance != "cfg" and not negative:
        raise RecapError(f"--guidance {guidance} needs --negative TEXT")
    images = load_t2i(model or shipped_t2i()).generate(
        prompts, negative_prompts=negative, guidance=guidance, **generation
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(images):
        Image.fromarray(image).save(out / f"{index:05d}.png")
    labels = [f"{prompt} [-{negative}]" if negative else prompt for prompt in prompts]
    grid = save_grid(out / "grid.png", images, labels)
    seed = generation.get("seed", 0)
    record = {
        "model": str(model or "shipped"),
        "guidance": guidance,
        "negative": negative,
        **generation,
        "images": [
            {"file": f"{index:05d}.png", "prompt": prompt, "seed": seed + index}
            for index, prompt in enumerate(prompts)
        ],
    }
    (out / "samples.json").write_text(json.dumps(record, indent=2) + "\n")
    return {**record, "grid": str(grid)}
