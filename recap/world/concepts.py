"""The world's concepts (an object's colour and shape, "red heart") and the long-tailed profile they can be drawn from.

The default world draws every shape and colour equally. `recap world --long-tail RATIO` instead draws each object's
concept from CIFAR-100-LT's exponential profile (Cao et al. 2019, the data CBDM trains on): the concept of rank r
(0 = head) among C has weight RATIO ** (r / (C - 1)), so the rarest concept is 1/RATIO times rarer than the
commonest. Which concept gets which rank is a seeded permutation (so the head is not always the first shape), and
world.json records it with each concept's probability and the counts each split drew. Eval splits stay balanced,
as CBDM evaluates on uniformly drawn classes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

import numpy as np

from recap.world.scene import Scene
from recap.world.vocabulary import Difficulty

THIRDS = ("head", "middle", "tail")
_RANKING_STREAM = 7919  # the rng stream of the concept ranking, apart from every sample's


def concept_name(shape: str, colour: str) -> str:
    """How captions name a concept: "red heart"."""
    return f"{colour} {shape}"


def world_concepts(difficulty: Difficulty) -> list[tuple[str, str]]:
    """Every (shape, colour) the difficulty draws, shape-major."""
    return [(shape, colour) for shape in difficulty.shapes for colour in difficulty.colours]


def check_long_tail(ratio: float) -> None:
    """Refuse a tail / head frequency outside (0, 1]."""
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"long_tail must be in (0, 1] (tail / head frequency, e.g. 0.01), got {ratio}")


def long_tail_weights(ratio: float, count: int) -> np.ndarray:
    """CIFAR-LT's `exp` profile, normalised: rank r of `count` gets ratio ** (r / (count - 1))."""
    check_long_tail(ratio)
    weights = ratio ** (np.arange(count) / max(count - 1, 1))
    return weights / weights.sum()


def long_tail_profile(seed: int, difficulty: Difficulty, ratio: float) -> dict:
    """The concepts head first (a seeded permutation) with the probability of each, as world.json records it."""
    concepts = world_concepts(difficulty)
    order = np.random.default_rng([seed, _RANKING_STREAM]).permutation(len(concepts))
    probabilities = long_tail_weights(ratio, len(concepts))
    return {
        "profile": "exp",
        "ratio": ratio,
        "ranking": [concept_name(*concepts[index]) for index in order],
        "probability": [round(float(p), 6) for p in probabilities],
    }


class ConceptSampler:
    """Draws an object's (shape, colour) from a long-tail profile (one rng call per object)."""

    def __init__(self, profile: Mapping, difficulty: Difficulty) -> None:
        by_name = {concept_name(*concept): concept for concept in world_concepts(difficulty)}
        self.concepts = [by_name[name] for name in profile["ranking"]]
        probabilities = np.asarray(profile["probability"], dtype=np.float64)
        self.probabilities = probabilities / probabilities.sum()

    def __call__(self, rng: np.random.Generator) -> tuple[str, str]:
        return self.concepts[int(rng.choice(len(self.concepts), p=self.probabilities))]


def concept_counts(scenes: Iterable[Scene]) -> Counter:
    """Objects per concept name over `scenes`."""
    return Counter(concept_name(obj.shape, obj.colour) for scene in scenes for obj in scene.objects)


def frequency_thirds(counts: Mapping[str, int], concepts: Iterable[str]) -> dict[str, str]:
    """concept -> "head", "middle" or "tail": the concepts ranked by count (most first, ties by name) and cut into
    three near-equal parts (40 concepts: 14, 13, 13). Concepts missing from `counts` count 0."""
    ranked = sorted(concepts, key=lambda name: (-counts.get(name, 0), name))
    parts = np.array_split(np.arange(len(ranked)), 3)
    return {ranked[int(index)]: third for third, part in zip(THIRDS, parts, strict=True) for index in part}
