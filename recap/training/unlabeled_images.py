"""Unlabeled target images for unsupervised adaptation (POUF): pixels only, never a caption, label or truth.

A target is a world split folder, webdataset shards (a tar, a folder of them, a glob, any fsspec URI), or a
folder of image files. Every image becomes model input through the recaption job's own decoding
(`decode_image`: RGB, padded to a square, resized), as in training and evaluation.

For a world split only its `images/` folder is listed and read: truth.parquet and the metadata tables (labels,
captions, alt-texts) are never opened, so tuning cannot see a label (a test replaces them with tables that
raise on any read). Shards go through the job's reader, which reads each sample's files; only the pixels are
kept.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recap.console import progress_bar
from recap.errors import RecapError
from recap.stages.decode import BadInput, DecodeImages, decode_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def is_world_split(folder: str | Path) -> bool:
    """A world split folder: it holds truth.parquet (only its presence is checked) and images/."""
    folder = Path(folder)
    return (folder / "truth.parquet").exists() and (folder / "images").is_dir()


def _image_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file())


def _decode_files(files: list[Path], size: int, progress: bool) -> tuple[list[np.ndarray], int]:
    images, skipped = [], 0
    for path in progress_bar(files, desc="reading target images", unit="img", disable=not progress):
        try:
            images.append(decode_image(path.read_bytes(), size, DecodeImages.max_pixels))
        except (BadInput, OSError):  # what the job would mark bad_input
            skipped += 1
    return images, skipped


def _decode_shards(target: str, size: int, limit: int | None, progress: bool) -> tuple[list[np.ndarray], int]:
    from recap.stages.webdataset_reader import list_shards
    from recap.training.shard_rows import decoded_rows

    shards = list_shards(target)
    images, skipped = [], 0
    for row in decoded_rows(shards, size, progress=progress, total=len(shards)):
        if not row.ok:
            skipped += 1
            continue
        images.append(row.image())
        if limit is not None and len(images) >= limit:
            break
    return images, skipped


def load_unlabeled_images(
    target: str | Path, size: int, *, limit: int | None = None, progress: bool = True
) -> tuple[np.ndarray, int]:
    """(images (N, size, size, 3) uint8, how many files could not be decoded and were skipped) of a world split
    (its images/ folder, sorted by uid), webdataset shards (in shard order) or a folder of image files (sorted
    by path, subfolders included); at most `limit` images. RecapError when nothing usable is found."""
    path = Path(str(target))
    if path.is_dir() and is_world_split(path):
        files = _image_files(path / "images")
    elif path.is_dir() and not any(path.glob("*.tar")):
        files = _image_files(path)
    else:
        files = None
    if files is not None:
        images, skipped = _decode_files(files[:limit] if limit is not None else files, size, progress)
    else:
        try:
            images, skipped = _decode_shards(str(target), size, limit, progress)
        except RecapError as error:
            raise RecapError(
                f"--target {target} is not a world split, a folder of images, or webdataset shards ({error})"
            ) from None
    if not images:
        raise RecapError(f"--target {target} holds no decodable image ({skipped} skipped)")
    return np.stack(images), skipped
