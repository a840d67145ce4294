"""Per-concept text-to-image evaluation for long-tailed data (`recap eval-t2i --concepts WORLD`).

A concept is an object's colour and shape ("red heart"). The eval split draws concepts uniformly (a long-tailed
world keeps its eval split balanced, as CBDM evaluates on uniformly drawn classes), and the training world's web
split says how often the model saw each: its concepts ranked by that count and cut into head, middle and tail
thirds. For each concept and each third:

- **judged object accuracy**: the share of prompted objects of the concept drawn in their cell with the right
  shape, colour and size (the same judge reading as the headline accuracy);
- **FD**: the Frechet distance, in the reference CLIP's image-embedding space, between the images drawn for the
  prompts that mention the concept (or any concept of the third) and the real eval images of the same prompts;
  per concept it rests on few images (about 50 of 1,000 prompts), so read the thirds;
- **diversity**: one single-object prompt per concept ("... A large red heart is in the top left."), drawn with
  `seeds` different noises; the mean pairwise cosine distance of their reference-CLIP image embeddings (CBDM's
  claim is that tail concepts stop collapsing onto few images).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from recap.world.scene import Scene, SceneObject

MIN_FD_PROMPTS = 10  # fewer prompts than this: no per-concept FD (a covariance from so few is noise)


def training_counts(world: str | Path) -> Counter:
    """Objects per concept in a world's web split (the data a model trained on that world saw)."""
    from recap.world.concepts import concept_counts
    from recap.world.generate import load_manifest, load_scenes

    recorded = load_manifest(world)["splits"]["web"].get("concepts")
    if recorded is not None:  # a long-tailed world records them
        return Counter(recorded)
    return concept_counts(load_scenes(world, "web").values())


def training_concepts(world: str | Path) -> tuple[list[tuple[str, str]], Counter, dict[str, str]]:
    """Every (shape, colour) the world's difficulty draws, their counts in its web split, and their thirds
    (head / middle / tail by that count)."""
    from recap.world.concepts import concept_name, frequency_thirds, world_concepts
    from recap.world.generate import load_manifest
    from recap.world.vocabulary import get_difficulty

    concepts = world_concepts(get_difficulty(load_manifest(world)["difficulty"]["name"]))
    counts = training_counts(world)
    return concepts, counts, frequency_thirds(counts, [concept_name(*concept) for concept in concepts])


def concept_thirds(world: str | Path) -> dict[str, str]:
    """concept -> head / middle / tail by its count in the world's web split (every concept its difficulty draws)."""
    return training_concepts(world)[2]


def diversity_prompt(shape: str, colour: str, position: str) -> str:
    """The world's ground-truth caption of a single large object of the concept on a white background."""
    from recap.world.captions import ground_truth_caption

    obj = SceneObject(shape=shape, colour=colour, size="large", position=position, mark=None, x=0, y=0, radius=0)
    return ground_truth_caption(Scene(background="white", background_style="plain", objects=(obj,)))


def mean_pairwise_cosine_distance(features: np.ndarray) -> float:
    """1 - cos, averaged over every pair of rows."""
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    similarity = unit @ unit.T
    count = len(unit)
    return float(1.0 - (similarity.sum() - count) / (count * (count - 1)))


JUDGED = ("shape", "colour", "size")


def attribute_hits(cell: dict, obj: SceneObject) -> list[bool]:
    """Whether the judge's reading of a cell has `obj`'s shape, colour and size (JUDGED's order)."""
    return [cell[name] == getattr(obj, name) for name in JUDGED]


def object_hits(scenes: list[Scene], judged: list[list[dict | None]], positions: list[str]):
    """(prompt index, prompted object, drawn right) for every prompted object: right when the judge reads its cell
    with the object's shape, colour and size."""
    for index, (scene, cells) in enumerate(zip(scenes, judged, strict=True)):
        by_position = dict(zip(positions, cells, strict=True))
        for obj in scene.objects:
            cell = by_position.get(obj.position)
            right = cell is not None and all(attribute_hits(cell, obj))
            yield index, obj, right


def concept_scores(
    *,
    scenes: list[Scene],
    judged: list[list[dict | None]],
    positions: list[str],
    features: np.ndarray,
    real_features: np.ndarray,
    counts: Counter,
    thirds: dict[str, str],
    diversity: dict[str, float],
) -> dict:
    """Accuracy, FD and diversity per concept and per third of the training frequency."""
    from recap.evaluation.frechet import frechet_distance_of
    from recap.world.concepts import THIRDS, concept_name

    objects, right, prompts = Counter(), Counter(), {name: set() for name in thirds}
    for index, obj, hit in object_hits(scenes, judged, positions):
        name = concept_name(obj.shape, obj.colour)
        objects[name] += 1
        right[name] += hit
        prompts.setdefault(name, set()).add(index)

    def fd(indices: set[int]) -> float | None:
        if len(indices) < MIN_FD_PROMPTS:
            return None
        chosen = sorted(indices)
        return round(frechet_distance_of(features[chosen], real_features[chosen]), 3)

    per_concept = {
        name: {
            "third": thirds[name],
            "train_count": int(counts.get(name, 0)),
            "objects": objects[name],
            "object_accuracy": round(right[name] / objects[name], 4) if objects[name] else None,
            "prompts": len(prompts[name]),
            "frechet_distance": fd(prompts[name]),
            "diversity": diversity.get(name),
        }
        for name in sorted(thirds, key=lambda name: (-counts.get(name, 0), name))
    }
    by_third = {}
    for third in THIRDS:
        names = [name for name in per_concept if thirds[name] == third]
        seen = sum(objects[name] for name in names)
        union = set().union(*(prompts[name] for name in names)) if names else set()
        spreads = [diversity[name] for name in names if name in diversity]
        by_third[third] = {
            "concepts": len(names),
            "train_objects": int(sum(counts.get(name, 0) for name in names)),
            "objects": seen,
            "object_accuracy": round(sum(right[name] for name in names) / seen, 4) if seen else None,
            "prompts": len(union),
            "frechet_distance": fd(union),
            "diversity": round(float(np.mean(spreads)), 4) if spreads else None,
        }
    return {"thirds": by_third, "per_concept": per_concept}
