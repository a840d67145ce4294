"""Image-caption pairs for training and evaluation, from a world split, a Parquet file (+ images), or tars.

Every source turns image bytes into model input with the recaption job's own function
(`recap.stages.decode.decode_image`: RGB, padded to a square with the CLIP mean colour, resized), and tars are
read with the job's reader, so training, evaluation and the job see the same pixels for the same image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from recap.console import progress_bar
from recap.errors import RecapError
from recap.pipeline.source import Shard
from recap.stages.decode import BadInput, DecodeImages, decode_image
from recap.stages.webdataset_reader import list_shards
from recap.training.shard_rows import decoded_rows

MAX_PIXELS = DecodeImages.max_pixels


@dataclass
class Pairs:
    """Aligned arrays: images (N, S, S, 3) uint8 and their texts. Optional columns may be None."""

    uids: list[str]
    images: np.ndarray
    captions: list[str]
    short_captions: list[str] | None = None
    alt_texts: list[str | None] | None = None
    scenes: list[str] | None = None  # ground-truth scene JSON, when the source is a world split
    skipped: int = 0  # samples left out because the job would mark them bad_input (tars only)

    def __len__(self) -> int:
        return len(self.uids)


def model_input(data: bytes, size: int, where: str) -> np.ndarray:
    """Image bytes -> (size, size, 3) uint8, exactly as the recaption job decodes them; RecapError naming `where`."""
    try:
        return decode_image(data, size, MAX_PIXELS)
    except BadInput as error:
        raise RecapError(f"{where}: {error}") from None


def _from_world(folder: Path, size: int, limit: int | None, progress: bool) -> Pairs:
    truth = pq.read_table(folder / "truth.parquet")
    if limit is not None:
        truth = truth.slice(0, limit)
    rows = truth.to_pylist()
    alt = {}
    for path in sorted((folder / "metadata").glob("*.parquet")):
        meta = pq.read_table(path, columns=["uid", "text"])
        alt.update(zip(meta["uid"].to_pylist(), meta["text"].to_pylist(), strict=True))
    images = np.stack(
        [
            model_input(path.read_bytes(), size, str(path))
            for row in progress_bar(rows, desc=f"loading {folder.name}", unit="img", disable=not progress)
            for path in [folder / "images" / f"{row['uid']}.{row['image_format']}"]
        ]
    )
    return Pairs(
        uids=[row["uid"] for row in rows],
        images=images,
        captions=[row["caption"] for row in rows],
        short_captions=[row.get("short_caption") for row in rows],
        alt_texts=[alt.get(row["uid"]) for row in rows],
        scenes=[row["scene"] for row in rows],
    )


def _from_parquet(path: Path, size: int, caption_column: str, limit: int | None, progress: bool) -> Pairs:
    table = pq.read_table(path)
    names = table.column_names
    if caption_column not in names:
        raise RecapError(f"{path} has no caption column {caption_column!r} (it has {', '.join(names)})")
    if "image" not in names and "image_path" not in names:
        raise RecapError(f"{path} needs an 'image' (bytes) or 'image_path' column (it has {', '.join(names)})")
    rows = table.slice(0, limit).to_pylist() if limit is not None else table.to_pylist()
    images = []
    for index, row in enumerate(progress_bar(rows, desc=f"loading {path.name}", unit="img", disable=not progress)):
        try:
            if "image" in row and row["image"] is not None:
                data = row["image"]["bytes"] if isinstance(row["image"], dict) else row["image"]
            else:
                data = (path.parent / row["image_path"]).read_bytes()
        except OSError as error:
            raise RecapError(f"{path} row {index}: cannot read the image ({error})") from None
        images.append(model_input(data, size, f"{path} row {index}"))
    return Pairs(
        uids=[str(row.get("uid", index)) for index, row in enumerate(rows)],
        images=np.stack(images),
        captions=[row[caption_column] for row in rows],
        alt_texts=[row.get("text") for row in rows] if "text" in names else None,
    )


def _from_tars(shards: list[Shard], size: int, caption_column: str, limit: int | None, progress: bool) -> Pairs:
    """Samples of webdataset tars through the job's reader and decode stage; samples the job would mark
    `bad_input` (no image, no caption, broken bytes) are skipped and counted in `Pairs.skipped`."""
    uids, images, captions, skipped = [], [], [], 0
    for row in decoded_rows(shards, size, progress=progress, total=len(shards)):
        caption = row.alt_text
        if caption_column not in ("caption", "txt") and row.ok:
            caption = row.metadata_field(caption_column)
        if not row.ok or not caption:
            skipped += 1
            continue
        uids.append(row.uid or row.key)
        images.append(row.image())
        captions.append(caption)
        if limit is not None and len(uids) >= limit:
            break
    if not uids:
        raise RecapError(
            f"no usable image-caption samples in {shards[0].uri} ... ({len(shards)} tars; "
            f"{skipped} skipped as bad input)"
        )
    return Pairs(uids=uids, images=np.stack(images), captions=captions, skipped=skipped)


def load_pairs(
    source: str | Path,
    image_size: int,
    *,
    caption_column: str = "caption",
    limit: int | None = None,
    progress: bool = True,
) -> Pairs:
    """Load pairs from a world split folder, a Parquet file, or webdataset tars (a tar, a folder of them or a
    glob; local or any fsspec URI)."""
    path = Path(source)
    if path.is_dir() and (path / "truth.parquet").exists():
        return _from_world(path, image_size, limit, progress)
    if path.is_file() and path.suffix == ".parquet":
        return _from_parquet(path, image_size, caption_column, limit, progress)
    try:
        shards = list_shards(str(source))
    except RecapError as error:
        raise RecapError(
            f"{source} is not a world split folder (with truth.parquet), a .parquet file, or webdataset .tar "
            f"files ({error})"
        ) from None
    return _from_tars(shards, image_size, caption_column, limit, progress)
