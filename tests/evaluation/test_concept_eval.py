"""Per-concept text-to-image evaluation (`recap eval-t2i --concepts WORLD`): the scores on hand-made judge readings,
the diversity measure, and the command end to end on a tiny model."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from recap.cli import main
from recap.evaluation.concept_eval import (
    concept_scores,
    diversity_prompt,
    mean_pairwise_cosine_distance,
    training_counts,
)
from recap.world.concepts import concept_counts, frequency_thirds
from recap.world.generate import WorldConfig, generate_world, load_scenes

from .test_t2i_eval import POSITIONS, cell, scene, tiny_t2i  # noqa: F401  (tiny_t2i: the module's fixture)


def test_concept_scores_per_concept_and_per_third():
    scenes = [scene(("heart", "red", "small", "top left"), ("star", "blue", "large", "bottom right"))] * 12
    scenes += [scene(("circle", "green", "small", "top right"))] * 3
    right = [cell("heart", "red", "small", "top left"), None, None, cell("star", "pink", "large", "bottom right")]
    judged = [right] * 12 + [[None, cell("circle", "green", "small", "top right"), None, None]] * 3
    counts = Counter({"red heart": 100, "blue star": 10, "green circle": 1})
    thirds = frequency_thirds(counts, ["red heart", "blue star", "green circle"])
    assert thirds == {"red heart": "head", "blue star": "middle", "green circle": "tail"}
    rng = np.random.default_rng(0)
    features, real = rng.normal(size=(15, 4)), rng.normal(size=(15, 4))
    diversity = {"red heart": 0.2, "blue star": 0.4, "green circle": 0.6}
    scores = concept_scores(
        scenes=scenes, judged=judged, positions=POSITIONS, features=features, real_features=real,
        counts=counts, thirds=thirds, diversity=diversity,
    )  # fmt: skip
    per = scores["per_concept"]
    assert list(per) == ["red heart", "blue star", "green circle"]  # most trained first
    assert per["red heart"]["object_accuracy"] == 1.0 and per["blue star"]["object_accuracy"] == 0.0
    assert per["green circle"]["objects"] == 3 and per["green circle"]["object_accuracy"] == 1.0
    assert per["red heart"]["frechet_distance"] > 0 and per["green circle"]["frechet_distance"] is None  # 3 < 10
    assert scores["thirds"]["tail"] == {
        "concepts": 1, "train_objects": 1, "objects": 3, "object_accuracy": 1.0, "prompts": 3,
        "frechet_distance": None, "diversity": 0.6,
    }  # fmt: skip
    assert scores["thirds"]["head"]["prompts"] == 12 and scores["thirds"]["middle"]["diversity"] == 0.4


def test_diversity_is_mean_pairwise_cosine_distance():
    assert mean_pairwise_cosine_distance(np.eye(3)) == pytest.approx(1.0)
    assert mean_pairwise_cosine_distance(np.ones((4, 3)) * [1, 2, 3]) == pytest.approx(0.0, abs=1e-12)
    two = np.array([[1.0, 0.0], [1.0, 1.0]])
    assert mean_pairwise_cosine_distance(two) == pytest.approx(1 - np.sqrt(0.5))
    assert diversity_prompt("heart", "red", "top left") == (
        "The image shows one object on a white background. A large red heart is in the top left."
    )


def test_training_counts_read_a_long_tailed_manifest_or_count_the_scenes(small_world, tmp_path):
    skewed = tmp_path / "skewed"
    manifest = generate_world(
        WorldConfig(seed=2, size=30, sft_size=2, eval_size=2, long_tail=0.1), skewed, progress=False
    )
    assert training_counts(skewed) == Counter(manifest["splits"]["web"]["concepts"])
    assert training_counts(small_world) == concept_counts(load_scenes(small_world, "web").values())


def test_eval_t2i_reports_concepts_by_third(tiny_t2i, small_world, tmp_path):  # noqa: F811
    out = tmp_path / "eval"
    args = ["eval-t2i", "--model", f"p0={tiny_t2i}", "--eval", str(small_world / "eval"), "--out", str(out)]
    args += ["--limit", "12", "--steps", "2", "--no-negatives", "--quiet", "--threads", "1"]
    args += ["--concepts", str(small_world), "--diversity-seeds", "2"]
    assert main(args) == 0
    concepts = json.loads((out / "eval.json").read_text())["models"]["p0"]["concepts"]
    assert set(concepts["thirds"]) == {"head", "middle", "tail"} and len(concepts["per_concept"]) == 40
    assert sum(third["concepts"] for third in concepts["thirds"].values()) == 40
    assert sum(third["objects"] for third in concepts["thirds"].values()) == sum(
        value["objects"] for value in concepts["per_concept"].values()
    )
    assert all(0.0 <= value["diversity"] <= 2.0 for value in concepts["per_concept"].values())
    assert "## By concept frequency in training" in (out / "eval.md").read_text()
    assert main(args[:-2] + ["--diversity-seeds", "1"]) == 2  # a pair needs two draws
