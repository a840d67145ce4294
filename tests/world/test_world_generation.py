import re

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from recap.errors import RecapError
from recap.world.captions import ground_truth_caption
from recap.world.generate import METADATA_SCHEMA, WorldConfig, generate_world, load_manifest, load_scenes, load_truth
from recap.world.quality import score_caption
from recap.world.vocabulary import COLOURS

from ..conftest import SMALL_WORLD


def _read_split(folder, split):
    metadata = pq.read_table(sorted((folder / split / "metadata").glob("*.parquet"))).to_pylist()
    truth = load_truth(folder, split).to_pylist()
    images = {p.name: p.read_bytes() for p in sorted((folder / split / "images").iterdir())}
    return metadata, truth, images


def test_same_seed_gives_identical_world(small_world, tmp_path):
    again = tmp_path / "again"
    generate_world(SMALL_WORLD, again, progress=False)
    for split in ("web", "sft", "eval"):
        assert _read_split(small_world, split) == _read_split(again, split)
    assert load_manifest(small_world) == load_manifest(again)


def test_other_seed_gives_other_world(small_world, tmp_path):
    other = tmp_path / "other"
    generate_world(WorldConfig(seed=8, size=20, sft_size=5, eval_size=5), other, progress=False)
    first = {row["uid"] for row in load_truth(small_world, "web").to_pylist()}
    second = {row["uid"] for row in load_truth(other, "web").to_pylist()}
    assert not first & second


def test_metadata_is_datacomp_shaped(small_world):
    files = sorted((small_world / "web" / "metadata").glob("*.parquet"))
    assert [f.name for f in files] == ["00000.parquet", "00001.parquet"]
    table = pq.read_table(files)
    assert table.schema.equals(METADATA_SCHEMA)
    uids = table["uid"].to_pylist()
    assert len(uids) == len(set(uids)) == 160
    assert all(re.fullmatch(r"[0-9a-f]{32}", uid) for uid in uids)
    for row in table.to_pylist():
        assert row["url"].startswith("http://images.recap-world.test/web/" + row["uid"])
        assert row["original_width"] == row["original_height"] >= 64


def test_manifest_records_mix_and_counts(small_world):
    manifest = load_manifest(small_world)
    assert manifest["config"]["seed"] == 7
    assert abs(sum(manifest["config"]["alt_text_mix"].values()) - 1) < 1e-9
    truth = load_truth(small_world, "web").to_pylist()
    kinds = {}
    for row in truth:
        kinds[row["alt_kind"]] = kinds.get(row["alt_kind"], 0) + 1
    assert manifest["splits"]["web"]["alt_kinds"] == dict(sorted(kinds.items()))
    assert len(kinds) >= 5, "a 160-image world should show most alt-text failure modes"
    formats = manifest["splits"]["web"]["image_formats"]
    assert formats["jpg"] > formats["png"] > 0
    # Only the web split has dead or corrupt links.
    assert set(manifest["splits"]["sft"]["serve"]) == {"ok"}
    assert len(manifest["splits"]["web"]["serve"]) >= 3


def test_ground_truth_captions_score_perfectly(small_world):
    scenes = load_scenes(small_world, "eval")
    for row in load_truth(small_world, "eval").to_pylist():
        scene = scenes[row["uid"]]
        assert row["caption"] == ground_truth_caption(scene)
        summary = score_caption(row["caption"], scene).summary()
        assert summary["object_precision"] == summary["object_recall"] == 1.0, row["caption"]
        assert "zorblax" not in row["caption"].lower()  # brands never reach detailed captions


def test_images_show_their_scene(small_world):
    """Each unmarked object's colour is found at its centre in the served image."""
    scenes = load_scenes(small_world, "sft")
    checked = 0
    for row in load_truth(small_world, "sft").to_pylist():
        image = np.asarray(Image.open(small_world / "sft" / "images" / f"{row['uid']}.{row['image_format']}"))
        assert image.shape[2] == 3
        for obj in scenes[row["uid"]].objects:
            if obj.mark is not None:
                continue
            y, x = int(obj.y * image.shape[0]), int(obj.x * image.shape[1])
            pixel = image[y, x].astype(int)
            distances = {name: np.abs(pixel - rgb).sum() for name, rgb in COLOURS.items()}
            assert min(distances, key=distances.get) == obj.colour, (row["uid"], obj)
            checked += 1
    assert checked > 20


def test_refuses_to_overwrite_without_flag(small_world, tmp_path):
    with pytest.raises(RecapError, match="--overwrite"):
        generate_world(SMALL_WORLD, small_world, progress=False)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file.txt").write_text("x")
    with pytest.raises(RecapError, match="not an empty folder or a world"):
        generate_world(SMALL_WORLD, tmp_path / "junk", progress=False)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"size": 0}, "size must be >= 1"),
        ({"difficulty": "extreme"}, "unknown difficulty"),
        ({"alt_text_mix": {"poetry": 1.0}}, "unknown alt-text kinds"),
        ({"image_size": 8}, "image_size"),
        ({"long_tail": 0.0}, "long_tail must be in"),
        ({"long_tail": 2.0}, "long_tail must be in"),
    ],
)
def test_config_errors_name_the_field(options, message):
    with pytest.raises(ValueError, match=message):
        WorldConfig(**options)


def test_world_exports_to_webdataset_shards(small_world, tmp_path):
    import json
    import tarfile

    from recap.world.shards import write_webdataset

    count = write_webdataset(small_world, "eval", tmp_path / "shards", samples_per_shard=15, repeat=2)
    assert count == 80
    tars = sorted((tmp_path / "shards").glob("*.tar"))
    assert [t.name for t in tars] == [f"{i:05d}.tar" for i in range(6)]
    with tarfile.open(tars[0]) as tar:
        names = tar.getnames()
        record = json.loads(tar.extractfile(names[2]).read())
    assert names[:3] == ["000000000.jpg", "000000000.txt", "000000000.json"]
    assert len(record["uid"]) == 32 and record["status"] == "success"
