"""The per-tile judge reading of a larger canvas (issue 26): tiles cut and reassemble exactly, real world images
read as well formed and on prompt, a canvas of four real images reads as those four images, and blank or noise
tiles do not."""

import numpy as np
import pytest

from recap.evaluation.canvas_tiles import tile_form, tiles, untile
from recap.models.judge import load_judge, shipped_judge
from recap.training.judge_training import IMAGE_SIZE
from recap.training.pairs import load_pairs
from recap.world.generate import WorldConfig, generate_world
from recap.world.scene import Scene


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    folder = tmp_path_factory.mktemp("canvas") / "world"
    generate_world(WorldConfig(seed=2031, size=1, sft_size=0, eval_size=64), folder, progress=False)
    pairs = load_pairs(folder / "eval", IMAGE_SIZE, progress=False)
    return pairs.images, [Scene.from_json(text) for text in pairs.scenes]


@pytest.fixture(scope="module")
def judge():
    return load_judge(shipped_judge())


def test_tiles_round_trip_in_reading_order():
    images = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    pieces = tiles(images, 32)
    assert pieces.shape == (12, 32, 32, 3)
    np.testing.assert_array_equal(pieces[1], images[0, :32, 32:])  # image 0, top right
    np.testing.assert_array_equal(pieces[6], images[1, 32:, :32])  # image 1, bottom left
    np.testing.assert_array_equal(untile(pieces, 2), images)
    with pytest.raises(ValueError, match="multiple of 32"):
        tiles(images[:, :48, :48], 32)


def test_real_images_are_well_formed_and_on_prompt(judge, real):
    images, scenes = real
    form = tile_form(judge, images, scenes)
    assert form["tiles"] == 64 and form["tiles_per_image"] == 1
    assert form["well_formed"] >= 0.8 and form["on_prompt"] >= 0.95 and form["empty"] == 0.0
    mean_objects = np.mean([len(scene.objects) for scene in scenes])
    assert abs(form["objects_per_tile"] - mean_objects) < 0.3


def test_a_canvas_of_real_images_reads_per_tile_like_its_images(judge, real):
    images, scenes = real
    alone = tile_form(judge, images[:16])
    canvas = untile(images[:16], 2)  # four 64 px canvases, each four real images
    together = tile_form(judge, canvas)
    assert together["tiles"] == 16 and together["tiles_per_image"] == 4
    for key in ("well_formed", "objects_per_tile", "clear"):
        assert together[key] == pytest.approx(alone[key])
    # on prompt: a canvas's prompt names only the objects of its first tile's scene
    assert (
        tile_form(judge, canvas, scenes[:16:4])["on_prompt"] < tile_form(judge, images[:16], scenes[:16])["on_prompt"]
    )


def test_blank_and_noise_tiles_are_not_well_formed(judge):
    blank = np.full((8, 64, 64, 3), 128, np.uint8)
    form = tile_form(judge, blank)
    assert form["well_formed"] == 0.0 and form["empty"] == 1.0 and form["objects_per_tile"] == 0.0
    noise = np.random.default_rng(1).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    assert tile_form(judge, noise)["well_formed"] <= 0.25
