"""Image grids as PNG: each image scaled up (nearest neighbour, so a 32 px sample stays sharp) with its text
wrapped underneath, for `recap sample` and `recap eval-t2i`."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL.Image import Image


def image_grid(
    images: np.ndarray,
    texts: list[str],
    *,
    columns: int = 8,
    cell: int = 128,
    text_lines: int = 6,
) -> Image:
    """A grid of uint8 images (N, S, S, 3), each `cell` pixels wide, with up to `text_lines` lines of its text
    under it (longer text ends with '...')."""
    from PIL import Image, ImageDraw, ImageFont

    if len(images) != len(texts):
        raise ValueError(f"{len(images)} images but {len(texts)} texts")
    if len(images) == 0:
        raise ValueError("no images to put in a grid")
    font = ImageFont.load_default()
    line_height, characters = 11, max(8, cell // 6)
    text_height = text_lines * line_height + 6
    columns = min(columns, len(images))
    rows = -(-len(images) // columns)
    grid = Image.new("RGB", (columns * (cell + 4) + 4, rows * (cell + text_height + 4) + 4), "white")
    draw = ImageDraw.Draw(grid)
    for index, (pixels, text) in enumerate(zip(images, texts, strict=True)):
        row, column = divmod(index, columns)
        x, y = 4 + column * (cell + 4), 4 + row * (cell + text_height + 4)
        grid.paste(Image.fromarray(pixels).resize((cell, cell), Image.NEAREST), (x, y))
        lines = textwrap.wrap(text or "(empty)", characters)
        if len(lines) > text_lines:
            lines = lines[: text_lines - 1] + [lines[text_lines - 1][: characters - 3] + "..."]
        for number, line in enumerate(lines):
            draw.text((x, y + cell + 3 + number * line_height), line, fill="black", font=font)
    return grid


def save_grid(path: str | Path, images: np.ndarray, texts: list[str], **options) -> Path:
    """`image_grid` written as a PNG at `path` (folders made)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image_grid(images, texts, **options).save(path)
    return path
