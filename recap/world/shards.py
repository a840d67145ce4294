"""Write a world split straight to webdataset tars shaped like img2dataset's, without a download.

For benchmarks and tests that need many shards fast; `recap download` remains the real ingest path. Each
sample has `.jpg` (re-encoded at `image_size`, as img2dataset stores it), `.txt` (the alt-text) and `.json`
(uid, url, caption, key, status, sha256 of the original bytes).
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
from PIL import Image

from recap.world.generate import truth_by_uid


def _member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_webdataset(
    world: str | Path,
    split: str,
    out: str | Path,
    *,
    samples_per_shard: int = 1000,
    image_size: int = 64,
    repeat: int = 1,
) -> int:
    """Write `split` (repeated `repeat` times, keys kept unique) as NNNNN.tar files; returns the sample count."""
    folder = Path(world) / split
    formats = truth_by_uid(world, split, "image_format")
    metadata = pq.read_table(sorted((folder / "metadata").glob("*.parquet"))).to_pylist()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    count, shard, tar = 0, 0, None
    for copy in range(repeat):
        for row in metadata:
            if count % samples_per_shard == 0:
                if tar is not None:
                    tar.close()
                tar = tarfile.open(out / f"{shard:05d}.tar", "w")
                shard += 1
            image = Image.open(folder / "images" / f"{row['uid']}.{formats[row['uid']]}").convert("RGB")
            buffer = io.BytesIO()
            image.resize((image_size, image_size), Image.Resampling.BICUBIC).save(buffer, format="JPEG", quality=95)
            key = f"{count:09d}"
            meta = {
                "uid": row["uid"],
                "url": row["url"],
                "caption": row["text"],
                "key": key,
                "status": "success",
                "sha256": row["sha256"],
                "copy": copy,
            }
            _member(tar, f"{key}.jpg", buffer.getvalue())
            _member(tar, f"{key}.txt", row["text"].encode("utf-8"))
            _member(tar, f"{key}.json", json.dumps(meta).encode("utf-8"))
            count += 1
    if tar is not None:
        tar.close()
    return count
