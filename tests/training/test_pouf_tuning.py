"""recap tune-clip --method pouf: no label is read, prompt mode moves only the contexts and the logit scale, model
mode moves the towers, a rerun resumes, and eval-retrieval then reports zero-shot before and after."""

import json
import shutil

import numpy as np
import open_clip
import pyarrow.parquet
import pytest
import torch

from recap.cli import main
from recap.errors import RecapError
from recap.models.assets import shipped_clip
from recap.models.clip import WEIGHTS_FILE, load_clip
from recap.models.prompt_learner import PROMPT_FILE, read_prompt_file
from recap.training.pairs import load_pairs
from recap.training.pouf_tuning import PoufConfig, PoufTuner, batch_rows, learning_rate_factor
from recap.training.unlabeled_images import load_unlabeled_images

from ..shard_factory import bad_input_shard, bad_samples, write_tar


class LabelRead(AssertionError):
    pass


def _refuse(*args, **kwargs):
    raise LabelRead(f"a table was read while tuning: {args[:1]}")


@pytest.fixture
def unlabeled_split(small_world, tmp_path, monkeypatch):
    """The small world's eval split whose truth and metadata tables (labels, captions, alt-texts) are unreadable
    bytes, with every Parquet reader refusing: tuning must get by on images/ and world.json alone."""
    world = tmp_path / "world"
    world.mkdir()
    shutil.copy(small_world / "world.json", world / "world.json")
    shutil.copytree(small_world / "eval", world / "eval")
    for table in [world / "eval" / "truth.parquet", *(world / "eval" / "metadata").glob("*.parquet")]:
        table.write_bytes(b"labels: never read while tuning")
    for name in ("read_table", "ParquetFile", "ParquetDataset", "read_schema", "read_metadata"):
        monkeypatch.setattr(pyarrow.parquet, name, _refuse)
    monkeypatch.setattr("pandas.read_parquet", _refuse)
    return world / "eval"


def _config(target, out, **changes) -> PoufConfig:
    values = dict(model=str(shipped_clip()), target=str(target), out=str(out), classes=["shape", "colour"])
    values.update(steps=2, batch_size=16, threads=1)
    return PoufConfig(**{**values, **changes})


def test_batches_are_seeded_epochs_that_drop_the_last_partial_batch():
    first_epoch = np.concatenate([batch_rows(step, 10, 3, seed=0) for step in range(3)])
    assert len(first_epoch) == 9 and len(set(first_epoch.tolist())) == 9  # 3 batches of 3; one image left over
    assert np.array_equal(batch_rows(4, 10, 3, seed=0), batch_rows(4, 10, 3, seed=0))
    assert not np.array_equal(batch_rows(0, 10, 3, seed=0), batch_rows(3, 10, 3, seed=0))  # a new epoch's order
    assert learning_rate_factor(0, 2e-4, 0.75) == 1.0
    assert learning_rate_factor(5000, 2e-4, 0.75) == pytest.approx(2.0**-0.75)


def test_prompt_mode_reads_no_label_and_moves_only_the_contexts(unlabeled_split, tmp_path):
    with pytest.raises(LabelRead):  # the trap works: the evaluation's loader reads the truth table
        load_pairs(unlabeled_split, 64, progress=False)
    tuner = PoufTuner(_config(unlabeled_split, tmp_path / "run"), progress=False)
    summary = tuner.run()
    assert summary["steps"] == 2 and summary["images"] == 40 and summary["batch_size"] == 16
    assert set(summary["class_sets"]) == {"shape", "colour"} and len(summary["class_sets"]["colour"]) > 2
    original, _, tokenizer = load_clip(str(shipped_clip()))
    tuned = tuner.model.state_dict()
    changed = [key for key, value in original.state_dict().items() if not torch.equal(value, tuned[key])]
    assert set(changed) <= {"logit_scale"}  # both towers bit-identical
    for name, learner in tuner.learners.items():
        fresh = type(learner)(original, tokenizer, learner.classes, learner.templates)
        moved = [not torch.equal(a, b) for a, b in zip(learner.contexts, fresh.contexts, strict=True) if a.numel()]
        assert all(moved), name
    model = tmp_path / "run" / "model"
    assert (model / WEIGHTS_FILE).read_bytes() == (shipped_clip() / WEIGHTS_FILE).read_bytes()
    payload = read_prompt_file(model)
    assert set(payload["class_sets"]) == {"shape", "colour"} and payload["record"]["images"] == 40


def test_model_mode_moves_the_image_tower(unlabeled_split, tmp_path):
    config = _config(unlabeled_split, tmp_path / "run", tune="model", model_learning_rate=1e-4, classes=["shape"])
    PoufTuner(config, progress=False).run()
    folder = tmp_path / "run" / "model"
    assert not (folder / PROMPT_FILE).exists()
    tuned, _, _ = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    original, _, _ = load_clip(str(shipped_clip()))
    before, after = original.state_dict(), tuned.state_dict()
    assert any(not torch.equal(before[key], after[key]) for key in before if key.startswith("visual."))
    assert any(not torch.equal(before[key], after[key]) for key in before if key.startswith("transformer."))


