"""Image-caption pairs for training, from a world split, a Parquet file (+ images), or webdataset tars.

Images are decoded once, converted to RGB, resized on the shortest side and centre-cropped to the model's
input size (what a CLIP image processor does), and kept as one uint8 array.
"""

from __future__ import annotations

import glob
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image
from tqdm import tqdm

from recap.errors import RecapError

IMAGE_SUFFIXES = ("jpg", "jpeg", "png", "webp")


@dataclass
class Pairs:
    """Aligned arrays: images (N, S, S, 3) uint8 and their texts. Optional columns may be None."""

    uids: list[str]
    images: np.ndarray
    captions: list[str]
    short_captions: list[str] | None = None
    alt_texts: list[str | None] | None = None
    scenes: list[str] | None = None  # ground-truth scene JSON, when the source is a world split

    def __len__(self) -> int:
        return len(self.uids)


def square_resize(image: Image.Image, size: int) -> np.ndarray:
    """RGB, shortest side to `size` (bicubic), centre crop to size x size: a CLIP image processor's geometry."""
    image = image.convert("RGB")
    width, height = image.size
    scale = size / min(width, height)
    resized = image.resize(
        (max(size, round(width * scale)), max(size, round(height * scale))), Image.Resampling.BICUBIC
    )
    left, top = (resized.width - size) // 2, (resized.height - size) // 2
    return np.asarray(resized.crop((left, top, left + size, top + size)), dtype=np.uint8)


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
            square_resize(Image.open(folder / "images" / f"{row['uid']}.{row['image_format']}"), size)
            for row in tqdm(rows, desc=f"loading {folder.name}", unit="img", disable=not progress)
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
    for index, row in enumerate(tqdm(rows, desc=f"loading {path.name}", unit="img", disable=not progress)):
        try:
            if "image" in row and row["image"] is not None:
                data = row["image"]["bytes"] if isinstance(row["image"], dict) else row["image"]
                image = Image.open(io.BytesIO(data))
            else:
                image = Image.open(path.parent / row["image_path"])
            images.append(square_resize(image, size))
        except (OSError, ValueError) as error:
            raise RecapError(f"{path} row {index}: cannot read the image ({error})") from None
    return Pairs(
        uids=[str(row.get("uid", index)) for index, row in enumerate(rows)],
        images=np.stack(images),
        captions=[row[caption_column] for row in rows],
        alt_texts=[row.get("text") for row in rows] if "text" in names else None,
    )


def _from_tars(paths: list[str], size: int, caption_column: str, limit: int | None, progress: bool) -> Pairs:
    uids, images, captions = [], [], []
    for path in tqdm(paths, desc="loading shards", unit="tar", disable=not progress):
        samples: dict[str, dict[str, bytes]] = {}
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                if member.isfile():
                    key, _, suffix = member.name.partition(".")
                    samples.setdefault(key, {})[suffix] = tar.extractfile(member).read()
        for key, members in samples.items():
            image_suffix = next((s for s in IMAGE_SUFFIXES if s in members), None)
            meta = json.loads(members["json"]) if "json" in members else {}
            if caption_column in members:
                caption = members[caption_column].decode("utf-8")
            else:
                caption = meta.get(caption_column) or members.get("txt", b"").decode("utf-8")
            if image_suffix is None or not caption:
                continue
            uids.append(meta.get("uid", key))
            images.append(square_resize(Image.open(io.BytesIO(members[image_suffix])), size))
            captions.append(caption)
            if limit is not None and len(uids) >= limit:
                return Pairs(uids=uids, images=np.stack(images), captions=captions)
    if not uids:
        raise RecapError(f"no image-caption samples in {paths[0]} ... ({len(paths)} tars)")
    return Pairs(uids=uids, images=np.stack(images), captions=captions)


def load_pairs(
    source: str | Path,
    image_size: int,
    *,
    caption_column: str = "caption",
    limit: int | None = None,
    progress: bool = True,
) -> Pairs:
    """Load pairs from a world split folder, a Parquet file, or a glob/folder of webdataset tars."""
    path = Path(source)
    if path.is_dir() and (path / "truth.parquet").exists():
        return _from_world(path, image_size, limit, progress)
    if path.is_file() and path.suffix == ".parquet":
        return _from_parquet(path, image_size, caption_column, limit, progress)
    tars = sorted(glob.glob(str(path / "*.tar"))) if path.is_dir() else sorted(glob.glob(str(source)))
    tars = [t for t in tars if t.endswith(".tar")]
    if tars:
        return _from_tars(tars, image_size, caption_column, limit, progress)
    raise RecapError(
        f"{source} is not a world split folder (with truth.parquet), a .parquet file, or webdataset .tar files"
    )
