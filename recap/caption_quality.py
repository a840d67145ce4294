"""Caption quality of tables and captioners against the embedded world's ground truth."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from recap.console import progress_bar
from recap.errors import RecapError
from recap.io_utils import read_caption_table
from recap.world.generate import SPLITS, load_scenes
from recap.world.quality import CaptionScore, score_caption


def world_scenes(world: str | Path, splits: tuple[str, ...] = SPLITS) -> dict:
    """uid -> Scene over the given splits of a world."""
    scenes = {}
    for split in splits:
        scenes.update(load_scenes(world, split))
    return scenes


def score_table(
    path: str | Path, world: str | Path, column: str = "re_caption", baseline: str | None = "org_caption"
) -> dict:
    """Score `column` (and `baseline`, when the table has it) of a table against the world's truth by uid.

    Rows whose caption is null (failed samples) are skipped and counted; uids unknown to the world are errors.
    """
    table = read_caption_table(path, ["uid", column], optional=(baseline,) if baseline else (), hint="use --column")
    baseline = baseline if baseline in table.column_names else None
    scenes = world_scenes(world)
    scores = {column: CaptionScore()}
    if baseline:
        scores[baseline] = CaptionScore()
    skipped = unknown = 0
    for row in table.to_pylist():
        scene = scenes.get(row["uid"])
        if scene is None:
            unknown += 1
            continue
        if row[column] is None:
            skipped += 1
            continue
        for name, score in scores.items():
            score += score_caption(row[name], scene)
    if unknown == table.num_rows:
        raise RecapError(f"none of the {unknown} uids in {path} belong to the world {world}; wrong --world?")
    return {
        "summaries": {name: score.summary() for name, score in scores.items()},
        "rows": table.num_rows,
        "skipped_null": skipped,
        "unknown_uid": unknown,
    }


def caption_world_split(captioner, world: str | Path, split: str, limit: int | None = None, progress: bool = True):
    """Caption a world split's images with `captioner`; return (rows, {"recaption": summary, "alt-text": ...}).

    Each row: uid, alt-text, ground-truth caption and the CaptionResult.
    """
    from recap.training.pairs import load_pairs

    size = getattr(getattr(getattr(captioner, "model", None), "config", None), "vision_config", None)
    image_size = size.image_size if size is not None else 336
    pairs = load_pairs(Path(world) / split, image_size, limit=limit, progress=False)
    scenes = world_scenes(world, (split,))
    images = [Image.fromarray(image) for image in pairs.images]
    results = []
    step = max(captioner.config.batch_size, 1) * 4
    for start in progress_bar(
        range(0, len(images), step), desc=f"captioning {split}", unit="batch", disable=not progress
    ):
        chunk = slice(start, start + step)
        results.extend(captioner.caption(images[chunk], alt_texts=pairs.alt_texts[chunk]))
    recaption, alt = CaptionScore(), CaptionScore()
    rows = []
    for index, uid in enumerate(pairs.uids):
        recaption += score_caption(results[index].text, scenes[uid])
        alt += score_caption(pairs.alt_texts[index], scenes[uid])
        rows.append(
            {"uid": uid, "alt_text": pairs.alt_texts[index], "truth": pairs.captions[index], "result": results[index]}
        )
    return rows, {"recaption": recaption.summary(), "alt-text": alt.summary()}