def test_a_rerun_resumes_where_the_checkpoint_left_off(small_world, tmp_path):
    split = small_world / "eval"
    straight = PoufTuner(_config(split, tmp_path / "straight", steps=4, classes=["colour"]), progress=False)
    straight.run()
    PoufTuner(
        _config(split, tmp_path / "resumed", steps=2, classes=["colour"], checkpoint_every=1), progress=False
    ).run()
    resumed = PoufTuner(_config(split, tmp_path / "resumed", steps=4, classes=["colour"]), progress=False)
    summary = resumed.run()
    assert summary["steps"] == 4 and summary["steps_this_run"] == 2
    for a, b in zip(straight.learners["colour"].contexts, resumed.learners["colour"].contexts, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-7)
    with pytest.raises(RecapError, match="run with another classes"):
        PoufTuner(_config(split, tmp_path / "resumed", steps=6, classes=["shape"]), progress=False).run()


def test_folders_of_images_and_shards_are_targets_too(small_world, tmp_path):
    images = sorted((small_world / "eval" / "images").iterdir())[:6]
    nested = tmp_path / "folder" / "sub"
    nested.mkdir(parents=True)
    for path in images:
        shutil.copy(path, nested / path.name)
    (tmp_path / "folder" / "notes.txt").write_text("not an image")
    (tmp_path / "folder" / "broken.png").write_bytes(b"not a png")
    pixels, skipped = load_unlabeled_images(tmp_path / "folder", 64, progress=False)
    assert pixels.shape == (6, 64, 64, 3) and skipped == 1
    samples = {path.stem: {path.suffix[1:]: path.read_bytes(), "txt": b"alt"} for path in images}
    (tmp_path / "shards").mkdir()
    write_tar(tmp_path / "shards" / "00000.tar", samples, {name: f"{i:09d}" for i, name in enumerate(samples)})
    from_shards, none_skipped = load_unlabeled_images(tmp_path / "shards", 64, progress=False)
    assert none_skipped == 0 and np.array_equal(from_shards, pixels)  # the same pixels as the files
    bad_input_shard(tmp_path / "bad.tar")  # samples the job marks bad_input are skipped and counted
    decoded, skipped = load_unlabeled_images(tmp_path / "bad.tar", 64, progress=False)
    assert skipped > 5 and len(decoded) + skipped == len(bad_samples())


def test_the_commands_tune_and_report_before_and_after(small_world, tmp_path, capsys):
    split, tuned = str(small_world / "eval"), str(tmp_path / "prompt")
    common = ["--target", split, "--steps", "3", "--batch-size", "16", "--threads", "1", "--quiet"]
    assert (
        main(["tune-clip", "--model", str(shipped_clip()), "--classes", "shape,colour", "--out", tuned, *common]) == 0
    )
    assert "model saved to" in capsys.readouterr().out
    report = tmp_path / "report"
    argv = ["eval-retrieval", "--model", f"{tuned}/model", "--world", split, "--quiet", "--out", str(report)]
    assert main(argv) == 0
    results = json.loads((report / "retrieval.json").read_text())
    learned = results["learned_prompts"]["tasks"]
    assert set(learned) == {"shape", "colour"} and all(
        0 <= value["learned"]["top1"] <= 1 for value in learned.values()
    )
    text = (report / "retrieval.md").read_text()
    assert "before / after" in text and "learned prompts" in text

    classes = tmp_path / "shapes.txt"
    classes.write_text("# the shapes\ncircle\nsquare\ntriangle\n")
    model_run = str(tmp_path / "model")
    argv = ["tune-clip", "--model", str(shipped_clip()), "--tune", "model", "--classes", str(classes)]
    assert main([*argv, "--out", model_run, "--model-learning-rate", "1e-4", *common]) == 0
    argv = ["eval-retrieval", "--model", f"{model_run}/model", "--baseline", str(shipped_clip()), "--world", split]
    assert main([*argv, "--quiet", "--out", str(report)]) == 0
    results = json.loads((report / "retrieval.json").read_text())
    assert results["baseline"]["zero_shot"].keys() == results["zero_shot"].keys() and "learned_prompts" not in results
    assert "| retrieval (mean R@1) |" in (report / "retrieval.md").read_text()

    capsys.readouterr()
    folder_target = ["--target", str(small_world / "eval" / "images"), "--out", str(tmp_path / "x")]
    assert main(["tune-clip", "--model", str(shipped_clip()), "--classes", "shape", *folder_target]) == 2
    assert "--world" in capsys.readouterr().err


def test_class_sets_come_from_the_world_or_a_file(small_world, tmp_path):
    from recap.training.class_sets import read_class_file, resolve_class_sets, world_class_sets

    sets = resolve_class_sets(["shape", "colour"], small_world)
    assert sets == {name: world_class_sets(small_world)[name] for name in ("shape", "colour")}
    (tmp_path / "pets.txt").write_text("cat\n\n# a comment\ndog\n")
    assert resolve_class_sets([str(tmp_path / "pets.txt")], None) == {"pets": ["cat", "dog"]}
    (tmp_path / "twice.txt").write_text("cat\ncat\n")
    (tmp_path / "one.txt").write_text("cat\n")
    for name, message in (("twice.txt", "more than once"), ("one.txt", "at least two")):
        with pytest.raises(RecapError, match=message):
            read_class_file(tmp_path / name)
    with pytest.raises(RecapError, match="--world"):
        resolve_class_sets(["brand"], None)
