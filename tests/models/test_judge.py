"""The image judge: the shipped one reads a freshly generated world's images at 32 px as well as its recorded
accuracy says, a saved judge loads with the same predictions, and a judge below the bar refuses to load."""

import json

import numpy as np
import pytest
import torch

from recap.errors import RecapError
from recap.models.judge import (
    MIN_ACCURACY,
    ImageJudge,
    JudgeVocabulary,
    judge_images,
    load_judge,
    parameter_count,
    predict,
    save_judge,
    shipped_judge,
    to_tensor,
)
from recap.training.judge_training import IMAGE_SIZE, judge_accuracy, world_vocabulary
from recap.training.pairs import load_pairs
from recap.world.generate import WorldConfig, generate_world
from recap.world.scene import Scene

# A seed the judge never saw: it trained on seed 3 and was measured on seed 4 (RECIPE.md).
FRESH_WORLD = WorldConfig(seed=2026, size=1, sft_size=0, eval_size=300)


@pytest.fixture(scope="module")
def fresh_eval(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fresh-judge") / "world"
    generate_world(FRESH_WORLD, folder, progress=False)
    return load_pairs(folder / "eval", IMAGE_SIZE, progress=False)


@pytest.fixture(scope="module")
def shipped():
    return load_judge(shipped_judge())


def test_shipped_judge_meets_the_bar_on_a_fresh_world(shipped, fresh_eval):
    accuracy = judge_accuracy(shipped, fresh_eval.images, fresh_eval.scenes)
    assert accuracy["images"] == 300 and accuracy["cells"] == 1200
    assert accuracy["objects"] == sum(len(Scene.from_json(s).objects) for s in fresh_eval.scenes)
    for attribute in ("presence", "shape", "colour", "size"):
        assert accuracy[attribute] >= MIN_ACCURACY, (attribute, accuracy)
    # What it recorded about itself is what it can do, and it stays small.
    for attribute in ("presence", "shape", "colour", "size"):
        assert shipped.metadata["accuracy"][attribute] >= MIN_ACCURACY
    assert parameter_count(shipped) < 1_000_000
    assert shipped.vocabulary == world_vocabulary("normal")


def test_judge_images_names_what_is_in_each_cell(shipped, fresh_eval):
    judged = judge_images(shipped, fresh_eval.images[:40])
    positions = shipped.vocabulary.positions
    assert len(judged) == 40 and all(len(cells) == len(positions) for cells in judged)
    agree = total = 0
    for cells, text in zip(judged, fresh_eval.scenes[:40], strict=True):
        truth = {obj.position: obj for obj in Scene.from_json(text).objects}
        for position, cell in zip(positions, cells, strict=True):
            total += 1
            if cell is None:
                agree += position not in truth
                continue
            assert set(cell) == {"shape", "colour", "size", "position"} and cell["position"] == position
            obj = truth.get(position)
            agree += obj is not None and (obj.shape, obj.colour, obj.size) == (
                cell["shape"],
                cell["colour"],
                cell["size"],
            )
    assert agree / total >= 0.9, agree / total


def test_save_load_round_trip_gives_identical_predictions(tmp_path, fresh_eval):
    torch.manual_seed(0)
    judge = ImageJudge(world_vocabulary("normal"), width=8, hidden=16).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics, so that they have to travel too
        for norm in (m for m in judge.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            norm.running_mean.uniform_(-0.5, 0.5)
            norm.running_var.uniform_(0.5, 2.0)
    folder = save_judge(judge, tmp_path / "judge", {"accuracy": {"presence": 0.5}, "note": "untrained"})
    (folder / "RECIPE.md").write_text("kept")
    save_judge(judge, folder, {"accuracy": {"presence": 0.5}, "note": "untrained"})  # rewriting keeps other files
    assert (folder / "RECIPE.md").read_text() == "kept"

    loaded = load_judge(folder, require_accuracy=False)
    assert loaded.metadata["note"] == "untrained" and loaded.vocabulary == judge.vocabulary
    images = fresh_eval.images[:64]
    with torch.no_grad():
        before, after = judge(to_tensor(images, IMAGE_SIZE)), loaded(to_tensor(images, IMAGE_SIZE))
    for name in before:
        assert torch.equal(before[name], after[name]), name
    assert judge_images(judge, images) == judge_images(loaded, images)


def test_a_judge_below_the_bar_or_not_a_judge_refuses_to_load(tmp_path):
    judge = ImageJudge(world_vocabulary("normal"), width=8, hidden=16)
    save_judge(judge, tmp_path / "weak", {"accuracy": {"presence": 0.99, "shape": 0.6, "colour": 0.99, "size": 0.99}})
    with pytest.raises(RecapError, match="shape"):
        load_judge(tmp_path / "weak")
    save_judge(judge, tmp_path / "unmeasured")
    with pytest.raises(RecapError, match="below"):
        load_judge(tmp_path / "unmeasured")
    with pytest.raises(RecapError, match="not a judge folder"):
        load_judge(tmp_path / "nothing-here")
    record = json.loads((tmp_path / "weak" / "judge_config.json").read_text())
    (tmp_path / "weak" / "judge_config.json").write_text(json.dumps(dict(record, version=99)))
    with pytest.raises(RecapError, match="version"):
        load_judge(tmp_path / "weak", require_accuracy=False)


def test_the_judge_reads_only_uint8_images_of_its_size():
    judge = ImageJudge(world_vocabulary("normal"), width=8, hidden=16)
    with pytest.raises(ValueError, match="uint8"):
        predict(judge, np.zeros((2, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="32, 32, 3"):
        predict(judge, np.zeros((2, 64, 64, 3), np.uint8))
    assert judge_images(judge, np.zeros((0, 32, 32, 3), np.uint8)) == []


def test_vocabulary_is_validated():
    with pytest.raises(ValueError, match="square grid"):
        JudgeVocabulary(difficulty="x", positions=("a", "b", "c"), shapes=("s",), colours=("c",), sizes=("z",))
    with pytest.raises(ValueError, match="shapes"):
        JudgeVocabulary(difficulty="x", positions=("a",), shapes=("s", "s"), colours=("c",), sizes=("z",))
    hard = world_vocabulary("hard")  # a 3x3 grid works too
    assert hard.grid == 3
    logits = ImageJudge(hard, width=8, hidden=16)(torch.zeros(2, 3, 32, 32))
    assert logits["presence"].shape == (2, 9) and logits["shape"].shape == (2, 9, len(hard.shapes))
