"""Caption quality against ground truth: precision (1 - hallucination rate) and recall (coverage).

Object level: a claimed object is right only when every attribute it states is right, and a scene object is
covered only when one claim states its shape, colour, size and position, all right. Attribute level: the
accuracy of each stated attribute and the share of the scene's attribute values a caption states.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field

from recap.world.parser import OBJECT_ATTRIBUTES, CaptionClaims, ObjectClaim, parse_caption
from recap.world.scene import DESCRIBED_ATTRIBUTES, Scene, SceneObject

SCENE_ATTRIBUTES = ("background", "count")
ALL_ATTRIBUTES = OBJECT_ATTRIBUTES + SCENE_ATTRIBUTES
_SIDES = {"left", "right", "top", "bottom"}


def attribute_matches(name: str, claimed: str, true: str | None) -> bool:
    """Whether a claimed value is true of an object; a bare side ("left") is true of any cell on that side."""
    if true is None:
        return False
    if name == "position" and claimed in _SIDES:
        return claimed in true.split()
    return claimed == true


def _agreement(claim: ObjectClaim, obj: SceneObject) -> int:
    return sum(1 if attribute_matches(k, v, obj.attribute(k)) else -1 for k, v in claim.attributes.items())


def _match(claims: list[ObjectClaim], objects: tuple[SceneObject, ...]) -> dict[int, int]:
    """Claim index -> object index, one to one, maximising total agreement (exhaustive for small scenes)."""
    if not claims or not objects:
        return {}
    slots: list[int | None] = list(range(len(claims))) + [None] * len(objects)
    best, best_score = {}, None
    # Assign each object a distinct claim or none; scenes hold at most a handful of objects.
    for chosen in set(itertools.permutations(slots, len(objects))):
        score = sum(_agreement(claims[c], objects[o]) for o, c in enumerate(chosen) if c is not None)
        if best_score is None or score > best_score:
            best_score, best = score, {c: o for o, c in enumerate(chosen) if c is not None}
    return best


@dataclass
class CaptionScore:
    """Counts for one caption (or, summed, for many)."""

    object_claims: int = 0
    object_claims_right: int = 0
    objects: int = 0
    objects_covered: int = 0
    claimed: Counter = field(default_factory=Counter)
    claimed_right: Counter = field(default_factory=Counter)
    present: Counter = field(default_factory=Counter)
    covered: Counter = field(default_factory=Counter)
    captions: int = 0
    captions_without_claims: int = 0
    words: int = 0

    def __iadd__(self, other: CaptionScore) -> CaptionScore:
        for name in ("object_claims", "object_claims_right", "objects", "objects_covered", "captions"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.captions_without_claims += other.captions_without_claims
        self.words += other.words
        for name in ("claimed", "claimed_right", "present", "covered"):
            getattr(self, name).update(getattr(other, name))
        return self

    def summary(self) -> dict[str, float | int | None]:
        """Precision/recall at object and attribute level, plus caption counts and mean length in words."""

        def ratio(a: int, b: int) -> float | None:
            return round(a / b, 4) if b else None

        result: dict[str, float | int | None] = {
            "captions": self.captions,
            "object_precision": ratio(self.object_claims_right, self.object_claims),
            "object_recall": ratio(self.objects_covered, self.objects),
            "attribute_precision": ratio(sum(self.claimed_right.values()), sum(self.claimed.values())),
            "attribute_recall": ratio(sum(self.covered.values()), sum(self.present.values())),
            "no_claims_fraction": ratio(self.captions_without_claims, self.captions),
            "mean_words": round(self.words / self.captions, 2) if self.captions else None,
        }
        for name in ALL_ATTRIBUTES:
            result[f"{name}_precision"] = ratio(self.claimed_right[name], self.claimed[name])
            result[f"{name}_recall"] = ratio(self.covered[name], self.present[name])
        return result


def score_claims(claims: CaptionClaims, scene: Scene) -> CaptionScore:
    """Score parsed claims against the scene they are about."""
    score = CaptionScore(captions=1, captions_without_claims=int(claims.is_empty), objects=len(scene.objects))
    objects = scene.objects
    matching = _match(claims.objects, objects)
    for obj in objects:
        for name in DESCRIBED_ATTRIBUTES:
            score.present[name] += 1
        score.present["mark"] += obj.mark is not None
    score.present.update(background=1, count=1)

    marks_covered: set[int] = set()
    for index, claim in enumerate(claims.objects):
        if index in matching:
            target = objects[matching[index]]
        else:  # a second mention of an object is not a hallucination if all it says is true
            target = max(objects, key=lambda obj: _agreement(claim, obj), default=None)
        rights = {
            k: target is not None and attribute_matches(k, v, target.attribute(k)) for k, v in claim.attributes.items()
        }
        score.object_claims += 1
        score.object_claims_right += all(rights.values())
        for name, right in rights.items():
            score.claimed[name] += 1
            score.claimed_right[name] += right
        if index in matching:
            exact = {k: claim.attributes.get(k) == target.attribute(k) for k in OBJECT_ATTRIBUTES}
            for name in DESCRIBED_ATTRIBUTES:
                score.covered[name] += exact[name]
            score.objects_covered += all(exact[name] for name in DESCRIBED_ATTRIBUTES)
            if target.mark is not None and exact["mark"]:
                marks_covered.add(matching[index])

    for name, value in claims.orphans:
        holders = [i for i, obj in enumerate(objects) if attribute_matches(name, value, obj.attribute(name))]
        score.claimed[name] += 1
        score.claimed_right[name] += bool(holders)
        if name == "mark":  # a bare brand name still tells which brand is in the image
            uncovered = [i for i in holders if i not in marks_covered]
            if uncovered:
                marks_covered.add(uncovered[0])
    score.covered["mark"] += len(marks_covered)

    for name, claimed, true in (
        ("background", claims.background, scene.background),
        ("count", claims.count, len(objects)),
    ):
        if claimed is not None:
            score.claimed[name] += 1
            score.claimed_right[name] += claimed == true
            score.covered[name] += claimed == true
    return score


def score_caption(text: str | None, scene: Scene) -> CaptionScore:
    """Parse and score one caption; the word count goes into the score."""
    score = score_claims(parse_caption(text), scene)
    score.words = len(text.split()) if text else 0
    return score


def score_captions(texts, scenes) -> CaptionScore:
    """Sum of `score_caption` over paired captions and scenes."""
    total = CaptionScore()
    for text, scene in zip(texts, scenes, strict=True):
        total += score_caption(text, scene)
    return total
