"""Training, evaluation and the recaption job turn the same image bytes into the same pixels.

The policy is LLaVA-1.5's: pad to a square with the CLIP mean colour, then resize (a centre crop, which HF
image processors apply to non-square input, would cut off whatever lies at the sides of a wide web image).
"""

import io
import json
import tarfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from recap.pipeline.stage import apply_stage
from recap.stages.decode import PAD_COLOUR, DecodeImages, pixels_to_array
from recap.stages.webdataset_reader import WebDatasetSource
from recap.training.pairs import load_pairs

SIDE = 32
UID = "ab" * 16


def _wide_image(fmt: str) -> bytes:
    """120 x 40: red left third, green middle, blue right third (a centre crop would keep only the green)."""
    array = np.zeros((40, 120, 3), dtype=np.uint8)
    array[:, :40, 0] = array[:, 40:80, 1] = array[:, 80:, 2] = 255
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def _tar(path, data: bytes, suffix: str) -> None:
    members = {
        f"000000.{suffix}": data,
        "000000.txt": b"three stripes",
        "000000.json": json.dumps({"uid": UID}).encode(),
    }
    with tarfile.open(path, "w") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


def _world_split(folder, data: bytes, suffix: str) -> None:
    """The layout `load_pairs` reads for a world split (what `recap eval-captions` and training use)."""
    (folder / "images").mkdir(parents=True)
    (folder / "metadata").mkdir()
    (folder / "images" / f"{UID}.{suffix}").write_bytes(data)
    truth = {"uid": [UID], "image_format": [suffix], "caption": ["three stripes"], "scene": ["{}"]}
    pq.write_table(pa.table(truth), folder / "truth.parquet")
    pq.write_table(pa.table({"uid": [UID], "text": ["stripes"]}), folder / "metadata" / "00000.parquet")


@pytest.mark.parametrize(("fmt", "suffix"), [("JPEG", "jpg"), ("PNG", "png")])
def test_job_training_and_eval_give_the_same_pixels(tmp_path, fmt, suffix):
    data = _wide_image(fmt)
    (tmp_path / "shards").mkdir()
    _tar(tmp_path / "shards" / "00000.tar", data, suffix)
    source = WebDatasetSource(inputs=[str(tmp_path / "shards")])
    batch = next(source.read(source.units()[0]))
    job = pixels_to_array(apply_stage(DecodeImages(image_size=SIDE), batch)["pixels"][0])

    from_tars = load_pairs(tmp_path / "shards", SIDE, progress=False).images[0]
    pq.write_table(pa.table({"uid": [UID], "caption": ["three stripes"], "image": [data]}), tmp_path / "pairs.parquet")
    from_parquet = load_pairs(tmp_path / "pairs.parquet", SIDE, progress=False).images[0]
    _world_split(tmp_path / "world" / "eval", data, suffix)
    from_world = load_pairs(tmp_path / "world" / "eval", SIDE, progress=False).images[0]

    assert job.shape == (SIDE, SIDE, 3)
    for other in (from_tars, from_parquet, from_world):
        assert np.array_equal(job, other)
    # padded, not cropped: the mean colour above and below, all three stripes kept
    assert np.abs(job[1, SIDE // 2].astype(int) - PAD_COLOUR).max() <= 8
    row = job[SIDE // 2].astype(int)
    assert row[2, 0] > 200 and row[SIDE // 2, 1] > 200 and row[SIDE - 3, 2] > 200
