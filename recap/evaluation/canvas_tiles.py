"""How well formed a larger canvas is, read by the judge one training-size tile at a time (issue 26).

A LEGO stack trained on 32 px images can draw a 64 px canvas (more windows). The judge reads 32 px images only, so
the canvas is cut into 32 px tiles and each tile is judged as if it were an image:

    form = tile_form(judge, images, scenes)     # images (N, S, S, 3) uint8, S a multiple of the judge's size

A tile (or a 1x image) is **well formed** when the judge finds at least one object in it and reads every object it
finds clearly: shape and colour each at probability >= `CLEAR`. The judge reads a real world image this way almost
always (the ceiling to compare with; `tile_form` on the eval split's real images measures it). Besides: objects per
tile, and `on_prompt`, the share of the objects found whose (shape, colour) is one the prompt names (an enlarged
canvas has no single layout to match, so the judged object accuracy of a 1x image has no 2x counterpart; this is
the part of it that still means something per tile).
"""

from __future__ import annotations

import numpy as np

CLEAR = 0.9  # the judge's shape and colour probability above which an object counts as clearly drawn


def tiles(images: np.ndarray, tile: int) -> np.ndarray:
    """(N, S, S, C) -> (N * (S // tile)^2, tile, tile, C): image 0's tiles first, in reading order.
    ValueError when S is not a multiple of `tile`."""
    n, side = images.shape[:2]
    if images.shape[2] != side or side % tile:
        raise ValueError(f"tiles of {tile} px need square images, their side a multiple of {tile}: got {images.shape}")
    k = side // tile
    blocks = images.reshape(n, k, tile, k, tile, *images.shape[3:]).swapaxes(2, 3)
    return blocks.reshape(n * k * k, tile, tile, *images.shape[3:])


def untile(pieces: np.ndarray, per_side: int) -> np.ndarray:
    """The inverse of `tiles`: (N * per_side^2, t, t, C) -> (N, per_side * t, per_side * t, C)."""
    t = pieces.shape[1]
    n = len(pieces) // per_side**2
    blocks = pieces.reshape(n, per_side, per_side, t, t, *pieces.shape[3:]).swapaxes(2, 3)
    return blocks.reshape(n, per_side * t, per_side * t, *pieces.shape[3:])


def judge_readings(judge, images: np.ndarray) -> dict[str, np.ndarray]:
    """Per image and grid cell: `present` (bool), `shape` / `colour` (class index) and `clear` (bool: both read
    at probability >= CLEAR)."""
    from recap.models.judge import predict

    read = predict(judge, images, probabilities=True)
    read["clear"] = (read["shape_probability"] >= CLEAR) & (read["colour_probability"] >= CLEAR)
    return read


def tile_form(judge, images: np.ndarray, scenes: list | None = None) -> dict:
    """The judge's reading of `images` cut into tiles of its own size (a 1x image is its own single tile):
    `well_formed` (share of tiles with >= 1 object, every one read clearly), `empty` (share with none),
    `objects_per_tile`, `clear` (share of found objects read clearly) and, given the prompts' `scenes` (one per
    image, objects with .shape and .colour), `on_prompt` (share of found objects whose shape and colour pair the
    prompt names)."""
    size = judge.vocabulary.image_size
    per_side = images.shape[1] // size
    read = judge_readings(judge, tiles(images, size))
    present, clear = read["present"], read["clear"] & read["present"]
    found = present.sum(1)
    result = {
        "tiles": len(present),
        "tiles_per_image": per_side**2,
        "well_formed": float(np.mean((found > 0) & (clear.sum(1) == found))),
        "empty": float(np.mean(found == 0)),
        "objects_per_tile": float(found.mean()),
        "clear": float(clear.sum() / max(found.sum(), 1)),
    }
    if scenes is not None:
        if len(scenes) != len(images):
            raise ValueError(f"{len(scenes)} scenes for {len(images)} images")
        vocabulary = judge.vocabulary
        on, total = 0, 0
        for index, scene in enumerate(scenes):
            named = {(obj.shape, obj.colour) for obj in scene.objects}
            for row in range(index * per_side**2, (index + 1) * per_side**2):
                for cell in np.flatnonzero(present[row]):
                    pair = (vocabulary.shapes[read["shape"][row, cell]], vocabulary.colours[read["colour"][row, cell]])
                    on, total = on + (pair in named), total + 1
        result["on_prompt"] = on / total if total else 0.0
    return result
