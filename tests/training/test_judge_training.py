"""Training the image judge: targets follow the scenes, the mirror augmentation moves targets with the pixels,
and a few steps on tiny worlds write a judge folder that loads, with its accuracy table (and the bar refusing it)."""

import json

import numpy as np
import pytest

from recap.errors import RecapError
from recap.models.judge import judge_images, load_judge
from recap.training.judge_training import (
    JUDGE_HELD_OUT_WORLD,
    JUDGE_WORLD,
    JudgeTrainingConfig,
    augment_batch,
    scene_targets,
    train_judge,
    world_vocabulary,
)
from recap.training.pairs import load_pairs
from recap.world.generate import WorldConfig
from recap.world.scene import Scene


def test_scene_targets_follow_the_scenes(small_world):
    vocabulary = world_vocabulary("normal")
    pairs = load_pairs(small_world / "sft", 32, progress=False)
    targets = scene_targets(pairs.scenes, vocabulary)
    for row, text in enumerate(pairs.scenes):
        objects = {obj.position: obj for obj in Scene.from_json(text).objects}
        for cell, position in enumerate(vocabulary.positions):
            obj = objects.get(position)
            assert targets["presence"][row, cell] == (obj is not None)
            for name in ("shape", "colour", "size"):
                expected = vocabulary.classes(name).index(obj.attribute(name)) if obj else -1
                assert targets[name][row, cell] == expected
    with pytest.raises(
        ValueError, match="cannot name"
    ):  # normal-world scenes use shapes and colours the easy world lacks
        scene_targets(pairs.scenes, world_vocabulary("easy"))


def test_mirroring_moves_the_targets_with_the_pixels(small_world):
    vocabulary = world_vocabulary("normal")
    pairs = load_pairs(small_world / "sft", 32, progress=False)
    targets = scene_targets(pairs.scenes, vocabulary)
    images, moved = augment_batch(pairs.images, targets, vocabulary.grid, np.random.default_rng(0), max_shift=0)
    mirrored = np.array([np.array_equal(a, b[:, ::-1]) for a, b in zip(images, pairs.images, strict=True)])
    assert 0 < mirrored.sum() < len(images)
    swap = [vocabulary.positions.index(p) for p in ("top right", "top left", "bottom right", "bottom left")]
    for name, values in targets.items():
        assert np.array_equal(moved[name][mirrored], values[mirrored][:, swap]), name
        assert np.array_equal(moved[name][~mirrored], values[~mirrored]), name
    shifted, _ = augment_batch(pairs.images, targets, vocabulary.grid, np.random.default_rng(0))
    assert shifted.shape == pairs.images.shape and shifted.dtype == np.uint8


def test_a_tiny_training_run_writes_a_loadable_judge(tmp_path):
    config = JudgeTrainingConfig(
        out=str(tmp_path / "judge"),
        worlds=str(tmp_path / "worlds"),
        train_world=WorldConfig(seed=3, size=1, sft_size=48, eval_size=0),
        held_out_world=WorldConfig(seed=4, size=1, sft_size=0, eval_size=16),
        width=8,
        hidden=16,
        steps=4,
        batch_size=16,
        warmup_steps=1,
    )
    with pytest.raises(RecapError, match="below the 0.95 bar"):  # four steps teach it nothing
        train_judge(config, progress=False)
    summary = json.loads((tmp_path / "judge" / "training_summary.json").read_text())
    assert summary["accuracy"]["images"] == 16 and summary["accuracy"]["cells"] == 64
    assert summary["training"]["images"] == 48 and summary["training"]["config"]["steps"] == 4
    with pytest.raises(RecapError, match="below"):
        load_judge(tmp_path / "judge")
    judge = load_judge(tmp_path / "judge", require_accuracy=False)
    assert judge.metadata["accuracy"] == summary["accuracy"]
    assert len(judge_images(judge, np.zeros((3, 32, 32, 3), np.uint8))) == 3


def test_config_is_validated():
    assert JUDGE_WORLD.seed != JUDGE_HELD_OUT_WORLD.seed
    with pytest.raises(ValueError, match="another seed"):
        JudgeTrainingConfig(out="x", held_out_world=WorldConfig(seed=JUDGE_WORLD.seed, size=1, eval_size=5))
    with pytest.raises(ValueError, match="warmup_steps"):
        JudgeTrainingConfig(out="x", steps=10, warmup_steps=10)
