"""recap eval-t2i and recap sample: the judge's reading scored against hand-made scenes, and both commands end
to end on a tiny model trained here (a few steps: the plumbing is under test, not the quality)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recap.cli import main
from recap.evaluation.t2i_eval import object_phrase, prompt_attribute_scores
from recap.training.t2i_training import T2ITrainer, T2ITrainingConfig
from recap.world.scene import Scene, SceneObject

POSITIONS = ["top left", "top right", "bottom left", "bottom right"]


def scene(*objects: tuple[str, str, str, str]) -> Scene:
    return Scene(
        background="white",
        background_style="plain",
        objects=tuple(
            SceneObject(shape=s, colour=c, size=z, position=p, mark=None, x=0.25, y=0.25, radius=0.16)
            for s, c, z, p in objects
        ),
    )


def cell(shape, colour, size, position):
    return {"shape": shape, "colour": colour, "size": size, "position": position}


def test_prompt_attribute_scores_count_objects_attributes_and_extras():
    scenes = [
        scene(("heart", "red", "small", "top left"), ("star", "blue", "large", "bottom right")),
        scene(("circle", "green", "small", "top right")),
    ]
    judged = [
        [cell("heart", "red", "small", "top left"), None, None, cell("star", "pink", "large", "bottom right")],
        [cell("square", "yellow", "small", "top left"), None, None, None],  # its object missing, one unprompted
    ]
    scores = prompt_attribute_scores(scenes, judged, POSITIONS)
    assert scores["objects"] == 3 and scores["images"] == 2
    assert scores["object_accuracy"] == pytest.approx(1 / 3)
    assert scores["presence"] == pytest.approx(2 / 3)
    assert scores["shape"] == pytest.approx(2 / 3) and scores["colour"] == pytest.approx(1 / 3)
    assert scores["size"] == pytest.approx(2 / 3)
    assert scores["unprompted_rate"] == pytest.approx(1 / 5)  # 5 empty cells, one drawn in
    assert object_phrase(scenes[0].objects[0]) == "A small red heart."


@pytest.fixture(scope="module")
def tiny_t2i(small_world, tmp_path_factory):
    out = tmp_path_factory.mktemp("t2i-eval") / "p-0.00"
    config = T2ITrainingConfig(
        train=str(small_world / "sft"), out=str(out), p_original=0.0, steps=6, warmup_steps=1, batch_size=8, threads=1
    )
    T2ITrainer(config, progress=False).run()
    return out / "model"


def test_eval_t2i_writes_the_report_for_each_model(tiny_t2i, small_world, tmp_path, capsys):
    out = tmp_path / "eval"
    args = ["eval-t2i", "--model", f"p0={tiny_t2i}", "--model", f"again={tiny_t2i}"]
    args += ["--eval", str(small_world / "eval")]
    args += ["--out", str(out), "--limit", "6", "--steps", "2", "--negative-limit", "3", "--quiet", "--threads", "1"]
    assert main(args) == 0
    report = json.loads((out / "eval.json").read_text())
    assert report["prompts"] == 6 and set(report["models"]) == {"p0", "again"}
    assert min(report["judge"]["accuracy"][name] for name in ("presence", "shape", "colour", "size")) >= 0.95
    first, second = report["models"]["p0"], report["models"]["again"]
    assert first["prompt_attribute"] == second["prompt_attribute"]  # same model, same seed: same images
    for value in (first["prompt_attribute"][name] for name in ("object_accuracy", "presence", "unprompted_rate")):
        assert 0.0 <= value <= 1.0
    assert first["clip_score"] >= 0 and first["frechet_distance"] > 0
    assert 0 < report["real_images"]["clip_score"] <= 100
    negatives = first["negatives"]
    assert set(negatives["colour_rate"]) == set(negatives["own_object_removed"]) == {"none", "negative", "perp-neg"}
    # paired on the seed: only images that draw the object with no negative can lose it
    drawn, paired = negatives["own_object_drawn_without_negative"], negatives["own_object_removed_when_drawn"]
    assert 0 <= drawn <= 3 and set(paired) == {"negative", "perp-neg"}
    assert all((value is None) == (drawn == 0) for value in paired.values())
    assert Image.open(first["grid"]).size[0] > 0
    assert "| p0 |" in (out / "eval.md").read_text() and "Perp-Neg" in (out / "eval.md").read_text()
    assert "object accuracy" in capsys.readouterr().out


def test_sample_same_seed_same_pngs_and_a_grid(tiny_t2i, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("A small red heart is in the top left.\n\nA large blue star is in the bottom right.\n")
    for run in ("a", "b"):
        args = ["sample", "--model", str(tiny_t2i), "--prompts", str(prompts), "--steps", "2", "--seed", "3"]
        assert main([*args, "--out", str(tmp_path / run)]) == 0
    record = json.loads((tmp_path / "a" / "samples.json").read_text())
    assert [image["prompt"] for image in record["images"]][1] == "A large blue star is in the bottom right."
    for name in ("00000.png", "00001.png"):
        a, b = (np.asarray(Image.open(tmp_path / run / name)) for run in ("a", "b"))
        assert a.shape == (32, 32, 3) and np.array_equal(a, b)
    assert Image.open(tmp_path / "a" / "grid.png").size[0] > 2 * 128
    negative = ["--negative", "green", "--guidance", "perp-neg", "--out", str(tmp_path / "c")]
    assert main([*args, *negative]) == 0
    assert json.loads((tmp_path / "c" / "samples.json").read_text())["guidance"] == "perp-neg"
    assert main(["sample", "--model", str(tiny_t2i), "--prompt", "x", "--guidance", "perp-neg", "--out", "y"]) == 2
    assert main(["sample", "--model", str(tiny_t2i), "--out", str(tmp_path / "d")]) == 2  # no prompts


def test_t2i_sweep_trains_both_p_evaluates_them_and_skips_them_on_a_rerun(small_world, tmp_path, capsys):
    args = ["t2i-sweep", "--train", str(small_world / "sft"), "--eval", str(small_world / "eval"), "--out"]
    args += [str(tmp_path / "sweep"), "--steps", "4", "--warmup-steps", "1", "--batch-size", "8", "--parallel", "1"]
    args += ["--threads", "1", "--limit", "4", "--eval-steps", "2", "--negative-limit", "2", "--quiet"]
    assert main([*args, "--validation", "100"]) == 2  # 4 + 100 prompts: more than the 40 eval images, said
    assert not (tmp_path / "sweep").exists()  # before any training
    args += ["--validation", "6", "--scales", "1,4"]
    assert main(args) == 0
    sweep = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    for model in sweep["eval"]["models"].values():  # each model's scale chosen on the 6 validation prompts
        assert model["scale"] in (1.0, 4.0) and set(model["validation_object_accuracy_by_scale"]) == {"1.0", "4.0"}
        # and recorded in its folder, so it draws with that scale by default
        recorded = json.loads((Path(model["model"]) / "recap_t2i.json").read_text())
        assert recorded["guidance_scale"] == model["scale"] and "1.0 -> " in recorded["guidance_scale_chosen_on"]
    assert set(sweep["eval"]["models"]) == {"p0.0", "p1.0"}
    claims = sweep["claims"]
    assert isinstance(claims["object_accuracy_holds"], bool) and "clip_score_gain_p0_over_p1" in claims
    assert set(sweep["train_seconds"]) == {"p0.0", "p1.0"}
    assert "Recap-DiT p sweep" in capsys.readouterr().out
    assert main(args) == 0  # both p trained with the same options: skipped, only evaluated again
    for p in ("p-0.00", "p-1.00"):  # a rerun that trained again would have resumed at step 4 and stored 0 steps
        assert json.loads((tmp_path / "sweep" / p / "training_result.json").read_text())["steps_this_run"] == 4
