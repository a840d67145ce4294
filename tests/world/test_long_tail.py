"""The long-tailed world (`recap world --long-tail`): the profile, the skew of the training splits, the balanced eval
split, and the default world left exactly as it was."""

import numpy as np
import pytest

from recap.world.concepts import concept_counts, frequency_thirds, long_tail_weights, world_concepts
from recap.world.generate import WorldConfig, generate_world, load_manifest, load_scenes, make_sample
from recap.world.vocabulary import get_difficulty

from .digest import DEFAULT_WORLD_DIGEST, world_digest


def test_default_world_draws_what_it_always_drew():
    """A digest of the default world's first samples, taken before the long-tail option existed."""
    config = WorldConfig(seed=0, size=200)
    assert world_digest(config) == DEFAULT_WORLD_DIGEST


def test_exponential_profile_has_the_asked_head_to_tail_ratio():
    weights = long_tail_weights(0.01, 40)
    assert weights.sum() == pytest.approx(1.0)
    assert weights[-1] / weights[0] == pytest.approx(0.01)
    assert np.all(np.diff(weights) < 0)
    assert np.allclose(long_tail_weights(1.0, 5), 0.2)


def test_long_tailed_training_splits_and_a_balanced_eval_split():
    config = WorldConfig(seed=3, size=10, long_tail=0.01)
    profile = config.long_tail_profile()
    names = {f"{colour} {shape}" for shape, colour in world_concepts(get_difficulty("normal"))}
    assert sorted(profile["ranking"]) == sorted(names) and len(names) == 40
    counts = {
        split: concept_counts(make_sample(config, split, i).scene for i in range(1500)) for split in ("web", "eval")
    }
    web = [counts["web"].get(name, 0) for name in profile["ranking"]]
    # The ten head concepts hold far more objects than the ten tail ones (expected ratio about 15x).
    assert sum(web[:10]) > 8 * sum(web[-10:])
    assert web[0] > 50 * max(web[-1], 1) or web[0] > 150
    evaluation = [counts["eval"].get(name, 0) for name in profile["ranking"]]
    assert sum(evaluation[:10]) < 1.5 * sum(evaluation[-10:])  # balanced: about equal
    # Another seed ranks the concepts differently.
    assert WorldConfig(seed=4, size=10, long_tail=0.01).long_tail_profile()["ranking"] != profile["ranking"]


def test_long_tailed_world_records_its_profile_and_counts(tmp_path):
    config = WorldConfig(seed=5, size=60, sft_size=10, eval_size=10, long_tail=0.05)
    manifest = generate_world(config, tmp_path / "world", progress=False)
    assert load_manifest(tmp_path / "world")["long_tail"] == manifest["long_tail"]
    assert manifest["config"]["long_tail"] == 0.05
    assert manifest["long_tail"]["ratio"] == 0.05 and len(manifest["long_tail"]["probability"]) == 40
    drawn = concept_counts(load_scenes(tmp_path / "world", "web").values())
    assert manifest["splits"]["web"]["concepts"] == dict(drawn.most_common())
    again = generate_world(config, tmp_path / "again", progress=False)
    assert again["long_tail"] == manifest["long_tail"] and again["splits"] == manifest["splits"]


def test_default_world_manifest_has_no_concept_counts(small_world):
    manifest = load_manifest(small_world)
    assert manifest["long_tail"] is None
    assert "concepts" not in manifest["splits"]["web"]


def test_frequency_thirds_split_by_count_then_name():
    counts = {"a": 9, "b": 9, "c": 5, "d": 1}
    thirds = frequency_thirds(counts, ["d", "c", "b", "a", "e"])
    assert thirds == {"a": "head", "b": "head", "c": "middle", "d": "middle", "e": "tail"}
    forty = frequency_thirds({}, [str(i) for i in range(40)])
    assert [list(forty.values()).count(third) for third in ("head", "middle", "tail")] == [14, 13, 13]
