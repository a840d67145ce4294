"""recap eval-retrieval: a Karpathy JSON made from world images gives the same numbers as the world split."""

import json
import tarfile

import pytest

from recap.cli import main
from recap.evaluation.retrieval import evaluate_retrieval, karpathy_set, world_sets
from recap.models.clip import new_clip, save_clip_folder, train_clip_tokenizer

from ..shard_factory import tar_keys


@pytest.fixture(scope="module")
def clip_folder(small_world, tmp_path_factory):
    """A random tiny CLIP saved as a folder (the numbers only need to be the same, not good)."""
    import pyarrow.parquet as pq

    folder = tmp_path_factory.mktemp("eval-clip")
    texts = pq.read_table(small_world / "eval" / "truth.parquet")["caption"].to_pylist()
    train_clip_tokenizer(texts * 5, vocab_size=400, out=folder / "tokenizer")
    model, _, tokenizer, config = new_clip("recap-clip-tiny", folder / "tokenizer", seed=1)
    return save_clip_folder(model.eval(), config, tokenizer, folder / "model")


def test_karpathy_json_of_world_images_gives_the_world_split_numbers(small_world, clip_folder, tmp_path):
    import pyarrow.parquet as pq

    from recap.models.clip import load_clip

    model, _, tokenizer = load_clip(str(clip_folder))
    split = small_world / "eval"
    entries = [
        {
            "filepath": "images",
            "filename": f"{row['uid']}.{row['image_format']}",
            "split": "test",
            "sentences": [{"raw": row["caption"]}, {"raw": row["short_caption"]}],
        }
        for row in pq.read_table(split / "truth.parquet").to_pylist()
    ]
    entries.append({"filepath": "images", "filename": "unused.jpg", "split": "train", "sentences": []})
    (tmp_path / "dataset_world.json").write_text(json.dumps({"images": entries}))
    world, tasks = world_sets(split, 64)
    karpathy = karpathy_set(tmp_path / "dataset_world.json", split, 64)
    assert len(karpathy.texts) == len(world.texts) == 2 * len(world.images) == 80
    assert evaluate_retrieval(model, tokenizer, karpathy) == evaluate_retrieval(model, tokenizer, world)
    assert [task.name for task in tasks] == ["brand", "shape", "colour"] and all(len(task.labels) for task in tasks)


def test_the_command_writes_json_and_markdown(small_world, clip_folder, tmp_path, capsys):
    code = main(["eval-retrieval", "--model", str(clip_folder), "--world", str(small_world / "eval")])
    assert code == 0 and "mean_recall@1" in capsys.readouterr().out
    args = ["eval-retrieval", "--model", str(clip_folder), "--world", str(small_world / "eval"), "--quiet"]
    assert main([*args, "--out", str(tmp_path / "report")]) == 0
    results = json.loads((tmp_path / "report" / "retrieval.json").read_text())
    assert 0.0 <= results["retrieval"]["mean_recall@1"] <= 1.0 and set(results["zero_shot"]) == {
        "brand",
        "shape",
        "colour",
    }
    assert "| text to image |" in (tmp_path / "report" / "retrieval.md").read_text()
    assert main(["eval-retrieval", "--model", str(clip_folder), "--karpathy", "x.json"]) == 2  # no --images


def test_shards_with_a_caption_table(world_download, small_world, clip_folder, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from recap.world.generate import load_truth

    shards, _ = world_download
    truth = load_truth(small_world, "web").to_pylist()
    table = {"uid": [r["uid"] for r in truth], "re_caption": [r["caption"] for r in truth]}
    with tarfile.open(sorted(shards.glob("*.tar"))[0]) as tar:
        first = json.loads(next(tar.extractfile(m) for m in tar if m.name.endswith(".json")).read())["uid"]
    table["re_caption"][table["uid"].index(first)] = None  # a failed recaption of a downloaded image: left out
    pq.write_table(pa.table(table), tmp_path / "captions.parquet")
    args = ["eval-retrieval", "--model", str(clip_folder), "--shards", str(shards), "--quiet"]
    assert main([*args, "--captions", str(tmp_path / "captions.parquet"), "--out", str(tmp_path / "out")]) == 0
    results = json.loads((tmp_path / "out" / "retrieval.json").read_text())
    downloaded = len(tar_keys(shards))  # every downloaded sample has a truth caption, but the one set to None
    assert results["retrieval"]["images"] == results["retrieval"]["texts"] == downloaded - 1 > 100
    assert main(args) == 2  # --shards without --captions


def test_zero_shot_per_third_of_the_training_concepts(small_world, clip_folder, tmp_path):
    from recap.evaluation.concept_eval import concept_thirds
    from recap.world.generate import load_scenes

    thirds = concept_thirds(small_world)
    _, tasks = world_sets(small_world / "eval", 64, thirds)
    by_name = {task.name: task for task in tasks}
    scenes = list(load_scenes(small_world, "eval").values())
    single = [scene for scene in scenes if len({(o.shape, o.colour) for o in scene.objects}) == 1]
    third_tasks = [name for name in by_name if "@" in name]
    assert third_tasks and sum(len(by_name[name].labels) for name in third_tasks) == 2 * len(single)
    for name in third_tasks:
        task, third = name.split("@")
        expected = [
            getattr(scene.objects[0], task)
            for scene in single
            if thirds[f"{scene.objects[0].colour} {scene.objects[0].shape}"] == third
        ]
        assert [by_name[name].classes[label] for label in by_name[name].labels] == expected
    args = ["eval-retrieval", "--model", str(clip_folder), "--world", str(small_world / "eval"), "--quiet"]
    assert main([*args, "--concepts", str(small_world), "--out", str(tmp_path / "r")]) == 0
    assert set(third_tasks) <= set(json.loads((tmp_path / "r" / "retrieval.json").read_text())["zero_shot"])
    assert main(["eval-retrieval", "--model", str(clip_folder), "--karpathy", "x.json", "--concepts", "w"]) == 2
